
/// Matrix multiplication of quantized weights with Float activations.
///
/// Fast paths (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) quantize the activations of each
/// token on the fly (Q8_0-style per 32 values, or Q8_K-style per 256 values with per-16 sums) and
/// run AVX2 integer dot products (`maddubs`/`madd`). Q4_0, Q4_1 and Q5_1 take int16 activations
/// instead (per 32 values, `madd` on widened weights): on their row-major kernels that costs the
/// same multiply-pipe work as int8 (two ops per 32 products either way) and removes the int8
/// rounding error, which on SmolLM2-135M (Q4_1) moved logits by up to 3.9 % of their range. Each weight block is unpacked once and
/// reused for a tile of up to 4 tokens, which is what makes batched (speculative verification)
/// forwards cheaper per token than decode. Other types dequantize rows to Float.
///
/// Two kernel families implement this (`MatMulKernels`): AVX2 intrinsics on x86_64 (`X86/`) and
/// portable Swift SIMD (`Portable/`, NEON on arm64). This file holds what both share: the public
/// entry points, the parallel row split, token tiling and activation formats. The kernel module
/// is compiled whole-module (`-wmo`, Package.swift) even in debug, so the per-family files
/// inline each other's helpers.
public enum MatMul {
    /// `out[t * w.rows + r] = sum_c W[r, c] * x[t * w.cols + c]` for `t` in `0..<nTokens`.
    ///
    /// BATCH-INVARIANT: the value for token `t` is bit-for-bit identical whatever `nTokens` is
    /// and whatever the other tokens are: every output element is computed by exactly the same
    /// sequence of operations (activations are quantized per token; token tiles only change the
    /// loop order across tokens, never the per-token arithmetic; results do not depend on the
    /// thread count either). Speculative verification relies on this.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                                _ out: UnsafeMutablePointer<Float>, pool: ComputePool, scratch: MatMulScratch) {
        execute(Targets(w, out, nil, nil, nil, nil), x, nTokens: nTokens, pool: pool, scratch: scratch,
                kernels: .selected)
    }

    /// `multiply` with an explicit kernel family, so tests (and `tandem bench matmul`) can run the
    /// portable kernels next to the x86 ones in one build. `kernels` must be in `MatMulKernels.available`.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                                _ out: UnsafeMutablePointer<Float>, pool: ComputePool, scratch: MatMulScratch,
                                kernels: MatMulKernels) {
        precondition(MatMulKernels.available.contains(kernels), "MatMul: \(kernels) kernels are not compiled in")
        execute(Targets(w, out, nil, nil, nil, nil), x, nTokens: nTokens, pool: pool, scratch: scratch,
                kernels: kernels)
    }

    /// Several matrices applied to the same input (e.g. Q, K and V projections, or FFN gate and
    /// up): the activations are quantized once and all rows run in one parallel loop, which
    /// saves a synchronization per matrix. Results are bit-identical to separate `multiply` calls.
    /// All matrices must have the same `cols`.
    public static func multiply(_ a: WeightMatrix, _ outA: UnsafeMutablePointer<Float>,
                                _ b: WeightMatrix, _ outB: UnsafeMutablePointer<Float>,
                                _ c: WeightMatrix? = nil, _ outC: UnsafeMutablePointer<Float>? = nil,
                                input x: UnsafePointer<Float>, nTokens: Int, pool: ComputePool,
                                scratch: MatMulScratch) {
        precondition(a.cols == b.cols && (c == nil || c!.cols == a.cols), "MatMul: shared input needs equal cols")
        precondition((c == nil) == (outC == nil), "MatMul: matrix c needs an output")
        execute(Targets(a, outA, b, outB, c, outC), x, nTokens: nTokens, pool: pool, scratch: scratch,
                kernels: .selected)
    }

    /// Up to three (matrix, output) pairs sharing one input, without heap allocation.
    @usableFromInline
    struct Targets {
        let w0: WeightMatrix, o0: UnsafeMutablePointer<Float>
        let w1: WeightMatrix?, o1: UnsafeMutablePointer<Float>?
        let w2: WeightMatrix?, o2: UnsafeMutablePointer<Float>?
        init(_ w0: WeightMatrix, _ o0: UnsafeMutablePointer<Float>, _ w1: WeightMatrix?,
             _ o1: UnsafeMutablePointer<Float>?, _ w2: WeightMatrix?, _ o2: UnsafeMutablePointer<Float>?) {
            self.w0 = w0; self.o0 = o0; self.w1 = w1; self.o1 = o1; self.w2 = w2; self.o2 = o2
        }
    }

    enum Path { case k, q32, q16, float }

    @inline(__always)
    static func path(_ t: GGMLType) -> Path {
        switch t {
        case .q4_K, .q5_K, .q6_K: return .k
        case .q5_0, .q8_0: return .q32
        case .q4_0, .q4_1, .q5_1: return .q16
        default: return .float
        }
    }

    static func execute(_ tg: Targets, _ x: UnsafePointer<Float>, nTokens: Int, pool: ComputePool,
                        scratch: MatMulScratch, kernels: MatMulKernels) {
        let cols = tg.w0.cols
        if nTokens <= 0 { return }
        scratch.reserve(cols: cols, nTokens: nTokens, threads: pool.threadCount)
        var needK = false, need32 = false, need16 = false
        @inline(__always) func note(_ w: WeightMatrix?) {
            guard let w else { return }
            precondition(w.type.isSupported, "MatMul: unsupported type \(w.type.name)")
            switch path(w.type) {
            case .k: needK = true
            case .q32: need32 = true
            case .q16: need16 = true
            case .float: break
            }
        }
        note(tg.w0)
        note(tg.w1)
        note(tg.w2)
        let kActs = needK ? quantizeActivations(x, nTokens: nTokens, cols: cols, kFormat: true, scratch: scratch, pool: pool,
                                                kernels: kernels) : nil
        let qActs = need32 ? quantizeActivations(x, nTokens: nTokens, cols: cols, kFormat: false, scratch: scratch,
                                                 pool: pool, kernels: kernels) : nil
        let wActs = need16 ? quantizeActivations16(x, nTokens: nTokens, cols: cols, scratch: scratch, pool: pool,
                                                   kernels: kernels) : nil

        let threads = pool.threadCount
        let r0 = tg.w0.rows, r1 = tg.w1?.rows ?? 0, r2 = tg.w2?.rows ?? 0
        let ch0 = chunkRows(r0 + r1 + r2, threads: threads)
        let n0 = (r0 + ch0 - 1) / ch0, n1 = (r1 + ch0 - 1) / ch0, n2 = (r2 + ch0 - 1) / ch0
        pool.parallelFor(n0 + n1 + n2) { c, thread in
            if c < n0 {
                chunk(tg.w0, tg.o0, c * ch0, min(r0, (c + 1) * ch0), x, nTokens, kActs, qActs, wActs, scratch, thread,
                      kernels)
            } else if c < n0 + n1 {
                let i = c - n0
                chunk(tg.w1!, tg.o1!, i * ch0, min(r1, (i + 1) * ch0), x, nTokens, kActs, qActs, wActs, scratch, thread,
                      kernels)
            } else {
                let i = c - n0 - n1
                chunk(tg.w2!, tg.o2!, i * ch0, min(r2, (i + 1) * ch0), x, nTokens, kActs, qActs, wActs, scratch, thread,
                      kernels)
            }
        }
    }

    /// Rows `r0..<r1` of `w` for all tokens, with the chosen kernel family.
    @inline(__always)
    static func chunk(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int,
                      _ x: UnsafePointer<Float>, _ nTokens: Int, _ kActs: Acts?, _ qActs: Acts?,
                      _ wActs: Acts?, _ scratch: MatMulScratch, _ thread: Int, _ kernels: MatMulKernels) {
        #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
        if kernels == .x86AVX2 {
            rowsChunk(w, out, r0, r1, x, nTokens, kActs, qActs, wActs, scratch, thread)
            return
        }
        #endif
        portableRowsChunk(w, out, r0, r1, x, nTokens, kActs, qActs, wActs, scratch, thread)
    }


    /// From this many tokens on, K-quant rows are processed by the whole-batch kernels
    /// (`tileKMany`, `tileQ6KMany`), which unpack each super-block once for all tokens.
    /// Both kernel families perform identical per-token arithmetic.
    static let manyThreshold = 5

    /// Token blocks for the whole-batch kernels: a block's activations stay in L1 while every
    /// row of the chunk runs against them.
    @inline(__always)
    static func forTokenBlocks(_ nTokens: Int, _ body: (_ t0: Int, _ nt: Int) -> Void) {
        var t0 = 0
        while t0 < nTokens {
            let nt = min(tokenBlock, nTokens - t0)
            body(t0, nt)
            t0 += nt
        }
    }

    static let tokenBlock = 8

    /// Rows per parallel chunk: enough chunks for load balancing, big enough to amortize; a
    /// multiple of 8 so chunks never split a packed row group (`WeightPacking`).
    @inlinable
    static func chunkRows(_ rows: Int, threads: Int) -> Int {
        let target = max(1, rows / (threads * 8))
        return (max(8, min(64, target)) + 7) / 8 * 8
    }

    /// Calls `body` with a literal tile count so the inlined kernel is specialized per count
    /// (no per-token branches in the inner loops). The per-token arithmetic is identical in
    /// every specialization, which keeps results batch-invariant.
    @inline(__always)
    static func withTileCount(_ nt: Int, _ body: (Int) -> Void) {
        switch nt {
        case 1: body(1)
        case 2: body(2)
        case 3: body(3)
        default: body(4)
        }
    }

    /// Each row of `r0..<r1` against token tiles of up to 4.
    @inline(__always)
    static func forTiles(_ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int, _ nTokens: Int,
                         _ tile: (_ row: UnsafeRawPointer, _ t0: Int, _ nt: Int, _ out: UnsafeMutablePointer<Float>) -> Void) {
        let rowBytes = w.rowBytes, rows = w.rows
        var r = r0
        while r < r1 {
            let row = w.data + r * rowBytes
            var t0 = 0
            while t0 < nTokens {
                let nt = min(4, nTokens - t0)
                tile(row, t0, nt, out + t0 * rows + r)
                t0 += nt
            }
            r += 1
        }
    }


    // MARK: - Activation quantization

    /// Quantized activations of a batch of tokens.
    @usableFromInline
    struct Acts {
        /// int8 values, token `t` at `qs + t * cols`.
        let qs: UnsafePointer<Int8>
        /// Scale per block (32 or 256 values), token `t` at `d + t * blocksPerToken`.
        let d: UnsafePointer<Float>
        /// Q8_K: Int16 sum per 16 values; Q8_0: Int32 `16 * sum(q)` per 32 values; int16
        /// activations: Float `d * sum(q)` per 32 values.
        let sums: UnsafeRawPointer
        /// Q8_K only: Int16 sum per 32 values, token `t` at `pairs + t * (cols / 32)`.
        let pairs: UnsafePointer<Int16>
        let cols: Int
        let blocksPerToken: Int
    }

    static func quantizeActivations(_ x: UnsafePointer<Float>, nTokens: Int, cols: Int, kFormat: Bool,
                                    scratch: MatMulScratch, pool: ComputePool, kernels: MatMulKernels) -> Acts {
        let slot = kFormat ? 0 : 1
        let qs = scratch.quants(slot)
        let d = scratch.scales(slot)
        let sums = scratch.sums(slot)
        let pairs = scratch.pairs()
        let bs = kFormat ? 256 : 32
        let nb = cols / bs
        @inline(__always) func one(_ t: Int) {
            let bsums = sums.assumingMemoryBound(to: Int16.self) + t * (cols / 16)
            let corr = sums.assumingMemoryBound(to: Int32.self) + t * nb
            #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
            if kernels == .x86AVX2 {
                if kFormat {
                    quantizeRowQ8K(x + t * cols, qs + t * cols, d + t * nb, bsums, pairs + t * (cols / 32), nb)
                } else {
                    quantizeRowQ8_0(x + t * cols, qs + t * cols, d + t * nb, corr, nb)
                }
                return
            }
            #endif
            if kFormat {
                portableQuantizeRowQ8K(x + t * cols, qs + t * cols, d + t * nb, bsums, pairs + t * (cols / 32), nb)
            } else {
                portableQuantizeRowQ8_0(x + t * cols, qs + t * cols, d + t * nb, corr, nb)
            }
        }
        if nTokens >= 4 && nTokens * cols >= 16384 {
            pool.parallelFor(nTokens) { t in one(t) }
        } else {
            for t in 0..<nTokens { one(t) }
        }
        return Acts(qs: qs, d: d, sums: UnsafeRawPointer(sums), pairs: pairs, cols: cols, blocksPerToken: nb)
    }

    /// int16 activations per 32 values (scale amax / 32767) for Q4_0, Q4_1 and Q5_1, in slot 2;
    /// `sums` holds `d * sum(q)` per block (the Q4_1/Q5_1 min term). The portable kernels store
    /// the values as Int32 in their own order (`portableQuantizeRowQ16`).
    static func quantizeActivations16(_ x: UnsafePointer<Float>, nTokens: Int, cols: Int, scratch: MatMulScratch,
                                      pool: ComputePool, kernels: MatMulKernels) -> Acts {
        let raw = UnsafeMutableRawPointer(scratch.quants(2))
        let d = scratch.scales(2)
        let sums = scratch.sums(2).assumingMemoryBound(to: Float.self)
        let nb = cols / 32
        @inline(__always) func one(_ t: Int) {
            #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
            if kernels == .x86AVX2 {
                quantizeRowQ16(x + t * cols, raw.assumingMemoryBound(to: Int16.self) + t * cols, d + t * nb,
                               sums + t * nb, nb)
                return
            }
            #endif
            portableQuantizeRowQ16(x + t * cols, raw.assumingMemoryBound(to: Int32.self) + t * cols, d + t * nb,
                                   sums + t * nb, nb)
        }
        if nTokens >= 4 && nTokens * cols >= 16384 {
            pool.parallelFor(nTokens) { t in one(t) }
        } else {
            for t in 0..<nTokens { one(t) }
        }
        return Acts(qs: UnsafeRawPointer(raw).assumingMemoryBound(to: Int8.self), d: d, sums: UnsafeRawPointer(sums),
                    pairs: scratch.pairs(), cols: cols, blocksPerToken: nb)
    }
}
