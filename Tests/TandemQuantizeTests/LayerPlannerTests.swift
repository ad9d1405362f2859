import Foundation
import Testing
import TandemKernels
@testable import TandemQuantize

/// The QPART planner's choice on constructed layer measurements: the budget binds, the sum of the
/// chosen damages never exceeds it, and it finds the best combination where a greedy pick would not.
@Suite("Layer planner")
struct LayerPlannerTests {
    static func candidate(_ type: GGMLType, ms: Double, kl: Double) -> LayerPlanner.Candidate {
        .init(type: type, deltaMs: ms, score: .init(meanKL: kl, maxKL: kl, top1Flips: 0))
    }

    @Test func aZeroBudgetKeepsEverySourceLayer() throws {
        let layers = [[Self.candidate(.q4_0, ms: -1, kl: 0.01)], [Self.candidate(.q8_0, ms: -0.5, kl: 0.002)]]
        let choice = try LayerPlanner.choose(candidates: layers, budget: 0)
        #expect(choice.plan.layers.isEmpty)
        #expect(choice.predictedDeltaMs == 0)
    }

    @Test func anAmpleBudgetTakesTheFastestTypeOfEveryLayer() throws {
        let layers = [
            [Self.candidate(.q4_0, ms: -1.0, kl: 0.010), Self.candidate(.q5_0, ms: -1.2, kl: 0.004)],
            [Self.candidate(.q4_0, ms: -0.3, kl: 0.020), Self.candidate(.q8_0, ms: 0.4, kl: 0.001)],
        ]
        let choice = try LayerPlanner.choose(candidates: layers, budget: 10)
        #expect(choice.plan.layers == [0: .q5_0, 1: .q4_0])
        #expect(abs(choice.predictedDeltaMs - -1.5) < 1e-9)
        #expect(choice.plan.defaultType == nil, "a per-layer plan keeps every other tensor as it is")
    }

    @Test func aSlowerTypeIsNeverChosenEvenWhenItCostsNoAccuracy() throws {
        let layers = [[Self.candidate(.q8_0, ms: 0.2, kl: 0)], [Self.candidate(.q4_0, ms: -0.1, kl: 0.001)]]
        let choice = try LayerPlanner.choose(candidates: layers, budget: 1)
        #expect(choice.plan.layers == [1: .q4_0])
    }

    @Test func theBudgetFindsTheBestCombinationWhereAGreedyPickWouldNot() throws {
        // Best time saved per nat: layer 0 (10 ms / 0.6). Taking it leaves no room for the others (10 ms);
        // layers 1 and 2 together save 12 ms inside the same budget.
        let layers = [
            [Self.candidate(.q4_0, ms: -10, kl: 0.6)],
            [Self.candidate(.q4_0, ms: -6, kl: 0.5)],
            [Self.candidate(.q4_0, ms: -6, kl: 0.5)],
        ]
        let choice = try LayerPlanner.choose(candidates: layers, budget: 1.0)
        #expect(choice.plan.layers == [1: .q4_0, 2: .q4_0])
        #expect(choice.predictedKL <= 1.0)
        #expect(abs(choice.predictedDeltaMs - -12) < 1e-9)
        // A little less budget and only one of them fits; the planner then takes the larger saving.
        let tighter = try LayerPlanner.choose(candidates: layers, budget: 0.99)
        #expect(tighter.plan.layers == [0: .q4_0])
    }

    @Test func theChosenDamageNeverExceedsTheBudget() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let layers = (0..<12).map { _ in
                [GGMLType.q4_0, .q5_0, .q8_0].map {
                    Self.candidate($0, ms: -Double.random(in: 0...1, using: &rng), kl: Double.random(in: 0...0.01, using: &rng))
                }
            }
            let budget = Double.random(in: 0...0.05, using: &rng)
            let choice = try LayerPlanner.choose(candidates: layers, budget: budget)
            #expect(choice.predictedKL <= budget + 1e-12)
        }
    }

    @Test func aNegativeOrMissingBudgetIsRefused() {
        #expect(throws: PlanError.self) { try LayerPlanner.choose(candidates: [], budget: -0.1) }
        #expect(throws: PlanError.self) { try LayerPlanner.choose(candidates: [], budget: .nan) }
    }

    @Test func aPlanThatKeepsSourceTypesRoundTripsAndSaysSo() throws {
        let plan = try QuantizationPlan.parse(Data(#"{"default": "source", "layers": {"3": "Q4_0"}}"#.utf8), fallbackDefault: nil)
        #expect(plan.defaultType == nil)
        #expect(plan.layers == [3: .q4_0])
        #expect(plan.requestedType(for: "blk.3.attn_q.weight").type == .q4_0)
        #expect(plan.requestedType(for: "blk.4.attn_q.weight").type == nil)
        #expect(try QuantizationPlan.parse(plan.jsonData(), fallbackDefault: .q8_0) == plan)
        #expect(throws: PlanError.self) { try QuantizationPlan.parse(Data(#"{"layers": {}}"#.utf8), fallbackDefault: nil) }
    }

    @Test func blockSizeFallbacksAreWhatTheQuantizerWrites() {
        #expect(QuantizationPlan.effectiveType(.q4_K, columns: 896) == .q5_0)
        #expect(QuantizationPlan.effectiveType(.q6_K, columns: 896) == .q8_0)
        #expect(QuantizationPlan.effectiveType(.q4_K, columns: 4864) == .q4_K)
        #expect(QuantizationPlan.effectiveType(.q4_0, columns: 16) == .f16)
    }
}
