/// Preallocated per-engine scratch for `MatMul`: quantized activations and per-thread row
/// buffers. Buffers grow only when a larger batch or wider matrix arrives, so steady-state decode
/// performs no heap allocation. Not thread-safe: one scratch per engine (per concurrent forward).
public final class MatMulScratch {
    /// Quantized activations (int8), `nTokens * cols` bytes (+ padding).
    @usableFromInline var quants: UnsafeMutableRawPointer
    @usableFromInline var quantsCapacity: Int
    /// Per-block activation scales (Float), `nTokens * cols / 32` entries at most.
    @usableFromInline var scales: UnsafeMutablePointer<Float>
    @usableFromInline var scalesCapacity: Int
    /// Per-16 or per-32 activation sums (Int16 for Q8_K bsums, Float for Q8_1-style sums).
    @usableFromInline var sums: UnsafeMutableRawPointer
    @usableFromInline var sumsCapacity: Int
    /// Per-thread float buffers (dequantized rows for the generic path).
    @usableFromInline var rowBuffers: UnsafeMutablePointer<Float>
    @usableFromInline var rowBuffersCapacity: Int

    public init() {
        quantsCapacity = 0
        quants = .allocate(byteCount: 64, alignment: 64)
        scalesCapacity = 0
        scales = .allocate(capacity: 16)
        sumsCapacity = 0
        sums = .allocate(byteCount: 64, alignment: 64)
        rowBuffersCapacity = 0
        rowBuffers = .allocate(capacity: 16)
    }

    deinit {
        quants.deallocate()
        scales.deallocate()
        sums.deallocate()
        rowBuffers.deallocate()
    }

    /// Makes sure buffers can hold `nTokens` activations of `cols` and `threads` rows of `cols`.
    @usableFromInline
    func reserve(cols: Int, nTokens: Int, threads: Int) {
        let q = nTokens * cols + 64
        if q > quantsCapacity {
            quants.deallocate()
            quants = .allocate(byteCount: q, alignment: 64)
            quantsCapacity = q
        }
        let s = nTokens * (cols / 16 + 1) + 16
        if s > scalesCapacity {
            scales.deallocate()
            scales = .allocate(capacity: s)
            scalesCapacity = s
        }
        // Sums: at most one Float per 16 elements (or one Int16 per 16).
        let sb = s * 4 + 64
        if sb > sumsCapacity {
            sums.deallocate()
            sums = .allocate(byteCount: sb, alignment: 64)
            sumsCapacity = sb
        }
        let r = threads * (cols + 64)
        if r > rowBuffersCapacity {
            rowBuffers.deallocate()
            rowBuffers = .allocate(capacity: r)
            rowBuffersCapacity = r
        }
    }

    /// Per-thread float buffer of at least `cols` floats.
    @inlinable
    func rowBuffer(thread: Int, cols: Int) -> UnsafeMutablePointer<Float> {
        rowBuffers + thread * (cols + 64)
    }
}
