/// Preallocated per-engine scratch for `MatMul`: quantized activations (slot 0 the per-256 int8
/// K-quant format, slot 1 the per-32 int8 format, slot 2 the per-32 int16 format, held as Int32
/// by the portable kernels) and per-thread
/// row buffers. Buffers grow
/// only when a larger batch or wider matrix arrives, so steady-state decode performs no heap
/// allocation. Not thread-safe: one scratch per engine (per concurrent forward pass).
public final class MatMulScratch {
    /// Per slot: int8 values, block scales (Float), block sums (Int16 per 16 or Float per 32).
    private var quantsBuf: [UnsafeMutableRawPointer]
    private var scalesBuf: [UnsafeMutablePointer<Float>]
    private var sumsBuf: [UnsafeMutableRawPointer]
    private var quantsCapacity = 0
    private var scalesCapacity = 0
    private var sumsCapacity = 0
    /// Q8_K: Int16 sum per 32 values (the packed Q4_K kernel's min correction).
    private var pairsBuf: UnsafeMutablePointer<Int16>
    private var pairsCapacity = 0
    /// Per-thread float buffers (dequantized rows for the generic path).
    private var rowBuffers: UnsafeMutablePointer<Float>
    private var rowBuffersCapacity = 0
    private var rowStride = 0

    public init() {
        quantsBuf = (0..<3).map { _ in .allocate(byteCount: 64, alignment: 64) }
        scalesBuf = (0..<3).map { _ in .allocate(capacity: 16) }
        sumsBuf = (0..<3).map { _ in .allocate(byteCount: 64, alignment: 64) }
        rowBuffers = .allocate(capacity: 16)
        pairsBuf = .allocate(capacity: 16)
    }

    deinit {
        quantsBuf.forEach { $0.deallocate() }
        scalesBuf.forEach { $0.deallocate() }
        sumsBuf.forEach { $0.deallocate() }
        rowBuffers.deallocate()
        pairsBuf.deallocate()
    }

    /// Makes sure buffers can hold `nTokens` activations of `cols` and `threads` rows of `cols`.
    func reserve(cols: Int, nTokens: Int, threads: Int) {
        let q = 4 * nTokens * cols + 64  // int16 (x86) or Int32 (portable kernels) in slot 2
        if q > quantsCapacity {
            for i in 0..<3 {
                quantsBuf[i].deallocate()
                quantsBuf[i] = .allocate(byteCount: q, alignment: 64)
            }
            quantsCapacity = q
        }
        let s = nTokens * (cols / 32 + 1) + 16
        if s > scalesCapacity {
            for i in 0..<3 {
                scalesBuf[i].deallocate()
                scalesBuf[i] = .allocate(capacity: s)
            }
            scalesCapacity = s
        }
        // At most one 2-byte sum per 16 values or one 4-byte sum per 32 values.
        let sb = nTokens * (cols / 8 + 8) + 64
        if sb > sumsCapacity {
            for i in 0..<3 {
                sumsBuf[i].deallocate()
                sumsBuf[i] = .allocate(byteCount: sb, alignment: 64)
            }
            sumsCapacity = sb
        }
        let pc = nTokens * (cols / 32 + 1) + 16
        if pc > pairsCapacity {
            pairsBuf.deallocate()
            pairsBuf = .allocate(capacity: pc)
            pairsCapacity = pc
        }
        // Row buffers double as per-token accumulators and unpacked weights for the K kernels
        // (8 floats per token).
        let stride = max((cols + 63) / 64 * 64 + 64, nTokens * 8 + 64)
        let newStride = max(stride, rowStride)
        if threads * newStride > rowBuffersCapacity {
            rowBuffers.deallocate()
            rowStride = newStride
            rowBuffersCapacity = threads * rowStride
            rowBuffers = .allocate(capacity: rowBuffersCapacity)
        }
    }

    @inline(__always) func quants(_ slot: Int) -> UnsafeMutablePointer<Int8> {
        quantsBuf[slot].assumingMemoryBound(to: Int8.self)
    }
    @inline(__always) func scales(_ slot: Int) -> UnsafeMutablePointer<Float> { scalesBuf[slot] }
    @inline(__always) func sums(_ slot: Int) -> UnsafeMutableRawPointer { sumsBuf[slot] }
    @inline(__always) func pairs() -> UnsafeMutablePointer<Int16> { pairsBuf }

    /// Per-thread float buffer of at least `cols` floats (valid after `reserve`).
    @inline(__always) func rowBuffer(thread: Int, cols: Int) -> UnsafeMutablePointer<Float> {
        rowBuffers + thread * rowStride
    }
}
