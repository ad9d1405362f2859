/// The portable kernel family (`MatMulKernels.portable`): row dispatch, load helpers and the float
/// dot product, written only with Swift SIMD types so that it compiles on every architecture
/// (NEON on arm64, SSE/AVX on x86_64) and in every build (see `MatMulKernels`).
///
/// Why these shapes: generic SIMD conversions between lane widths and `pointwiseMax`/`rounded`
/// compile to per-lane loops, so the kernels widen int8 with shifts on reinterpreted lanes
/// (`pdot`) and round floats with the 1.5 * 2^23 trick; lane-wise `&+ &* &<< &>> & |` and
/// `addingProduct` map to single vector instructions.
///
/// Byte-wise work (nibble masks, shifts, bit merges) runs on `SIMD8<UInt32>` views: 32-lane
/// `SIMD32<UInt8>` operators are not unrolled by the optimizer and become per-lane loops.
/// Each tile kernel is its own function (`@inline(never)`): inlined into the large dispatch
/// function, the Swift inliner ran out of budget and left `loadUnaligned` calls in the loops.
///
/// Reads ggml's row-major layout only: a packed copy (`WeightMatrix.packed`) is ignored.
/// BATCH-INVARIANT like the x86 kernels: each kernel applies the same operations to each token of
/// a tile whatever the tile's size (`nt` only gates whole per-token statements).
extension MatMul {
    /// Rows `r0..<r1` of `w` for all tokens with the portable kernels.
    @inline(__always)
    static func portableRowsChunk(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
                                  _ x: UnsafePointer<Float>, _ nTokens: Int, _ kActs: Acts?, _ qActs: Acts?,
                                  _ wActs: Acts?, _ scratch: MatMulScratch, _ thread: Int) {
        let rows = w.rows
        switch w.type {
        case .q4_K, .q5_K:
            let a = kActs!, nb = w.cols / 256, high = w.type == .q5_K
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                portableTileK(row, nb, a, t0, nt, o, rows, high: high)
            }
        case .q6_K:
            let a = kActs!, nb = w.cols / 256
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                portableTileQ6K(row, nb, a, t0, nt, o, rows)
            }
        case .q5_0, .q8_0:
            let a = qActs!, nb = w.cols / 32, kind = w.type == .q5_0 ? 1 : 2
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                portableTile32(row, nb, a, t0, nt, o, rows, kind: kind)
            }
        case .q4_0, .q4_1, .q5_1:
            let a = wActs!, nb = w.cols / 32, kind = w.type == .q4_0 ? 0 : (w.type == .q4_1 ? 3 : 4)
            forTiles(w, out, r0, r1, nTokens) { row, t0, nt, o in
                portableTile16(row, nb, a, t0, nt, o, rows, kind: kind)
            }
        default:
            portableGenericRows(w, out, r0, r1, x, nTokens, scratch.rowBuffer(thread: thread, cols: w.cols))
        }
    }

    /// Generic path: dequantize each weight row to Float, then a Float dot per token.
    static func portableGenericRows(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
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
                out[t * rows + r] = portableFloatDot(rowPtr, x + t * cols, cols)
            }
        }
    }

    /// Same operation order as the x86 `floatDot` (four 8-lane FMA accumulators, fixed reduction),
    /// so on hardware with FMA both give the same bits.
    @inline(__always)
    static func portableFloatDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        var i = 0
        while i + 32 <= n {
            acc0 = acc0.addingProduct(f8(a + i), f8(b + i))
            acc1 = acc1.addingProduct(f8(a + i + 8), f8(b + i + 8))
            acc2 = acc2.addingProduct(f8(a + i + 16), f8(b + i + 16))
            acc3 = acc3.addingProduct(f8(a + i + 24), f8(b + i + 24))
            i += 32
        }
        while i + 8 <= n {
            acc0 = acc0.addingProduct(f8(a + i), f8(b + i))
            i += 8
        }
        var s = sum8((acc0 + acc1) + (acc2 + acc3))
        while i < n {
            s = s.addingProduct(a[i], b[i])
            i += 1
        }
        return s
    }

    // MARK: - Portable SIMD helpers

    @inline(__always)
    static func f8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Horizontal sum of 8 lanes in the x86 `hsum` order.
    @inline(__always)
    static func sum8(_ s: SIMD8<Float>) -> Float {
        let s4 = s.lowHalf + s.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        return s2[0] + s2[1]
    }

    @inline(__always)
    static func i8x32(_ p: UnsafeRawPointer) -> SIMD32<Int8> { p.loadUnaligned(as: SIMD32<Int8>.self) }

    /// 32 bytes as 8 UInt32 lanes (byte `4L + i` is byte `i` of lane `L`, little-endian).
    @inline(__always)
    static func u32x8(_ p: UnsafeRawPointer) -> SIMD8<UInt32> { p.loadUnaligned(as: SIMD8<UInt32>.self) }

    @inline(__always)
    static func halfAt(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// 16 packed bytes -> 32 nibbles as bytes: low nibbles first (elements 0..15), then high nibbles.
    @inline(__always)
    static func portableNibbles(_ p: UnsafeRawPointer) -> SIMD8<UInt32> {
        let v = p.loadUnaligned(as: SIMD4<UInt32>.self)
        return SIMD8<UInt32>(lowHalf: v & 0x0F0F_0F0F, highHalf: (v &>> 4) & 0x0F0F_0F0F)
    }

    /// 32 bits -> 32 bytes holding 0 or 1 (byte `i` = bit `i`).
    @inline(__always)
    static func portableBits(_ x: UInt32) -> SIMD8<UInt32> {
        // Lane L holds bits 4L..4L+3, spread to its 4 bytes.
        let t = SIMD8<UInt32>(repeating: x) &>> SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28)
        return (t & 1) | ((t & 2) &<< 7) | ((t & 4) &<< 14) | ((t & 8) &<< 21)
    }

    /// Exact Int32 -> Float conversion for |v| < 2^22: 1.5 * 2^23 + v has v in its low mantissa
    /// bits (a SIMD conversion initializer would compile to a per-lane loop).
    @inline(__always)
    static func toFloat(_ v: SIMD8<Int32>) -> SIMD8<Float> {
        unsafeBitCast(v &+ 0x4B40_0000, to: SIMD8<Float>.self) - 12_582_912
    }

    /// `pdot` for unsigned weight bytes (each < 128) minus `offset`: the offset is applied after
    /// widening to Int16, so it costs two subtractions and no byte arithmetic.
    @inline(__always)
    static func pdotU(_ w: SIMD8<UInt32>, _ offset: Int16, _ y: SIMD32<Int8>) -> SIMD8<Int32> {
        let w16 = unsafeBitCast(w, to: SIMD16<Int16>.self), y16 = unsafeBitCast(y, to: SIMD16<Int16>.self)
        let we = (w16 & 0x00FF) &- offset, wo = (w16 &>> 8) &- offset
        let p = we &* ((y16 &<< 8) &>> 8) &+ wo &* (y16 &>> 8)
        let p32 = unsafeBitCast(p, to: SIMD8<Int32>.self)
        return ((p32 &<< 16) &>> 16) &+ (p32 &>> 16)
    }

    /// Integer dot product of 32 int8 pairs as 8 Int32 partial sums: lane `k` holds elements
    /// `4k..4k+3` (lanes 0-3 the first 16 elements, 4-7 the last 16). Int8 values are widened by
    /// shifting reinterpreted 16- and 32-bit lanes; a pair of products must fit in Int16, which
    /// holds for every caller (|w| <= 128, |y| <= 127: 2 * 128 * 127 < 32768).
    @inline(__always)
    static func pdot(_ w: SIMD32<Int8>, _ y: SIMD32<Int8>) -> SIMD8<Int32> {
        let w16 = unsafeBitCast(w, to: SIMD16<Int16>.self), y16 = unsafeBitCast(y, to: SIMD16<Int16>.self)
        let p = ((w16 &<< 8) &>> 8) &* ((y16 &<< 8) &>> 8) &+ (w16 &>> 8) &* (y16 &>> 8)
        let p32 = unsafeBitCast(p, to: SIMD8<Int32>.self)
        return ((p32 &<< 16) &>> 16) &+ (p32 &>> 16)
    }
}
