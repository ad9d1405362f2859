/// K-quants (Q4_K, Q5_K, Q6_K): 256-element super-blocks with 6- or 8-bit sub-block scales.
///
/// The scale search is llama.cpp's reference one (no importance matrix), because a plain min/max
/// scale per sub-block loses noticeably more at 4 bits: for Q4_K/Q5_K, `make_qkx2_quants` tries
/// 21 (16) candidate scales per 32-element sub-block and keeps the weighted least-squares best
/// (weights `rms + |x|`, so large weights count more); for Q6_K, `make_qx_quants` tries 19 scales per
/// 16-element sub-block weighted by x². The sub-block scales (and mins) are then quantised to 6 bits
/// (Q6_K: 8 bits) against one f16 super-scale and every element is re-rounded with the final scale.
extension Quantizer {
    /// Per-row scratch for the K-quant searches (kept off the heap).
    struct KScratch {
        var levels: UnsafeMutablePointer<UInt8>   // 256: chosen level per element
        var aux: UnsafeMutablePointer<UInt8>      // 32: candidate levels
        var weights: UnsafeMutablePointer<Float>  // 32
        var scales: UnsafeMutablePointer<Float>   // 16
        var mins: UnsafeMutablePointer<Float>     // 16
    }

    static func withKScratch(_ body: (KScratch) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256 + 32) { bytes in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 + 16 + 16) { floats in
                let b = bytes.baseAddress!, f = floats.baseAddress!
                body(KScratch(levels: b, aux: b + 256, weights: f, scales: f + 32, mins: f + 48))
            }
        }
    }

    /// ggml's `make_qkx2_quants`: levels `L[i] ∈ 0...nmax` and (scale, min) with x ≈ scale·L − min,
    /// minimising Σ w·(scale·L − min − x)² over `nstep + 1` candidate inverse scales
    /// `(rmin + rdelta·is + nmax)/(max − min)`. Returns the scale; `theMin` receives −min (≥ 0).
    static func makeQKX2(n: Int, nmax: Int32, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                         _ L: UnsafeMutablePointer<UInt8>, _ theMin: inout Float, _ aux: UnsafeMutablePointer<UInt8>,
                         rmin: Float, rdelta: Float, nstep: Int) -> Float {
        var mn = x[0], mx = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < mn { mn = x[i] }
            if x[i] > mx { mx = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if mn > 0 { mn = 0 }
        if mx == mn {
            for i in 0..<n { L[i] = 0 }
            theMin = -mn
            return 0
        }
        let fmax = Float(nmax)
        var iscale = fmax / (mx - mn)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = max(0, min(nmax, nearestInt(iscale * (x[i] - mn))))
            L[i] = UInt8(l)
            let diff = scale * Float(l) + mn - x[i]
            bestError += weights[i] * (diff * diff)
        }
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + fmax) / (mx - mn)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = max(0, min(nmax, nearestInt(iscale * (x[i] - mn))))
                aux[i] = UInt8(l)
                let w = weights[i], fl = Float(l)
                sumL += w * fl
                sumL2 += w * fl * fl
                sumXL += w * fl * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            guard D > 0 else { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var curError: Float = 0
            for i in 0..<n {
                let diff = thisScale * Float(aux[i]) + thisMin - x[i]
                curError += weights[i] * (diff * diff)
            }
            if curError < bestError {
                for i in 0..<n { L[i] = aux[i] }
                bestError = curError
                scale = thisScale
                mn = thisMin
            }
        }
        theMin = -mn
        return scale
    }

    /// ggml's `make_qx_quants` with `rmse_type = 1` (weights x²), no importance weights: symmetric
    /// levels `L[i] − nmax ∈ −nmax...nmax−1`; returns the least-squares scale of the best of 19 candidates.
    static func makeQX(n: Int, nmax: Int32, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<UInt8>) -> Float {
        var mx: Float = 0, amax: Float = 0
        for i in 0..<n where abs(x[i]) > amax {
            amax = abs(x[i])
            mx = x[i]
        }
        if amax < 1e-15 {  // GROUP_MAX_EPS: an all-zero group
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let fmax = Float(nmax)
        var iscale = -fmax / mx
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0..<n {
            let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
            L[i] = UInt8(l + nmax)
            let w = x[i] * x[i], fl = Float(l)
            sumLX += w * x[i] * fl
            sumL2 += w * fl * fl
        }
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            iscale = -(fmax + 0.1 * Float(step)) / mx
            sumLX = 0
            sumL2 = 0
            for i in 0..<n {
                let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
                let w = x[i] * x[i], fl = Float(l)
                sumLX += w * x[i] * fl
                sumL2 += w * fl * fl
            }
            if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
                for i in 0..<n {
                    L[i] = UInt8(max(-nmax, min(nmax - 1, nearestInt(iscale * x[i]))) + nmax)
                }
                scale = sumLX / sumL2
                best = scale * sumLX
            }
        }
        return scale
    }

    /// Packs 6-bit scale `ls` and min `lm` of sub-block `j` into the 12-byte `scales` field
    /// (the inverse of `get_scale_min_k4`). The field must start zeroed.
    @inline(__always)
    static func packScaleMinK4(_ j: Int, _ ls: UInt8, _ lm: UInt8, _ q: UnsafeMutableRawPointer) {
        func or(_ i: Int, _ v: UInt8) { q.storeBytes(of: q.load(fromByteOffset: i, as: UInt8.self) | v, toByteOffset: i, as: UInt8.self) }
        if j < 4 {
            q.storeBytes(of: ls, toByteOffset: j, as: UInt8.self)
            q.storeBytes(of: lm, toByteOffset: j + 4, as: UInt8.self)
        } else {
            q.storeBytes(of: (ls & 0xF) | ((lm & 0xF) << 4), toByteOffset: j + 4, as: UInt8.self)
            or(j - 4, (ls >> 4) << 6)
            or(j, (lm >> 4) << 6)
        }
    }

    /// Reads sub-block `j`'s 6-bit scale and min back (`get_scale_min_k4`).
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        let b = { (i: Int) in q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4))
    }

    /// Shared part of Q4_K and Q5_K: searches the eight 32-element sub-blocks, writes d, dmin and the
    /// packed 6-bit scales/mins at `y[0..<16]`, and leaves the final levels (0...nmax) in `s.levels`.
    static func scaleSearchK(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ s: KScratch,
                             nmax: Int32, rmin: Float, nstep: Int) {
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            let xs = x + 32 * j
            var sumX2: Float = 0
            for l in 0..<32 { sumX2 += xs[l] * xs[l] }
            let avX = (sumX2 / 32).squareRoot()
            for l in 0..<32 { s.weights[l] = avX + abs(xs[l]) }
            var theMin: Float = 0
            s.scales[j] = makeQKX2(n: 32, nmax: nmax, xs, s.weights, s.levels + 32 * j, &theMin, s.aux,
                                   rmin: rmin, rdelta: 0.1, nstep: nstep)
            s.mins[j] = theMin
            if s.scales[j] > maxScale { maxScale = s.scales[j] }
            if theMin > maxMin { maxMin = theMin }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        let scales = y + 4
        scales.initializeMemory(as: UInt8.self, repeating: 0, count: 12)
        for j in 0..<8 {
            let ls = UInt8(truncatingIfNeeded: min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * s.scales[j]))))
            let lm = UInt8(truncatingIfNeeded: min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * s.mins[j]))))
            packScaleMinK4(j, ls, lm, scales)
        }
        storeHalf(maxScale / 63, y, 0)
        storeHalf(maxMin / 63, y, 2)
        let d = roundedToHalf(maxScale / 63), dmin = roundedToHalf(maxMin / 63)
        for j in 0..<8 {
            let (sc, m) = scaleMinK4(j, scales)
            let dj = d * Float(sc)
            if dj == 0 { continue }  // keep the search's levels, as ggml does
            let dm = dmin * Float(m)
            for i in 0..<32 {
                s.levels[32 * j + i] = UInt8(max(0, min(nmax, nearestInt((x[32 * j + i] + dm) / dj))))
            }
        }
    }

    /// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }: x ≈ d·sc_j·q − dmin·m_j.
    /// Each 64-element chunk shares 32 bytes: low nibbles hold its first 32 elements, high nibbles the next 32.
    static func q4_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ s: KScratch) {
        scaleSearchK(x, y, s, nmax: 15, rmin: -1, nstep: 20)
        let L = s.levels
        for c in 0..<4 {
            for l in 0..<32 {
                y.storeBytes(of: L[64 * c + l] | (L[64 * c + l + 32] << 4), toByteOffset: 16 + 32 * c + l, as: UInt8.self)
            }
        }
    }

    /// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: Q4_K's layout plus a 5th
    /// bit per element; chunk c sets bit 2c (first 32 elements) and 2c+1 (next 32) of qh[l].
    static func q5_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ s: KScratch) {
        scaleSearchK(x, y, s, nmax: 31, rmin: -0.5, nstep: 15)
        let L = s.levels
        let qh = y + 16, qs = y + 48
        qh.initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        for c in 0..<4 {
            let m1 = UInt8(1) << UInt8(2 * c), m2 = UInt8(2) << UInt8(2 * c)
            for l in 0..<32 {
                var l1 = L[64 * c + l], l2 = L[64 * c + l + 32]
                var h = qh.load(fromByteOffset: l, as: UInt8.self)
                if l1 > 15 { l1 -= 16; h |= m1 }
                if l2 > 15 { l2 -= 16; h |= m2 }
                qh.storeBytes(of: h, toByteOffset: l, as: UInt8.self)
                qs.storeBytes(of: l1 | (l2 << 4), toByteOffset: 32 * c + l, as: UInt8.self)
            }
        }
    }

    /// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: x ≈ d·sc_j·(q − 32), 16 sub-blocks
    /// of 16 with signed 8-bit scales. Each 128-element half uses 64 ql bytes (low nibbles) and 32 qh
    /// bytes (2 high bits each for elements l, l+32, l+64, l+96).
    static func q6_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ s: KScratch) {
        var maxScale: Float = 0, maxAbsScale: Float = 0
        for ib in 0..<16 {
            let scale = makeQX(n: 16, nmax: 32, x + 16 * ib, s.levels + 16 * ib)
            s.scales[ib] = scale
            if abs(scale) > maxAbsScale {
                maxAbsScale = abs(scale)
                maxScale = scale
            }
        }
        if maxAbsScale < 1e-15 {
            y.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
            return
        }
        let iscale = -128 / maxScale
        storeHalf(1 / iscale, y, 208)
        let d = roundedToHalf(1 / iscale)
        for ib in 0..<16 {
            let sc = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * s.scales[ib])))
            y.storeBytes(of: sc, toByteOffset: 192 + ib, as: Int8.self)
        }
        let L = s.levels
        for j in 0..<16 {
            let dj = d * Float(y.load(fromByteOffset: 192 + j, as: Int8.self))
            if dj == 0 { continue }
            for i in 0..<16 {
                L[16 * j + i] = UInt8(max(-32, min(31, nearestInt(x[16 * j + i] / dj))) + 32)
            }
        }
        for half in 0..<2 {
            let base = 128 * half, ql = 64 * half, qh = 128 + 32 * half
            for l in 0..<32 {
                let a = L[base + l], b = L[base + l + 32], c = L[base + l + 64], e = L[base + l + 96]
                y.storeBytes(of: (a & 0xF) | ((c & 0xF) << 4), toByteOffset: ql + l, as: UInt8.self)
                y.storeBytes(of: (b & 0xF) | ((e & 0xF) << 4), toByteOffset: ql + l + 32, as: UInt8.self)
                y.storeBytes(of: (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6),
                             toByteOffset: qh + l, as: UInt8.self)
            }
        }
    }
}
