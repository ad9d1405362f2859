/// Portable kernels for Q6_K weights (ggml layout) against Q8_K-style activations.
extension MatMul {
    /// Per token and super-block: `I = sum_s scale_s * dot_s` over 16 sub-blocks of 16 (exact),
    /// then `acc += (d * dy) * I`. Weights are made signed (q - 32) after widening (`pdotU`), so no offset correction.
    @inline(never)
    static func portableTileQ6K(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                                _ out: UnsafeMutablePointer<Float>, _ stride: Int) {
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        var acc0: Float = 0, acc1: Float = 0, acc2: Float = 0, acc3: Float = 0
        for b in 0..<nb {
            let blk = row + 210 * b
            let d = halfAt(blk, 208)
            let sc = blk + 192
            /// Scales of sub-blocks `k` (values 0..15 of a 32-run) and `k + 1` (16..31), per `pdot` lane.
            @inline(__always) func scalePair(_ k: Int) -> SIMD8<Int32> {
                let lo = Int32(sc.load(fromByteOffset: k, as: Int8.self))
                let hi = Int32(sc.load(fromByteOffset: k + 1, as: Int8.self))
                return SIMD8<Int32>(lowHalf: SIMD4(repeating: lo), highHalf: SIMD4(repeating: hi))
            }
            var i0 = SIMD8<Int32>(), i1 = i0, i2 = i0, i3 = i0
            for n in 0..<2 {
                let ql0 = u32x8(blk + 64 * n), ql1 = u32x8(blk + 64 * n + 32), qh = u32x8(blk + 128 + 32 * n)
                let m4: UInt32 = 0x0F0F_0F0F, m2: UInt32 = 0x0303_0303
                let q1 = (ql0 & m4) | ((qh & m2) &<< 4)
                let q2 = (ql1 & m4) | (((qh &>> 2) & m2) &<< 4)
                let q3 = ((ql0 &>> 4) & m4) | (((qh &>> 4) & m2) &<< 4)
                let q4 = ((ql1 &>> 4) & m4) | (((qh &>> 6) & m2) &<< 4)
                let s1 = scalePair(8 * n), s2 = scalePair(8 * n + 2), s3 = scalePair(8 * n + 4), s4 = scalePair(8 * n + 6)
                let o = 256 * b + 128 * n
                @inline(__always) func step(_ y: UnsafePointer<Int8>, _ acc: inout SIMD8<Int32>) {
                    // Stored values are q + 32: subtracted after widening.
                    acc &+= pdotU(q1, 32, i8x32(y + o)) &* s1 &+ pdotU(q2, 32, i8x32(y + o + 32)) &* s2
                        &+ pdotU(q3, 32, i8x32(y + o + 64)) &* s3 &+ pdotU(q4, 32, i8x32(y + o + 96)) &* s4
                }
                step(y0, &i0)
                if nt > 1 { step(y1, &i1) }
                if nt > 2 { step(y2, &i2) }
                if nt > 3 { step(y3, &i3) }
            }
            acc0 += (d * d0[b]) * Float(i0.wrappedSum())
            if nt > 1 { acc1 += (d * d1[b]) * Float(i1.wrappedSum()) }
            if nt > 2 { acc2 += (d * d2[b]) * Float(i2.wrappedSum()) }
            if nt > 3 { acc3 += (d * d3[b]) * Float(i3.wrappedSum()) }
        }
        out[0] = acc0
        if nt > 1 { out[stride] = acc1 }
        if nt > 2 { out[2 * stride] = acc2 }
        if nt > 3 { out[3 * stride] = acc3 }
    }
}
