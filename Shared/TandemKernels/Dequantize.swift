/// Dequantization of one row (or any run of whole blocks) of a ggml tensor into `Float`s.
///
/// Used for embedding lookups, for the slow matmul path of rarely used types, and as the
/// reference against which the integer kernels are tested. Layouts follow ggml's block structs.
public func dequantizeRow(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    precondition(count % type.blockSize == 0, "count must be a multiple of the block size")
    let nb = count / type.blockSize
    switch type {
    case .f32:
        dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
    case .f16:
        convertF16ToF32(src.assumingMemoryBound(to: UInt16.self), dst, count: count)
    case .bf16:
        convertBF16ToF32(src.assumingMemoryBound(to: UInt16.self), dst, count: count)
    case .q4_0:
        for b in 0..<nb { Dequant.q4_0(src + b * 18, dst + b * 32) }
    case .q4_1:
        for b in 0..<nb { Dequant.q4_1(src + b * 20, dst + b * 32) }
    case .q5_0:
        for b in 0..<nb { Dequant.q5_0(src + b * 22, dst + b * 32) }
    case .q5_1:
        for b in 0..<nb { Dequant.q5_1(src + b * 24, dst + b * 32) }
    case .q8_0:
        for b in 0..<nb { Dequant.q8_0(src + b * 34, dst + b * 32) }
    case .q2_K:
        for b in 0..<nb { Dequant.q2_K(src + b * 84, dst + b * 256) }
    case .q3_K:
        for b in 0..<nb { Dequant.q3_K(src + b * 110, dst + b * 256) }
    case .q4_K:
        for b in 0..<nb { Dequant.q4_K(src + b * 144, dst + b * 256) }
    case .q5_K:
        for b in 0..<nb { Dequant.q5_K(src + b * 176, dst + b * 256) }
    case .q6_K:
        for b in 0..<nb { Dequant.q6_K(src + b * 210, dst + b * 256) }
    case .q8_1, .q8_K:
        preconditionFailure("dequantizeRow: unsupported type \(type.name)")
    }
}

/// Per-block dequantizers (one ggml block each).
@usableFromInline
enum Dequant {
    @inline(__always) @usableFromInline
    static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    @inline(__always) @usableFromInline
    static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        p.load(fromByteOffset: offset, as: UInt8.self)
    }

    // block_q4_0 { f16 d; u8 qs[16] }: x[j] = d*(lo-8), x[j+16] = d*(hi-8)
    @inline(__always) @usableFromInline
    static func q4_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        for j in 0..<16 {
            let q = byte(b, 2 + j)
            y[j] = Float(Int32(q & 0xF) - 8) * d
            y[j + 16] = Float(Int32(q >> 4) - 8) * d
        }
    }

    // block_q4_1 { f16 d; f16 m; u8 qs[16] }: x = d*q + m
    @inline(__always) @usableFromInline
    static func q4_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b), m = half(b, 2)
        for j in 0..<16 {
            let q = byte(b, 4 + j)
            y[j] = Float(q & 0xF) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    // block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: x = d*((q | hbit<<4) - 16)
    @inline(__always) @usableFromInline
    static func q5_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        let qh = b.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        for j in 0..<16 {
            let q = byte(b, 6 + j)
            let h0 = UInt8(truncatingIfNeeded: ((qh >> UInt32(j)) << 4) & 0x10)
            let h1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j + 12)) & 0x10)
            y[j] = Float(Int32((q & 0xF) | h0) - 16) * d
            y[j + 16] = Float(Int32((q >> 4) | h1) - 16) * d
        }
    }

    // block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: x = d*(q | hbit<<4) + m
    @inline(__always) @usableFromInline
    static func q5_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b), m = half(b, 2)
        let qh = b.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        for j in 0..<16 {
            let q = byte(b, 8 + j)
            let h0 = UInt8(truncatingIfNeeded: ((qh >> UInt32(j)) << 4) & 0x10)
            let h1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j + 12)) & 0x10)
            y[j] = Float((q & 0xF) | h0) * d + m
            y[j + 16] = Float((q >> 4) | h1) * d + m
        }
    }

    // block_q8_0 { f16 d; i8 qs[32] }
    @inline(__always) @usableFromInline
    static func q8_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b)
        for j in 0..<32 {
            y[j] = Float(b.load(fromByteOffset: 2 + j, as: Int8.self)) * d
        }
    }

    // block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }
    @usableFromInline
    static func q2_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b, 80), dmin = half(b, 82)
        var out = 0, isc = 0
        for n in stride(from: 0, to: 64, by: 32) {
            var shift: UInt8 = 0
            for _ in 0..<4 {
                for half in 0..<2 {
                    let sc = byte(b, isc); isc += 1
                    let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        let q = (byte(b, 16 + n + half * 16 + l) >> shift) & 3
                        y[out] = dl * Float(q) - ml
                        out += 1
                    }
                }
                shift += 2
            }
        }
    }

    // block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }
    @usableFromInline
    static func q3_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b, 108)
        let kmask1: UInt32 = 0x0303_0303, kmask2: UInt32 = 0x0f0f_0f0f
        let a0 = b.loadUnaligned(fromByteOffset: 96, as: UInt32.self)
        let a1 = b.loadUnaligned(fromByteOffset: 100, as: UInt32.self)
        let tmp = b.loadUnaligned(fromByteOffset: 104, as: UInt32.self)
        var aux: (UInt32, UInt32, UInt32, UInt32) = (
            (a0 & kmask2) | (((tmp >> 0) & kmask1) << 4),
            (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4),
            ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4),
            ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
        )
        withUnsafeBytes(of: &aux) { scales in
            var out = 0, isc = 0
            var m: UInt8 = 1
            for n in stride(from: 0, to: 64, by: 32) {
                var shift: UInt8 = 0
                for _ in 0..<4 {
                    for half in 0..<2 {
                        let sc = Int32(Int8(bitPattern: scales[isc])) - 32; isc += 1
                        let dl = d * Float(sc)
                        for l in 0..<16 {
                            let idx = half * 16 + l
                            let q = Int32((byte(b, 32 + n + idx) >> shift) & 3)
                            let h: Int32 = (byte(b, idx) & m) != 0 ? 0 : 4
                            y[out] = dl * Float(q - h)
                            out += 1
                        }
                    }
                    shift += 2
                    m <<= 1
                }
            }
        }
    }

    /// Unpacks the 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
    @inline(__always) @usableFromInline
    static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        if j < 4 {
            return (byte(q, j) & 63, byte(q, j + 4) & 63)
        } else {
            let sc = (byte(q, j + 4) & 0xF) | ((byte(q, j - 4) >> 6) << 4)
            let m = (byte(q, j + 4) >> 4) | ((byte(q, j) >> 6) << 4)
            return (sc, m)
        }
    }

    // block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }
    @usableFromInline
    static func q4_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b), dmin = half(b, 2)
        let scales = b + 4, qs = b + 16
        for j in 0..<4 {
            let (sc1, m1) = scaleMinK4(2 * j, scales)
            let (sc2, m2) = scaleMinK4(2 * j + 1, scales)
            let d1 = d * Float(sc1), mm1 = dmin * Float(m1)
            let d2 = d * Float(sc2), mm2 = dmin * Float(m2)
            for l in 0..<32 {
                let q = byte(qs, 32 * j + l)
                y[64 * j + l] = d1 * Float(q & 0xF) - mm1
                y[64 * j + 32 + l] = d2 * Float(q >> 4) - mm2
            }
        }
    }

    // block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }
    @usableFromInline
    static func q5_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b), dmin = half(b, 2)
        let scales = b + 4, qh = b + 16, qs = b + 48
        var u1: UInt8 = 1, u2: UInt8 = 2
        for j in 0..<4 {
            let (sc1, m1) = scaleMinK4(2 * j, scales)
            let (sc2, m2) = scaleMinK4(2 * j + 1, scales)
            let d1 = d * Float(sc1), mm1 = dmin * Float(m1)
            let d2 = d * Float(sc2), mm2 = dmin * Float(m2)
            for l in 0..<32 {
                let q = byte(qs, 32 * j + l), h = byte(qh, l)
                y[64 * j + l] = d1 * Float((q & 0xF) + ((h & u1) != 0 ? 16 : 0)) - mm1
                y[64 * j + 32 + l] = d2 * Float((q >> 4) + ((h & u2) != 0 ? 16 : 0)) - mm2
            }
            u1 <<= 2
            u2 <<= 2
        }
    }

    // block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }
    @usableFromInline
    static func q6_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b, 208)
        for n in 0..<2 {
            let ql = b + 64 * n, qh = b + 128 + 32 * n, sc = b + 192 + 8 * n
            let yy = y + 128 * n
            for l in 0..<32 {
                let isc = l / 16
                let h = byte(qh, l)
                let q1 = Int32((byte(ql, l) & 0xF) | ((h & 3) << 4)) - 32
                let q2 = Int32((byte(ql, l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int32((byte(ql, l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int32((byte(ql, l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                let s = { (i: Int) in Float(sc.load(fromByteOffset: i, as: Int8.self)) }
                yy[l] = d * s(isc) * Float(q1)
                yy[l + 32] = d * s(isc + 2) * Float(q2)
                yy[l + 64] = d * s(isc + 4) * Float(q3)
                yy[l + 96] = d * s(isc + 6) * Float(q4)
            }
        }
    }
}
