/// Attention over a half-precision (f16) KV cache: the query and the output stay `Float`, keys and
/// values are read as IEEE half bits (`UInt16`) and widened on the fly (F16C `vcvtph2ps` on the x86
/// kernels, `Float16` SIMD conversion on the portable ones). Halving the cache halves the memory a
/// session holds and the bytes attention streams per position.
///
/// Every function computes each output from its own inputs with a fixed operation order (two 8-lane
/// accumulators for a dot product, one fused multiply-add per value row, in position order), so a
/// result never depends on how many positions or sequences a forward pass carries: the engine's batch
/// invariance holds for f16 caches exactly as for f32 ones. The bodies live in
/// X86/AttentionOps+X86.swift or Portable/PortableAttentionOps.swift, chosen like `MatMulKernels`;
/// both perform the same operations in the same order.
public enum AttentionOps {
    /// Converts `count` floats to half bits, round to nearest even (a new position's keys and values,
    /// once per layer and token: not a hot loop, so one scalar conversion per value, the same on every
    /// build).
    @inlinable
    public static func storeF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count n: Int) {
        for i in 0..<n { dst[i] = Float16(src[i]).bitPattern }
    }
}
