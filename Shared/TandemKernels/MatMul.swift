import _Builtin_intrinsics.intel

/// Matrix multiplication of quantized weights with Float activations.
public enum MatMul {
    /// `out[t * w.rows + r] = sum_c W[r, c] * x[t * w.cols + c]` for `t` in `0..<nTokens`.
    ///
    /// BATCH-INVARIANT: the value for token `t` is bit-for-bit identical whatever `nTokens` is
    /// and whatever the other tokens are: every output element is computed by exactly the same
    /// sequence of operations (activations are quantized per token; token tiles only change the
    /// loop order across tokens, never the per-token arithmetic). Speculative verification relies
    /// on this.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                                _ out: UnsafeMutablePointer<Float>, pool: ComputePool, scratch: MatMulScratch) {
        precondition(w.type.isSupported, "MatMul: unsupported type \(w.type.name)")
        if nTokens <= 0 || w.rows == 0 { return }
        scratch.reserve(cols: w.cols, nTokens: nTokens, threads: pool.threadCount)
        multiplyGeneric(w, x, nTokens: nTokens, out, pool: pool, scratch: scratch)
    }

    /// Rows per parallel chunk: enough chunks for load balancing, big enough to amortize.
    @inlinable
    static func chunkRows(_ rows: Int, threads: Int) -> Int {
        let target = max(1, rows / (threads * 8))
        return max(4, min(64, target))
    }

    /// Generic path: dequantize each weight row to Float, then a Float dot per token.
    static func multiplyGeneric(_ w: WeightMatrix, _ x: UnsafePointer<Float>, nTokens: Int,
                                _ out: UnsafeMutablePointer<Float>, pool: ComputePool, scratch: MatMulScratch) {
        let rows = w.rows, cols = w.cols
        let chunk = chunkRows(rows, threads: pool.threadCount)
        let nChunks = (rows + chunk - 1) / chunk
        pool.parallelFor(nChunks) { c, thread in
            let buf = scratch.rowBuffer(thread: thread, cols: cols)
            let r0 = c * chunk, r1 = min(rows, r0 + chunk)
            for r in r0..<r1 {
                let rowPtr: UnsafePointer<Float>
                if w.type == .f32 {
                    rowPtr = w.row(r).assumingMemoryBound(to: Float.self)
                } else {
                    dequantizeRow(w.type, w.row(r), buf, count: cols)
                    rowPtr = UnsafePointer(buf)
                }
                for t in 0..<nTokens {
                    out[t * rows + r] = VectorOps.dot(rowPtr, x + t * cols, count: cols)
                }
            }
        }
    }
}
