/// Portable kernels for the 32-element signed block types with int8 activations (Q5_0, Q8_0).
extension MatMul {
    /// kind: 1 Q5_0, 2 Q8_0. Per token and block: exact integer partial sums in 8 lanes (each
    /// |p| <= 4 * 128 * 127 < 2^22, so `toFloat` is exact), then one 8-lane multiply-add by `dw * dy`;
    /// the lanes are summed once per row and token.
    @inline(never)
    static func portableTile32(_ row: UnsafeRawPointer, _ nb: Int, _ a: Acts, _ t0: Int, _ nt: Int,
                               _ out: UnsafeMutablePointer<Float>, _ stride: Int, kind: Int) {
        let blockBytes = kind == 1 ? 22 : 34
        let cols = a.cols
        let y0 = a.qs + t0 * cols, y1 = y0 + cols, y2 = y1 + cols, y3 = y2 + cols
        let d0 = a.d + t0 * nb, d1 = d0 + nb, d2 = d1 + nb, d3 = d2 + nb
        var acc0 = SIMD8<Float>(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        for b in 0..<nb {
            let blk = row + blockBytes * b
            let dw = halfAt(blk)
            // Q8_0: signed bytes. Q5_0: nibble | fifth bit << 4, minus 16 (after widening).
            let w8 = kind == 2 ? i8x32(blk + 2) : SIMD32<Int8>()
            let w5 = kind == 2 ? SIMD8<UInt32>()
                : portableNibbles(blk + 6) | (portableBits(blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self)) &<< 4)
            @inline(__always) func token(_ y: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ acc: inout SIMD8<Float>) {
                let yv = i8x32(y + 32 * b)
                let p = kind == 2 ? pdot(w8, yv) : pdotU(w5, 16, yv)
                acc = acc.addingProduct(toFloat(p), SIMD8<Float>(repeating: dw * d[b]))
            }
            token(y0, d0, &acc0)
            if nt > 1 { token(y1, d1, &acc1) }
            if nt > 2 { token(y2, d2, &acc2) }
            if nt > 3 { token(y3, d3, &acc3) }
        }
        out[0] = sum8(acc0)
        if nt > 1 { out[stride] = sum8(acc1) }
        if nt > 2 { out[2 * stride] = sum8(acc2) }
        if nt > 3 { out[3 * stride] = sum8(acc3) }
    }
}
