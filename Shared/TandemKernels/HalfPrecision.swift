#if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
import _Builtin_intrinsics.intel
#endif

/// Converts IEEE half-precision values (raw bits) to `Float`: 8 at a time with F16C on the x86
/// kernels (`MatMulKernels`), one `Float16` conversion per value otherwise (a single instruction
/// on arm64). The conversion is exact, so both give the same values.
public func convertF16ToF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    #if arch(x86_64) && !TANDEM_PORTABLE_KERNELS
    while i + 8 <= count {
        let h = _mm_loadu_si128(UnsafeRawPointer(src + i).assumingMemoryBound(to: __m128i.self))
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h))
        i += 8
    }
    #endif
    while i < count {
        dst[i] = Float(Float16(bitPattern: src[i]))
        i += 1
    }
}

/// Converts `Float` to IEEE half precision (raw bits, round to nearest even).
public func convertF32ToF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count {
        dst[i] = Float16(src[i]).bitPattern
    }
}

/// Converts bfloat16 values (raw bits: the top half of a `Float`) to `Float`.
public func convertBF16ToF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count {
        dst[i] = Float(bitPattern: UInt32(src[i]) << 16)
    }
}

/// Scalar half -> float.
@inlinable @inline(__always)
public func f16ToF32(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

/// Scalar float -> half (round to nearest even).
@inlinable @inline(__always)
public func f32ToF16(_ value: Float) -> UInt16 { Float16(value).bitPattern }
