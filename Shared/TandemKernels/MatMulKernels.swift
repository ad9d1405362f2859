/// The two implementations of `MatMul` and `VectorOps`, and which one a build uses.
///
/// Selected at build time: the AVX2 kernels when compiling for x86_64, unless the compile
/// condition `TANDEM_PORTABLE_KERNELS` is set; the portable Swift SIMD kernels otherwise (every
/// other architecture, e.g. arm64 where they compile to NEON). So the exact condition for the x86
/// path is `#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS`, and
/// `swift build -Xswiftc -DTANDEM_PORTABLE_KERNELS` builds an x86 binary with the portable path
/// only (what `make test-portable` tests). There is no run-time CPU dispatch: the x86 build
/// assumes x86-64-v3 (AVX2, FMA, F16C), the baseline Package.swift compiles for.
///
/// The portable kernels are compiled in every build, so a normal x86 build can run both
/// (`MatMul.multiply(..., kernels:)`) and the tests compare them on the same data.
public enum MatMulKernels: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// AVX2/FMA/F16C intrinsics (`X86/`), with row-interleaved packed weights.
    case x86AVX2
    /// Swift SIMD types only (`Portable/`), reading ggml's row-major layout (packed copies unused).
    case portable

    /// The family `MatMul.multiply` uses in this build.
    @inlinable
    public static var selected: MatMulKernels {
        #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
        return .x86AVX2
        #else
        return .portable
        #endif
    }

    /// The families compiled into this build.
    public static var available: [MatMulKernels] {
        #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
        return [.x86AVX2, .portable]
        #else
        return [.portable]
        #endif
    }

    public var description: String {
        switch self {
        case .x86AVX2: return "x86-avx2"
        case .portable: return "portable-simd"
        }
    }
}
