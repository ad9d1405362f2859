import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemKernels
import TandemModels
import TandemQuantize
import TandemService
import TandemServing
import TandemSpeculative
import TandemWire

/// `tandem plan`: QPART's per-layer bit widths for a draft model on one device (docs/quantize.md, "Per-layer
/// plans").
///
/// Measures each layer's sensitivity (the draft's divergence from itself when only that layer is written
/// in a candidate type), prices each (layer, type) with the device's time per type, chooses the types
/// that minimise the device's draft time per token within an accuracy budget (``LayerPlanner``), and
/// writes the plan `tandem quantize --plan` applies. With `--apply` it also writes the model and measures
/// what the plan predicted: divergence, top-1 changes, draft speed against the source (A B A B), and with
/// `--target` the acceptance against the target.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Choose per-layer weight types for a draft model on a device within an accuracy budget (QPART).")

    @Option(help: "Draft model to plan for (catalog name, cached file name or GGUF path).")
    var model = ModelLoader.defaultDraft

    @Option(help: "Device profile JSON (tandem profile). Omit to measure this machine's per-type layer times now.")
    var device: String?

    @Option(name: .customLong("accuracy-budget"),
            help: "Largest mean KL divergence (nats per token) of the planned draft from the source draft.")
    var accuracyBudget: Double

    @Option(help: "Candidate types per layer (comma separated); a type a matrix cannot hold becomes its block-size fallback.")
    var types = "Q4_0,Q4_K,Q5_0,Q6_K,Q8_0"

    @Option(help: "Only consider these layers (comma separated block numbers); the others keep their types.")
    var layers: String?

    @Option(help: "Prompt set whose prompts and the draft's own continuations are scored (code, chat, mixed, .jsonl).")
    var prompts = "code"

    @Option(help: "Use the first N prompts.")
    var limit = 4

    @Option(name: .customLong("max-tokens"), help: "Draft continuation tokens scored per prompt.")
    var maxTokens = 64

    @Option(help: "Compute threads.")
    var threads = 2

    @Option(help: "Where to write the plan (tandem quantize --plan).")
    var out: String

    @Option(help: "Also write every measurement and the prediction as JSON here.")
    var report: String?

    @Option(help: "Reuse the layer sensitivities of an earlier --report for the same model and texts (they do not depend on the device); only missing (layer, type) pairs are measured.")
    var sensitivities: String?

    @Option(help: "Write the planned model here and measure it against the prediction.")
    var apply: String?

    @Option(help: "With --apply: the target model, to measure acceptance of the source and planned drafts.")
    var target: String?

    @Option(name: .customLong("speed-tokens"), help: "With --apply: decode steps per speed sample (A B A B, 3 pairs).")
    var speedTokens = 64

    func validate() throws {
        guard accuracyBudget.isFinite, accuracyBudget >= 0 else { throw ValidationError("--accuracy-budget must be >= 0 nats") }
        guard limit >= 1, maxTokens >= 2, threads >= 1, speedTokens >= 1 else {
            throw ValidationError("need --limit >= 1, --max-tokens >= 2, --threads >= 1, --speed-tokens >= 1")
        }
        if target != nil && apply == nil { throw ValidationError("--target needs --apply (the acceptance of the planned model)") }
    }

    func run() async throws {
        let logger = { var l = Logger(label: "tandem.plan"); l.logLevel = .warning; return l }()
        let candidateTypes = try types.split(separator: ",").map {
            try QuantizationPlan.type(named: $0.trimmingCharacters(in: .whitespaces))
        }
        guard !candidateTypes.isEmpty else { throw ValidationError("--types names no type") }
        let loaded = try await ModelLoader.load(model, logger: logger)
        let lm = loaded.model
        let source = lm.gguf
        let layerList = try layers.map { spec in
            try spec.split(separator: ",").map { s -> Int in
                guard let n = Int(s.trimmingCharacters(in: .whitespaces)), lm.layers.indices.contains(n) else {
                    throw ValidationError("--layers: '\(s)' is not a block of this model (0..<\(lm.layers.count))")
                }
                return n
            }
        } ?? Array(lm.layers.indices)
        let profile = try device.map { try EdgeDeviceProfile.load(path: ($0 as NSString).expandingTildeInPath) }
        if let profile, ModelCatalog.canonicalName(profile.draftModel) != ModelCatalog.canonicalName(loaded.name) {
            // Its times are for another model's shapes and speed: pricing this one with them would be invented.
            throw ValidationError("profile \(profile.name) describes \(profile.draftModel), not \(loaded.name): "
                                  + "profile this model on the device (tandem profile --model \(model)) or omit --device")
        }

        // 1. Texts: the prompts and the draft's own greedy continuations.
        let set = Array(try await PromptSet.load(prompts, logger: logger).prefix(limit))
        let template = try ChatTemplate(templateSource: source.metadata["tokenizer.chat_template"]?.string)
        let started = ContinuousClock.now
        var texts: [LayerSensitivityProbe.Text] = []
        for p in set {
            let prompt = loaded.tokenizer.encode(
                template.render(messages: p.messages.map { ChatMessage(role: $0.role, content: $0.content) },
                                addGenerationPrompt: true), parseSpecial: true)
            let (tokenizer, n) = (loaded.tokenizer, maxTokens)
            let engine = ForwardEngine(model: lm, threads: threads, logger: logger)
            let continuation = try await BlockingWork.run("plan-continue") {
                try engine.greedyContinuation(of: prompt, maxTokens: n, isEndOfGeneration: tokenizer.isEndOfGeneration)
            }
            texts.append(.init(tokens: prompt + continuation, scoredFrom: prompt.count))
        }
        let probe = try await BlockingWork.run("plan-base") { [texts, threads] in
            try LayerSensitivityProbe(base: lm, texts: texts, threads: threads, logger: logger)
        }
        say("\(loaded.name): \(lm.layers.count) layers; sensitivity over \(probe.positions) positions "
            + "(\(set.count) \(prompts) prompts + the draft's own continuations)")

        // 2. The device's time per (type, matrix).
        let timedTypes = LayerMatvecProbe.writtenTypes(in: source, layers: layerList, asked: candidateTypes)
        let pricing = try await Self.pricing(profile: profile, model: lm, types: timedTypes, threads: threads,
                                             speedPrompt: Array(texts[0].tokens.prefix(128)), logger: logger)
        say("device: \(pricing.description)")

        // 3. Sensitivity of every (layer, type) that changes something.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var candidates = [[LayerPlanner.Candidate]](repeating: [], count: lm.layers.count)
        var measured: [PlanReport.Measurement] = []
        var reused: [String: LayerSensitivityProbe.Score] = [:]
        if let sensitivities {
            let earlier = try JSONDecoder().decode(PlanReport.self, from: Data(contentsOf: URL(fileURLWithPath: (sensitivities as NSString).expandingTildeInPath)))
            guard earlier.model == loaded.name, earlier.promptSet == prompts, earlier.prompts == set.count,
                  earlier.positions == probe.positions else {
                throw ValidationError("\(sensitivities) was measured for \(earlier.model) over \(earlier.prompts) \(earlier.promptSet) "
                                      + "prompts (\(earlier.positions) positions), not this run's texts")
            }
            for m in earlier.measurements { reused["\(m.layer)/\(m.type)"] = m.score }
            say("reusing \(reused.count) layer sensitivities from \(sensitivities)")
        }
        for l in layerList {
            for type in candidateTypes {
                let roles = LayerMatvecProbe.roles.map { r -> (from: GGMLType?, to: GGMLType?, role: String) in
                    let tensor = LayerMatvecProbe.tensor(in: source, layer: l, r.tensor)
                    return (tensor?.type, tensor.flatMap { QuantizationPlan.effectiveType(type, columns: $0.columns) }, r.role)
                }
                guard roles.contains(where: { $0.from != $0.to }) else { continue }
                var delta = 0.0
                for r in roles {
                    guard let from = r.from, let to = r.to, let a = pricing.ms(to, r.role), let b = pricing.ms(from, r.role) else {
                        throw ValidationError("no time for layer \(l) \(r.role) as \(r.to?.name ?? "?")")
                    }
                    delta += a - b
                }
                let plan = QuantizationPlan(defaultType: nil, layers: [l: type])
                let score: LayerSensitivityProbe.Score
                if let earlier = reused["\(l)/\(type.name)"] {
                    score = earlier
                } else {
                    score = try await BlockingWork.run("plan-layer") {
                        try probe.score(plan: plan, source: source, directory: scratch, logger: logger)
                    }
                }
                candidates[l].append(.init(type: type, deltaMs: delta, score: score))
                measured.append(.init(layer: l, type: type.name, deltaMs: delta, score: score))
                say(String(format: "  layer %2d %-5@ KL %.5f  top-1 changed %5.2f%%  time %+.3f ms/token   (%.0f s)",
                           l, type.name, score.meanKL, 100 * score.top1Flips, delta, ServiceClock.millis(since: started) / 1000))
            }
        }

        // 4. Choose, check the choice on the model itself, write.
        let (choice, checks) = try await checkedChoice(candidates: candidates, probe: probe, source: source,
                                                       scratch: scratch, logger: logger)
        let plan = choice.plan
        let outPath = (out as NSString).expandingTildeInPath
        try plan.jsonData().write(to: URL(fileURLWithPath: outPath))
        let baseMs = pricing.baseMsPerToken
        let predictedTPS = 1000 / max(baseMs + choice.predictedDeltaMs, 1e-6)
        print("")
        print("layer  type")
        for (l, c) in choice.layers.enumerated() where c.type != nil {
            print(String(format: "%5d  %-5@  KL %.5f  top-1 %5.2f%%  %+.3f ms", l, c.type!.name, c.score.meanKL,
                         100 * c.score.top1Flips, c.deltaMs))
        }
        print(String(format: "plan: %d of %d layers lowered; predicted KL %.5f nats (budget %.5f), top-1 changed %.2f%%, "
                     + "draft %.2f -> %.2f ms/token (%.1f -> %.1f tok/s, %@)", plan.layers.count, lm.layers.count,
                     choice.predictedKL, accuracyBudget, 100 * choice.predictedTop1Flips, baseMs, baseMs + choice.predictedDeltaMs,
                     1000 / baseMs, predictedTPS, pricing.kind))
        print("wrote \(outPath) (apply: tandem quantize --in \(loaded.path.path) --plan \(outPath) --out OUT.gguf)")

        var result = PlanReport(
            model: loaded.name, device: pricing.description, pricing: pricing.kind, accuracyBudget: accuracyBudget,
            positions: probe.positions, promptSet: prompts, prompts: set.count, measurements: measured, checks: checks,
            plan: Dictionary(uniqueKeysWithValues: plan.layers.map { ("\($0.key)", $0.value.name) }),
            predicted: .init(meanKL: choice.predictedKL, top1Flips: choice.predictedTop1Flips,
                             msPerToken: baseMs + choice.predictedDeltaMs, tokensPerSecond: predictedTPS),
            sourceMsPerToken: baseMs)
        if let apply {
            result.applied = try await applied(plan: plan, to: apply, source: loaded, probe: probe, prompts: set,
                                               predictedTop1Flips: choice.predictedTop1Flips, logger: logger)
        }
        if let report {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: (report as NSString).expandingTildeInPath))
            say("wrote \(report)")
        }
    }

    /// The planner's choice, checked: damages need not add up (errors of several lowered layers can
    /// align, and KL grows with the square of a logit error), so the chosen plan is written and scored
    /// as a whole; while it measures over the budget, the plan is chosen again with a planning budget of
    /// its predicted sum scaled by `0.9 × budget / measured` (at most five checks). The result is the fastest checked plan within budget,
    /// or the source when none was.
    func checkedChoice(candidates: [[LayerPlanner.Candidate]], probe: LayerSensitivityProbe, source: GGUFFile,
                       scratch: URL, logger: Logger) async throws -> (LayerPlanner.Choice, [PlanReport.Check]) {
        var planning = accuracyBudget
        var checks: [PlanReport.Check] = []
        let sourceOnly = LayerPlanner.Choice(layers: candidates.map { _ in .source })
        for round in 1...5 {
            let choice = try LayerPlanner.choose(candidates: candidates, budget: planning)
            guard !choice.plan.layers.isEmpty else { return (choice, checks) }
            let plan = choice.plan
            let score = try await BlockingWork.run("plan-check") {
                try probe.score(plan: plan, source: source, directory: scratch, logger: logger)
            }
            checks.append(.init(planningBudget: planning, layers: plan.layers.count, predictedKL: choice.predictedKL,
                                measured: score))
            say(String(format: "check %d: planning budget %.5f -> %d layers lowered, predicted KL %.5f, measured %.5f%@",
                       round, planning, plan.layers.count, choice.predictedKL, score.meanKL,
                       score.meanKL <= accuracyBudget ? " (within budget)" : " (over budget: plan again with less)"))
            if score.meanKL <= accuracyBudget { return (choice, checks) }
            // The sum under-predicted the whole by measured/predicted: ask for that much less than this plan's sum.
            planning = min(planning, choice.predictedKL) * 0.9 * accuracyBudget / score.meanKL
        }
        say("no checked plan fits the budget: keeping the source model")
        return (sourceOnly, checks)
    }

    /// Writes the planned model and measures it: divergence and top-1 changes from the source, speed against
    /// the source (interleaved), and acceptance against `--target`.
    func applied(plan: QuantizationPlan, to path: String, source: ModelLoader.Loaded, probe: LayerSensitivityProbe,
                 prompts set: [BenchPrompt], predictedTop1Flips: Double,
                 logger: Logger) async throws -> PlanReport.Applied {
        let outPath = (path as NSString).expandingTildeInPath
        let written = try Requantizer.run(source: source.model.gguf, destination: outPath,
                                          options: RequantizeOptions(plan: plan, threads: threads))
        let planned = try await ModelLoader.load(outPath, logger: logger)
        let score = try await BlockingWork.run("plan-score") { try probe.score(planned.model, logger: logger) }
        say(String(format: "applied: %@ (%.1f MB, source %.1f MB); measured KL %.5f nats, top-1 changed %.2f%%",
                   outPath, Double(written.fileSize) / 1e6, Double(source.model.gguf.fileSize) / 1e6,
                   score.meanKL, 100 * score.top1Flips))
        let speedPrompt = Array(probe.texts[0].tokens.prefix(128))
        var sourceTPS: [Double] = [], plannedTPS: [Double] = []
        let engines = [ForwardEngine(model: source.model, threads: threads, logger: logger),
                       ForwardEngine(model: planned.model, threads: threads, logger: logger)]
        for _ in 0..<3 {
            for (i, engine) in engines.enumerated() {
                let tps = try await BlockingWork.run("plan-speed") { [speedTokens] in
                    try AlignmentProfiler.decodeTokensPerSecond(engine, prompt: speedPrompt, tokens: speedTokens)
                }
                if i == 0 { sourceTPS.append(tps) } else { plannedTPS.append(tps) }
            }
        }
        let ratios = zip(plannedTPS, sourceTPS).map { $0 / $1 }
        say("speed (A B A B, \(threads) threads, \(speedTokens) steps): source "
            + sourceTPS.map { String(format: "%.1f", $0) }.joined(separator: ", ") + " tok/s; planned "
            + plannedTPS.map { String(format: "%.1f", $0) }.joined(separator: ", ") + " tok/s; ratios "
            + ratios.map { String(format: "%.3f", $0) }.joined(separator: ", "))
        var applied = PlanReport.Applied(path: outPath, bytes: written.fileSize, sourceBytes: source.model.gguf.fileSize,
                                         meanKL: score.meanKL, top1Flips: score.top1Flips,
                                         sourceTokensPerSecond: sourceTPS, plannedTokensPerSecond: plannedTPS)
        if let target {
            let t = try await ModelLoader.load(target, logger: logger)
            guard t.tokenizer.vocabularySize == source.tokenizer.vocabularySize else {
                throw ValidationError("\(target) does not share the draft's tokenizer")
            }
            var profiler = AlignmentProfiler(target: ForwardEngine(model: t.model, threads: threads, logger: logger),
                                             drafts: engines, kMax: 8, maxTokens: maxTokens, temperature: 1)
            let template = try ChatTemplate(templateSource: t.model.gguf.metadata["tokenizer.chat_template"]?.string)
            for p in set {
                let tokens = t.tokenizer.encode(template.render(
                    messages: p.messages.map { ChatMessage(role: $0.role, content: $0.content) }, addGenerationPrompt: true),
                    parseSpecial: true)
                let tokenizer = t.tokenizer
                profiler = try await BlockingWork.run("plan-accept") { [profiler] in
                    var copy = profiler
                    try copy.add(prompt: tokens, isEndOfGeneration: tokenizer.isEndOfGeneration)
                    return copy
                }
            }
            let s = profiler.summary(draft: 0), q = profiler.summary(draft: 1)
            // First order: a planned draft whose top choice moved (the summed per-layer share) loses a greedy match
            // where the source had one; a move onto the target's token is left out, so this leans pessimistic.
            let predicted = s.greedy.perPosition[0] * max(0, 1 - predictedTop1Flips)
            applied.acceptance = .init(target: t.name, positions: s.positions,
                                       sourceGreedyPerPosition: s.greedy.perPosition, plannedGreedyPerPosition: q.greedy.perPosition,
                                       sourceSampledPerPosition: s.sampled.perPosition, plannedSampledPerPosition: q.sampled.perPosition,
                                       predictedGreedyPosition1: predicted)
            say(String(format: "acceptance against %@ over %d positions (position 1, greedy / sampled): source %.3f / %.3f, "
                       + "planned %.3f / %.3f (greedy predicted %.3f: source x (1 - predicted top-1 changes))",
                       t.name, s.positions, s.greedy.perPosition[0], s.sampled.perPosition[0],
                       q.greedy.perPosition[0], q.sampled.perPosition[0], predicted))
        }
        return applied
    }

    func say(_ line: String) {
        print(line)
        fflush(nil)
    }
}
