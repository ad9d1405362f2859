import Foundation
import Logging
import Testing
import TandemEngine
import TandemKernels
@testable import TandemQuantize

/// The measurements a per-layer plan is made of, on SmolLM2: a layer's sensitivity (the model's
/// divergence from itself with that layer requantised) and the per-type layer times.
@Suite("Layer probes", .serialized)
struct LayerProbeTests {
    static let logger = Logger(label: "test.layer-probes")

    static func probe(_ source: GGUFFile, _ base: LanguageModel) throws -> LayerSensitivityProbe {
        let tok = try Tokenizer(gguf: source)
        let prompt = tok.encode("def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n")
        let continuation = try ForwardEngine(model: base, threads: 2, logger: logger)
            .greedyContinuation(of: prompt, maxTokens: 24, isEndOfGeneration: tok.isEndOfGeneration)
        #expect(!continuation.isEmpty)
        return try LayerSensitivityProbe(base: base, texts: [.init(tokens: prompt + continuation, scoredFrom: prompt.count)],
                                         threads: 2, logger: logger)
    }

    @Test func theSourceIsAtDistanceZeroAndLoweringMoreLayersMovesTheModelFurther() throws {
        guard let path = QuantTestFiles.model(RequantizeModelTests.modelName) else { return }
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try GGUFFile(path: path)
        let base = try LanguageModel(gguf: source)
        let probe = try Self.probe(source, base)
        #expect(probe.positions >= 2)

        let same = try probe.score(LanguageModel(gguf: GGUFFile(path: path)), logger: Self.logger)
        #expect(same == .init(meanKL: 0, maxKL: 0, top1Flips: 0))

        // A plan that keeps source types changes nothing else: only layer 2's matrices are rewritten.
        let keepPlan = QuantizationPlan(defaultType: nil, layers: [2: .q4_0])
        let decisions = try Requantizer.decide(source: source, options: RequantizeOptions(plan: keepPlan))
        let rewritten = decisions.filter { $0.action == .requantize }.map(\.name)
        #expect(!rewritten.isEmpty)
        #expect(rewritten.allSatisfy { $0.hasPrefix("blk.2.") })

        let one = try probe.score(plan: keepPlan, source: source, directory: dir, logger: Self.logger)
        let all = try probe.score(plan: QuantizationPlan(defaultType: nil, layers: Dictionary(
            uniqueKeysWithValues: base.layers.indices.map { ($0, GGMLType.q4_0) })), source: source, directory: dir,
            logger: Self.logger)
        #expect(one.meanKL > 0)
        #expect(all.meanKL > one.meanKL, "every layer at Q4_0 (\(all.meanKL)) vs one (\(one.meanKL))")
        #expect(one.maxKL >= one.meanKL)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "variants are deleted after scoring")
    }

    @Test func layerTimesAreFiledUnderTheTypeActuallyWritten() throws {
        guard let path = QuantTestFiles.model(RequantizeModelTests.modelName) else { return }
        let lm = try LanguageModel(gguf: GGUFFile(path: path))
        // SmolLM2's rows are 576 long except ffn_down's 1536: Q4_K fits only ffn_down, the rest fall back to Q5_0.
        let table = try LayerMatvecProbe.measure(model: lm, types: [.q4_K, .q8_0], threads: 2, copies: 2, seconds: 0.01)
        #expect(Set(table[.q4_K]?.keys ?? [:].keys) == ["ffn_down"])
        #expect(Set(table[.q5_0]?.keys ?? [:].keys) == Set(LayerMatvecProbe.roles.map(\.role)).subtracting(["ffn_down"]))
        #expect(table[.q8_0]?.count == LayerMatvecProbe.roles.count)
        for (_, row) in table { for (_, ms) in row { #expect(ms > 0 && ms.isFinite) } }
    }
}
