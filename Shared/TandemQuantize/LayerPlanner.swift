import Foundation
import TandemKernels

/// QPART's choice: one weight type per layer of a draft model, minimising the device's draft time per
/// token subject to a budget on how far the model may move from the one it was made from.
///
/// Each layer offers its candidates (the source type, always free, and every type whose effect was
/// measured): a time change per token from the device's per-type layer times and a damage
/// (``LayerSensitivityProbe/Score``) measured with only that layer lowered. The plan minimises the sum
/// of time changes with the sum of damages (mean KL, nats) at most the budget: a multiple-choice
/// knapsack, solved exactly by dynamic programming over the budget cut into `resolution` units. A
/// layer's KL is rounded *up* to whole units, so the predicted total never exceeds the budget.
///
/// The prediction assumes damages add up across layers, which holds for small perturbations;
/// `tandem plan --apply` measures the finished model so the assumption is checked, not trusted.
public enum LayerPlanner {
    /// One way to store one layer.
    public struct Candidate: Sendable, Equatable {
        /// The type asked for (nil: keep the source's types).
        public var type: GGMLType?
        /// Change of the device's time per drafted token against the source layer, ms (negative = faster).
        public var deltaMs: Double
        /// Damage when only this layer is changed (zero for the source).
        public var score: LayerSensitivityProbe.Score

        public init(type: GGMLType?, deltaMs: Double, score: LayerSensitivityProbe.Score) {
            self.type = type
            self.deltaMs = deltaMs
            self.score = score
        }

        public static let source = Candidate(type: nil, deltaMs: 0, score: .init(meanKL: 0, maxKL: 0, top1Flips: 0))
    }

    /// The chosen candidate per layer and what the plan predicts.
    public struct Choice: Sendable, Equatable {
        /// One entry per layer, in layer order.
        public var layers: [Candidate]
        public init(layers: [Candidate]) { self.layers = layers }
        public var predictedDeltaMs: Double { layers.reduce(0) { $0 + $1.deltaMs } }
        public var predictedKL: Double { layers.reduce(0) { $0 + $1.score.meanKL } }
        public var predictedTop1Flips: Double { layers.reduce(0) { $0 + $1.score.top1Flips } }

        /// The plan file: source types everywhere except the lowered layers.
        public var plan: QuantizationPlan {
            var layerTypes: [Int: GGMLType] = [:]
            for (i, c) in layers.enumerated() { if let t = c.type { layerTypes[i] = t } }
            return QuantizationPlan(defaultType: nil, layers: layerTypes)
        }
    }

    /// Chooses per layer. `candidates[l]` lists layer l's measured options (the source option is added);
    /// `budget` is the largest total mean KL allowed (nats, >= 0).
    public static func choose(candidates: [[Candidate]], budget: Double, resolution: Int = 2000) throws -> Choice {
        guard budget.isFinite, budget >= 0 else { throw PlanError("the accuracy budget must be a non-negative number of nats") }
        guard resolution >= 1 else { throw PlanError("resolution must be positive") }
        let units = budget > 0 ? resolution : 0
        func cost(_ c: Candidate) -> Int? {
            let kl = max(0, c.score.meanKL)
            if kl == 0 { return 0 }
            guard budget > 0 else { return nil }
            let u = (kl / budget * Double(resolution)).rounded(.up)
            return u <= Double(units) ? Int(u) : nil
        }
        let options = candidates.map { [Candidate.source] + $0.filter { $0.type != nil } }
        // best[j]: least total time change with damage exactly j units so far; pick[l][j]: option taken at layer l.
        var best = [Double](repeating: .infinity, count: units + 1)
        best[0] = 0
        var pick: [[Int]] = []
        for layer in options {
            var next = [Double](repeating: .infinity, count: units + 1)
            var chosen = [Int](repeating: -1, count: units + 1)
            for j in 0...units where best[j].isFinite {
                for (o, c) in layer.enumerated() {
                    guard let u = cost(c), j + u <= units else { continue }
                    let t = best[j] + c.deltaMs
                    if t < next[j + u] - 1e-12 {
                        next[j + u] = t
                        chosen[j + u] = o * (units + 1) + j
                    }
                }
            }
            best = next
            pick.append(chosen)
        }
        // The fastest end state; among equally fast ones, the least damage.
        var end = 0
        for j in 0...units where best[j] < best[end] - 1e-12 { end = j }
        var layers = [Candidate](repeating: .source, count: options.count)
        var j = end
        for l in stride(from: options.count - 1, through: 0, by: -1) {
            let code = pick[l][j]
            let o = code / (units + 1)
            layers[l] = options[l][o]
            j = code % (units + 1)
        }
        return Choice(layers: layers)
    }
}
