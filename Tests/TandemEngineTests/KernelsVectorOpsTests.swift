import Foundation
import TandemTestSupport
import Testing
@testable import TandemKernels

@Suite("Kernels: vector ops")
struct KernelsVectorOpsTests {
    let n = 45  // not a multiple of 8: exercises the tails
    func vec(_ seed: UInt64, _ n: Int) -> [Float] {
        var rng = TestRNG(seed: seed)
        return KernelsTestSupport.randomActivations(count: n, rng: &rng)
    }

    @Test("dot, axpy, add, mul, scale")
    func elementwise() {
        let a = vec(1, n), b = vec(2, n)
        let ref = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(Double(VectorOps.dot(a, b, count: n)) - ref) < 1e-4)
        var y = b
        VectorOps.axpy(0.5, a, &y, count: n)
        for i in 0..<n { #expect(abs(y[i] - (b[i] + 0.5 * a[i])) < 1e-6) }
        var o = [Float](repeating: 0, count: n)
        VectorOps.add(a, b, &o, count: n)
        for i in 0..<n { #expect(o[i] == a[i] + b[i]) }
        VectorOps.mul(a, b, &o, count: n)
        for i in 0..<n { #expect(o[i] == a[i] * b[i]) }
        VectorOps.scale(a, 3, &o, count: n)
        for i in 0..<n { #expect(o[i] == a[i] * 3) }
        #expect(VectorOps.argmax([1, 5, 2, 5], count: 4) == 1)
    }

    @Test("rmsNorm")
    func rmsNorm() {
        let x = vec(3, n), w = vec(4, n)
        var o = [Float](repeating: 0, count: n)
        VectorOps.rmsNorm(x, w, count: n, eps: 1e-6, &o)
        let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
        let s = 1 / (ms + 1e-6).squareRoot()
        for i in 0..<n { #expect(abs(Double(o[i]) - Double(x[i]) * s * Double(w[i])) < 1e-5) }
    }

    @Test("softmax and siluMul")
    func softmaxSilu() {
        var x = vec(5, n)
        let orig = x
        VectorOps.softmax(&x, count: n)
        let m = orig.max()!
        let den = orig.reduce(0.0) { $0 + exp(Double($1 - m)) }
        for i in 0..<n { #expect(abs(Double(x[i]) - exp(Double(orig[i] - m)) / den) < 1e-6) }
        let g = vec(6, n), u = vec(7, n)
        var o = [Float](repeating: 0, count: n)
        VectorOps.siluMul(g, u, &o, count: n)
        for i in 0..<n {
            let gd = Double(g[i])
            #expect(abs(Double(o[i]) - gd / (1 + exp(-gd)) * Double(u[i])) < 1e-5)
        }
    }

    @Test("rotary embedding, NEOX and normal layouts", arguments: [VectorOps.RotaryLayout.neox, .normal])
    func rotary(layout: VectorOps.RotaryLayout) {
        let heads = 3, hd = 16, pos = 7
        let base: Float = 10000
        var x = vec(8, heads * hd)
        let orig = x
        VectorOps.applyRotary(&x, heads: heads, headDim: hd, position: pos, base: base, layout: layout)
        for h in 0..<heads {
            for i in 0..<(hd / 2) {
                let theta = Double(pos) * pow(Double(base), -2 * Double(i) / Double(hd))
                let (ia, ib) = layout == .neox ? (h * hd + i, h * hd + i + hd / 2) : (h * hd + 2 * i, h * hd + 2 * i + 1)
                let a = Double(orig[ia]), b = Double(orig[ib])
                #expect(abs(Double(x[ia]) - (a * cos(theta) - b * sin(theta))) < 1e-5)
                #expect(abs(Double(x[ib]) - (a * sin(theta) + b * cos(theta))) < 1e-5)
            }
        }
        // Position 0 is the identity.
        var y = orig
        VectorOps.applyRotary(&y, heads: heads, headDim: hd, position: 0, base: base, layout: layout)
        #expect(y == orig)
    }
}
