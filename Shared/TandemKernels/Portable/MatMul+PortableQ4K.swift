/// Portable kernels for Q4_K and Q5_K weights (ggml layout) against Q8_K-style activations.
extension MatMul {
    /// Scale and min of sub-block `j` (0..<8) of a Q4_K/Q5_K block: ggml's `get_scale_min_k4`.
    @inline(__always)
    static func portableScaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (Int32, Int32) {
        @inline(__always) func u(_ i: Int) -> Int32 { Int32(s.load(fromByteOffset: i, as: UInt8.self)) }
        if j < 4 { return (u(j) & 63, u(j + 4) & 63) }
        return ((u(j + 4) & 0x0F) | ((u(j - 4) >> 6) << 4), (u(j + 4) >> 4) | ((u(j) >> 6) << 4))
    }

    /// Q4_K (`high == false`, 144-byte blocks) and Q5_K (`high == true`, 176-byte blocks).
    /// Per token and super-block: `I = sum_j scale_j * dot_j` and `M = sum_j min_j * ysum_j` exactly
    /// in integers, then `acc += dy * (d * I - dmin * M)`, as the x86 kernel.
    @inline(never)
    static func portableTileK(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                              _ out: UnsafeMutablePointer<Float>, _ stride: Int, high: Bool) {
        let blockBytes = high ? 176 : 144
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let p0 = a.pairs + t0 * (cols / 32), p1 = p0 + cols / 32, p2 = p1 + cols / 32, p3 = p2 + cols / 32
        var acc0: Float = 0, acc1: Float = 0, acc2: Float = 0, acc3: Float = 0
        for b in 0..<nb {
            let blk = row + blockBytes * b
            let d = halfAt(blk), dmin = halfAt(blk, 2)
            let (sc0, mn0) = portableScaleMin(blk + 4, 0), (sc1, mn1) = portableScaleMin(blk + 4, 1)
            let (sc2, mn2) = portableScaleMin(blk + 4, 2), (sc3, mn3) = portableScaleMin(blk + 4, 3)
            let (sc4, mn4) = portableScaleMin(blk + 4, 4), (sc5, mn5) = portableScaleMin(blk + 4, 5)
            let (sc6, mn6) = portableScaleMin(blk + 4, 6), (sc7, mn7) = portableScaleMin(blk + 4, 7)
            let scales = (sc0, sc1, sc2, sc3, sc4, sc5, sc6, sc7)
            let qh = high ? u32x8(blk + 16) : SIMD8<UInt32>()
            var i0 = SIMD8<Int32>(), i1 = i0, i2 = i0, i3 = i0
            let off = 256 * b
            for j in 0..<4 {
                let q = u32x8(blk + (high ? 48 : 16) + 32 * j)
                var wl = q & 0x0F0F_0F0F, wh = (q &>> 4) & 0x0F0F_0F0F
                if high {
                    wl |= ((qh &>> UInt32(2 * j)) & 0x0101_0101) &<< 4
                    wh |= ((qh &>> UInt32(2 * j + 1)) & 0x0101_0101) &<< 4
                }
                let sl: Int32, sh: Int32
                switch j {
                case 0: (sl, sh) = (scales.0, scales.1)
                case 1: (sl, sh) = (scales.2, scales.3)
                case 2: (sl, sh) = (scales.4, scales.5)
                default: (sl, sh) = (scales.6, scales.7)
                }
                let o = off + 64 * j
                @inline(__always) func step(_ y: UnsafePointer<Int8>, _ acc: inout SIMD8<Int32>) {
                    acc &+= pdotU(wl, 0, i8x32(y + o)) &* sl &+ pdotU(wh, 0, i8x32(y + o + 32)) &* sh
                }
                step(y0, &i0)
                if nt > 1 { step(y1, &i1) }
                if nt > 2 { step(y2, &i2) }
                if nt > 3 { step(y3, &i3) }
            }
            @inline(__always) func finish(_ iacc: SIMD8<Int32>, _ pr: UnsafePointer<Int16>, _ dy: UnsafePointer<Float>,
                                          _ acc: inout Float) {
                let q = pr + 8 * b
                var m = mn0 * Int32(q[0]) &+ mn1 * Int32(q[1]) &+ mn2 * Int32(q[2]) &+ mn3 * Int32(q[3])
                m &+= mn4 * Int32(q[4]) &+ mn5 * Int32(q[5]) &+ mn6 * Int32(q[6]) &+ mn7 * Int32(q[7])
                acc += dy[b] * (d * Float(iacc.wrappedSum()) - dmin * Float(m))
            }
            finish(i0, p0, d0, &acc0)
            if nt > 1 { finish(i1, p1, d1, &acc1) }
            if nt > 2 { finish(i2, p2, d2, &acc2) }
            if nt > 3 { finish(i3, p3, d3, &acc3) }
        }
        out[0] = acc0
        if nt > 1 { out[stride] = acc1 }
        if nt > 2 { out[2 * stride] = acc2 }
        if nt > 3 { out[3 * stride] = acc3 }
    }
}
