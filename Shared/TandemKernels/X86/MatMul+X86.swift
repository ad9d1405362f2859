#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel

/// The AVX2 kernel family's row dispatch, float dot product and load helpers (x86_64 with
/// AVX2/FMA/F16C, i.e. `-march=x86-64-v3`; see `MatMulKernels`). Compiled only when
/// `arch(x86_64) && !TANDEM_PORTABLE_KERNELS`.
extension MatMul {
    /// Rows `r0..<r1` of `w` for all tokens.
    @inline(__always)
    static func rowsChunk(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
                          _ x: UnsafePointer<Float>, _ nTokens: Int, _ kActs: Acts?, _ qActs: Acts?,
                          _ wActs: Acts?, _ scratch: MatMulScratch, _ thread: Int) {
        if let p = w.packed {
            packedRows(w, p, out, r0, r1, nTokens, kActs, qActs)
            return
        }
        let rows = w.rows
        switch w.type {
        case .q4_K:
            let a = kActs!, nb = w.cols / 256
            if nTokens >= manyThreshold {
                let acc = scratch.rowBuffer(thread: thread, cols: w.cols)
                forTokenBlocks(nTokens) { t0, nt in
                    for r in r0..<r1 { tileKMany(w.row(r), nb, a, t0, nt, out + t0 * rows + r, rows, acc, high: false) }
                }
                return
            }
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tileK(row, nb, a, t0, n, o, rows, high: false) }
            }
        case .q5_K:
            let a = kActs!, nb = w.cols / 256
            if nTokens >= manyThreshold {
                let acc = scratch.rowBuffer(thread: thread, cols: w.cols)
                forTokenBlocks(nTokens) { t0, nt in
                    for r in r0..<r1 { tileKMany(w.row(r), nb, a, t0, nt, out + t0 * rows + r, rows, acc, high: true) }
                }
                return
            }
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tileK(row, nb, a, t0, n, o, rows, high: true) }
            }
        case .q6_K:
            let a = kActs!, nb = w.cols / 256
            if nTokens >= manyThreshold {
                let acc = scratch.rowBuffer(thread: thread, cols: w.cols)
                forTokenBlocks(nTokens) { t0, nt in
                    for r in r0..<r1 { tileQ6KMany(w.row(r), nb, a, t0, nt, out + t0 * rows + r, rows, acc) }
                }
                return
            }
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tileQ6K(row, nb, a, t0, n, o, rows) }
            }
        case .q4_0:
            let a = wActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile16(row, nb, a, t0, n, o, rows, kind: 0) }
            }
        case .q5_0:
            let a = qActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile32(row, nb, a, t0, n, o, rows, kind: 1) }
            }
        case .q8_0:
            let a = qActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile32(row, nb, a, t0, n, o, rows, kind: 2) }
            }
        case .q4_1:
            let a = wActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile16(row, nb, a, t0, n, o, rows, kind: 3) }
            }
        case .q5_1:
            let a = wActs!, nb = w.cols / 32
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                withTileCount(nt) { n in tile16(row, nb, a, t0, n, o, rows, kind: 4) }
            }
        default:
            genericRows(w, out, r0, r1, x, nTokens, scratch.rowBuffer(thread: thread, cols: w.cols))
        }
    }

    /// Generic path: dequantize each weight row to Float, then a Float dot per token.
    static func genericRows(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
                            _ x: UnsafePointer<Float>, _ nTokens: Int, _ buf: UnsafeMutablePointer<Float>) {
        let rows = w.rows, cols = w.cols
        for r in r0..<r1 {
            let rowPtr: UnsafePointer<Float>
            if w.type == .f32 {
                rowPtr = w.row(r).assumingMemoryBound(to: Float.self)
            } else {
                dequantizeRow(w.type, w.row(r), buf, count: cols)
                rowPtr = UnsafePointer(buf)
            }
            for t in 0..<nTokens {
                out[t * rows + r] = floatDot(rowPtr, x + t * cols, cols)
            }
        }
    }

    @inline(__always)
    static func floatDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps()
        var acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps()
        var i = 0
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0)
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1)
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2)
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3)
            i += 32
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0)
            i += 8
        }
        var s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)))
        while i < n {
            s = s.addingProduct(a[i], b[i])
            i += 1
        }
        return s
    }

    // MARK: - SIMD helpers

    @inline(__always)
    static func hsum(_ v: __m256) -> Float {
        let s = unsafeBitCast(v, to: SIMD8<Float>.self)
        let s4 = s.lowHalf + s.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        return s2[0] + s2[1]
    }

    @inline(__always)
    static func ld(_ p: UnsafeRawPointer) -> __m256i {
        _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self))
    }

    @inline(__always)
    static func ld128(_ p: UnsafeRawPointer) -> __m128i {
        _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
    }

    /// Unaligned scalar loads through SSE intrinsics: `UnsafeRawPointer.loadUnaligned` is not
    /// always inlined in debug (non-WMO) builds and a call in the inner loop costs a vzeroupper.
    /// Half-precision fields sit at even offsets of even-sized blocks and GGUF tensor data is
    /// 32-byte aligned, so a plain 2-byte load is aligned (and avoids the false dependency of
    /// `vpinsrw`).
    @inline(__always)
    static func load16(_ p: UnsafeRawPointer) -> UInt16 {
        p.load(as: UInt16.self)
    }

    @inline(__always)
    static func load32(_ p: UnsafeRawPointer) -> UInt32 {
        UInt32(bitPattern: _mm_cvtsi128_si32(_mm_loadu_si32(p)))
    }

    /// The two half-precision values at `p` and `p + 2`, converted, in lanes 0 and 1. A 4-byte
    /// `vmovd` load zero-extends, avoiding the false dependency a 2-byte `vpinsrw` load creates
    /// (which serialized the 32-block loops on an unrelated accumulator).
    @inline(__always)
    static func halves(_ p: UnsafeRawPointer) -> __m128 {
        _mm_cvtph_ps(_mm_loadu_si32(p))
    }

    @inline(__always)
    static func lane0(_ v: __m128) -> Float { _mm_cvtss_f32(v) }

    @inline(__always)
    static func lane1(_ v: __m128) -> Float { _mm_cvtss_f32(_mm_movehdup_ps(v)) }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: load16(p + offset)))
    }

    /// 16 packed bytes -> 32 nibbles: low nibbles first (elements 0..15), then high nibbles.
    @inline(__always)
    static func nibbles32(_ p: UnsafeRawPointer) -> __m256i {
        let t = ld128(p)
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F))
    }

    /// 32 bits -> 32 bytes, 0xFF where the bit is set.
    @inline(__always)
    static func bytesFromBits(_ x: UInt32) -> __m256i {
        let shuf = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        var bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: x)), shuf)
        bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
        return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
    }
}
#endif
