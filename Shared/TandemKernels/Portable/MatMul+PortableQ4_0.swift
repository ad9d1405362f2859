/// Portable kernels for Q4_0, Q4_1 and Q5_1 against int16-range activations (held as Int32,
/// see `portableQuantizeRowQ16`).
extension MatMul {
    /// kind: 0 Q4_0 (18-byte blocks), 3 Q4_1 (20), 4 Q5_1 (24).
    ///
    /// The 16 nibble bytes, read as 4 UInt32 lanes and again shifted right by 4, give 8 lanes
    /// whose byte `j` (masked to 4 bits) is block value `4L + j`; so four shifts and masks yield
    /// the 32 weights as 4 x 8 Int32 lanes in the order the activations were stored.
    @inline(never)
    static func portableTile16(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                               _ out: UnsafeMutablePointer<Float>, _ stride: Int, kind: Int) {
        let blockBytes = kind == 0 ? 18 : (kind == 3 ? 20 : 24)
        let qsOffset = kind == 0 ? 2 : (kind == 3 ? 4 : 8)
        let cols = a.cols
        let q32 = UnsafeRawPointer(a.qs).assumingMemoryBound(to: Int32.self)
        let y0 = q32 + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        let sBase = a.sums.assumingMemoryBound(to: Float.self) + t0 * nb
        let s0 = sBase, s1 = s0 + nb, s2 = s1 + nb, s3 = s2 + nb
        var acc0 = SIMD8<Float>(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        var sacc0: Float = 0, sacc1: Float = 0, sacc2: Float = 0, sacc3: Float = 0
        let laneShift = SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28)
        for b in 0..<nb {
            let blk = row + blockBytes * b
            let dw = halfAt(blk)
            let m: Float = kind == 0 ? 0 : halfAt(blk, 2)
            let v = blk.loadUnaligned(fromByteOffset: qsOffset, as: SIMD4<UInt32>.self)
            let lanes = SIMD8<UInt32>(lowHalf: v, highHalf: v &>> 4)
            var e0 = lanes & 0x0F, e1 = (lanes &>> 8) & 0x0F, e2 = (lanes &>> 16) & 0x0F, e3 = (lanes &>> 24) & 0x0F
            if kind == 4 {
                // Fifth bit of value 4L + j: bit 4L + j of qh.
                let h = SIMD8<UInt32>(repeating: blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) &>> laneShift
                e0 |= (h & 1) &<< 4
                e1 |= ((h &>> 1) & 1) &<< 4
                e2 |= ((h &>> 2) & 1) &<< 4
                e3 |= ((h &>> 3) & 1) &<< 4
            }
            let off: UInt32 = kind == 0 ? 8 : 0
            let w0 = unsafeBitCast(e0 &- off, to: SIMD8<Int32>.self), w1 = unsafeBitCast(e1 &- off, to: SIMD8<Int32>.self)
            let w2 = unsafeBitCast(e2 &- off, to: SIMD8<Int32>.self), w3 = unsafeBitCast(e3 &- off, to: SIMD8<Int32>.self)
            @inline(__always) func token(_ y: UnsafePointer<Int32>, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Float>,
                                         _ acc: inout SIMD8<Float>, _ sacc: inout Float) {
                let yb = UnsafeRawPointer(y + 32 * b)
                let p = w0 &* yb.loadUnaligned(as: SIMD8<Int32>.self)
                    &+ w1 &* yb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Int32>.self)
                    &+ w2 &* yb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Int32>.self)
                    &+ w3 &* yb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Int32>.self)
                // |lane| <= 4 * 31 * 32767 < 2^22: `toFloat` is exact.
                acc = acc.addingProduct(toFloat(p), SIMD8<Float>(repeating: dw * d[b]))
                if kind != 0 { sacc = sacc.addingProduct(m, s[b]) }
            }
            token(y0, d0, s0, &acc0, &sacc0)
            if nt > 1 { token(y1, d1, s1, &acc1, &sacc1) }
            if nt > 2 { token(y2, d2, s2, &acc2, &sacc2) }
            if nt > 3 { token(y3, d3, s3, &acc3, &sacc3) }
        }
        out[0] = sum8(acc0) + sacc0
        if nt > 1 { out[stride] = sum8(acc1) + sacc1 }
        if nt > 2 { out[2 * stride] = sum8(acc2) + sacc2 }
        if nt > 3 { out[3 * stride] = sum8(acc3) + sacc3 }
    }
}
