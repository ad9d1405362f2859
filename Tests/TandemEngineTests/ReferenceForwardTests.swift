import Foundation
import Testing
import TandemEngine

/// The engine's logits against the independent numpy reference (Tests/Reference/reference_forward.py).
///
/// Synthetic `qwen2` and `llama` models (Tests/Reference/make_synthetic.py) cover every tensor type the
/// engine loads; SmolLM2-135M covers a real trained model. The engines here use an f32 KV cache, as the
/// reference keeps keys and values at full precision (f16 caches against f32 ones: `KVCacheTests`).
/// The metric is `LogitComparison`: per position, the largest error on the reference's top-20 logits
/// divided by the reference logit range, plus the argmax (near-ties excepted). Criteria:
///
/// - every model vs the exact float64 reference: error <= 1e-2, same argmax;
/// - synthetic F32/F16 models vs the exact reference: error <= 1e-4 (the engine computes in float32);
/// - synthetic quantized models vs the reference that rounds matmul inputs exactly like the engine's
///   integer kernels (`ReferenceJob.int8Activations`: int8 per block, int16 for Q4_0/Q4_1/Q5_1):
///   error <= 4e-3. The engine agrees with it to ~1e-7 except where a value lands on an int8 rounding
///   boundary and the float summation order of a kernel decides which way it rounds (seen: up to
///   2.5e-3, synthetic qwen2 Q5_0 with the packed kernels); this catches bugs far below the 1e-2 bar;
/// - SmolLM2 vs the exact reference: error <= 1e-2, same argmax (its Q4_1 matrices take int16
///   activations; int8 ones moved its logits by up to 3.9 % of the range);
/// - Qwen2.5 vs the exact reference: error <= 5e-2 (measured ~1.3e-2), same argmax; position 0 of the
///   1.5B is a known issue, see `checkQwen`. These files are not fetched in CI.
///
/// Enabled only when python3 with `gguf` and `numpy` is present (CI installs them) and, for SmolLM2, when
/// the model file exists.
@Suite("Engine vs numpy reference", .serialized,
       .enabled("needs python3 with the pip packages gguf and numpy (Tests/Reference)") {
           await ReferenceHarness.isAvailable()
       })
struct ReferenceForwardTests {
    static let syntheticTypes = ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"]

    /// 16 ids spread over the synthetic vocabulary (bytes, merges, the three control tokens).
    static let syntheticTokens: [Int32] = [317, 116, 257, 32, 99, 306, 289, 284, 114, 303, 280, 5, 200, 318, 45, 319]
    /// A second sequence, for batching two caches in one call.
    static let syntheticTokens2: [Int32] = [72, 101, 108, 108, 111, 44, 260, 250, 33]

    static let smolLMPrompts: [(name: String, tokens: [Int32])] = [
        ("The capital of France is", [504, 3575, 282, 4649, 314]),
        ("def fibonacci(n):", [1604, 3987, 46477, 24, 94, 727]),
        ("<|im_start|>Once upon a time, there was a little", [1, 6403, 1980, 253, 655, 28, 665, 436, 253, 1838]),
        ("Water boils at 100 degrees", [12615, 36411, 418, 216, 33, 32, 32, 5027]),
    ]

    /// Qwen2.5 token ids ("def fibonacci(n):", "<|im_start|>The capital of France is").
    static let qwenPrompts: [(name: String, tokens: [Int32])] = [
        ("def fibonacci(n):", [750, 75698, 7, 77, 1648]),
        ("<|im_start|>The capital of France is", [151644, 785, 6722, 315, 9625, 374]),
    ]

    static let floatTolerance = 1e-4
    static let int8ReferenceTolerance = 4e-3
    static let realModelTolerance = 5e-2

    /// Evaluates `tokens` in one call with logits for every position.
    static func engineLogits(_ engine: ForwardEngine, _ tokens: [Int32]) throws -> [[Float]] {
        let cache = engine.makeCache(capacity: tokens.count + 8)
        let result = try engine.forward([ForwardRequest(cache: cache, tokens: tokens, logits: .all)])
        return (0..<result.rowCount(request: 0)).map { Array(result.logits(request: 0, row: $0)) }
    }

    static func compare(_ engine: [[Float]], _ reference: ReferenceLogits,
                        tolerance: Double = LogitComparison.defaultTolerance) -> LogitComparison {
        var c = LogitComparison(tolerance: tolerance)
        for (row, logits) in engine.enumerated() { c.add(engine: logits, reference: reference.row(row)) }
        return c
    }

    static func syntheticPath(_ key: String) async throws -> String {
        let models = try await ReferenceStore.shared.syntheticModels()
        return try #require(models[key], "make_synthetic.py did not write \(key)")
    }

    @Test("synthetic models, one call, all positions", arguments: ["qwen2", "llama"], syntheticTypes)
    func syntheticAllPositions(arch: String, type: String) async throws {
        let path = try await Self.syntheticPath("\(arch)-\(type)")
        let job = ReferenceJob(model: path, tokens: Self.syntheticTokens)
        let jobInt8 = ReferenceJob(model: path, tokens: Self.syntheticTokens, int8Activations: true)
        let refs = try await ReferenceStore.shared.logits([job, jobInt8])
        let reference = try #require(refs[job]), referenceInt8 = try #require(refs[jobInt8])

        let model = try LanguageModel(gguf: GGUFFile(path: path))
        #expect(model.config.architecture == arch)
        #expect(model.config.vocabularySize == reference.vocabularySize)
        #expect(model.config.tiedOutput == (arch == "llama"))
        let engine = ForwardEngine(model: model, threads: 2, kvType: .f32)
        let logits = try Self.engineLogits(engine, Self.syntheticTokens)
        #expect(logits.count == Self.syntheticTokens.count)

        let exact = Self.compare(logits, reference)
        let isFloat = type == "F32" || type == "F16"
        let tight = isFloat ? Self.compare(logits, reference, tolerance: Self.floatTolerance)
                            : Self.compare(logits, referenceInt8, tolerance: Self.int8ReferenceTolerance)
        print("reference \(arch)/\(type): exact reference: \(exact); \(isFloat ? "exact" : "int8-activation") reference, tight: \(tight)")
        #expect(exact.passed, "\(arch)/\(type) vs exact reference: \(exact)")
        #expect(tight.passed, "\(arch)/\(type) vs \(isFloat ? "exact" : "int8-activation") reference: \(tight)")
    }

    /// Prefill part of the sequence, then decode the rest one token at a time through the KV cache; every
    /// step must match the reference at that position and be bit-identical to the one-call logits.
    @Test("synthetic models, prefill then incremental decode", arguments: ["qwen2", "llama"], ["Q8_0", "Q4_K_M", "F32"])
    func syntheticIncremental(arch: String, type: String) async throws {
        let path = try await Self.syntheticPath("\(arch)-\(type)")
        let tokens = Self.syntheticTokens
        let job = ReferenceJob(model: path, tokens: tokens)
        let reference = try #require(try await ReferenceStore.shared.logits([job])[job])

        let engine = ForwardEngine(model: try LanguageModel(gguf: GGUFFile(path: path)), threads: 2, kvType: .f32)
        let oneCall = try Self.engineLogits(engine, tokens)
        let cache = engine.makeCache(capacity: tokens.count)
        let prefill = 5
        var comparison = LogitComparison()
        var identical = true
        let first = try engine.forward([ForwardRequest(cache: cache, tokens: Array(tokens[0..<prefill]), logits: .last)])
        comparison.add(engine: first.logits(request: 0), reference: reference.row(prefill - 1))
        identical = identical && Array(first.logits(request: 0)) == oneCall[prefill - 1]
        for i in prefill..<tokens.count {
            let logits = try engine.decode(cache: cache, token: tokens[i])
            comparison.add(engine: logits, reference: reference.row(i))
            identical = identical && Array(logits) == oneCall[i]
        }
        #expect(cache.count == tokens.count)
        print("reference incremental \(arch)/\(type): \(comparison); identical to one call: \(identical)")
        #expect(comparison.passed, "\(arch)/\(type) incremental: \(comparison)")
        #expect(identical, "\(arch)/\(type): incremental logits differ from the one-call logits")
    }

    /// Two sequences of different lengths in one forward call: each matches its own reference.
    @Test("synthetic qwen2, two sequences batched in one call")
    func syntheticBatched() async throws {
        let path = try await Self.syntheticPath("qwen2-Q4_K")
        let jobA = ReferenceJob(model: path, tokens: Self.syntheticTokens)
        let jobB = ReferenceJob(model: path, tokens: Self.syntheticTokens2)
        let refs = try await ReferenceStore.shared.logits([jobA, jobB])
        let refA = try #require(refs[jobA]), refB = try #require(refs[jobB])

        let engine = ForwardEngine(model: try LanguageModel(gguf: GGUFFile(path: path)), threads: 2, kvType: .f32)
        let cacheA = engine.makeCache(capacity: 32), cacheB = engine.makeCache(capacity: 32)
        // A's first 3 tokens alone, then A's rest and all of B together.
        _ = try engine.forward([ForwardRequest(cache: cacheA, tokens: Array(Self.syntheticTokens[0..<3]), logits: .none)])
        let result = try engine.forward([
            ForwardRequest(cache: cacheA, tokens: Array(Self.syntheticTokens[3...]), logits: .all),
            ForwardRequest(cache: cacheB, tokens: Self.syntheticTokens2, logits: .all),
        ])
        var a = LogitComparison(), b = LogitComparison()
        for row in 0..<result.rowCount(request: 0) {
            a.add(engine: result.logits(request: 0, row: row), reference: refA.row(3 + row))
        }
        for row in 0..<result.rowCount(request: 1) {
            b.add(engine: result.logits(request: 1, row: row), reference: refB.row(row))
        }
        #expect(a.rows == Self.syntheticTokens.count - 3)
        #expect(b.rows == Self.syntheticTokens2.count)
        #expect(a.passed, "sequence A: \(a)")
        #expect(b.passed, "sequence B: \(b)")
    }

    /// The draft model shares the target's vocabulary, loads like any model, and differs from the target.
    @Test("synthetic draft model matches the reference")
    func syntheticDraft() async throws {
        let path = try await Self.syntheticPath("qwen2-draft-Q8_0")
        let job = ReferenceJob(model: path, tokens: Self.syntheticTokens)
        let reference = try #require(try await ReferenceStore.shared.logits([job])[job])
        let engine = ForwardEngine(model: try LanguageModel(gguf: GGUFFile(path: path)), threads: 2, kvType: .f32)
        let logits = try Self.engineLogits(engine, Self.syntheticTokens)
        let comparison = Self.compare(logits, reference)
        #expect(comparison.passed, "draft: \(comparison)")

        let target = ForwardEngine(model: try LanguageModel(gguf: GGUFFile(path: try await Self.syntheticPath("qwen2-Q8_0"))),
                                   threads: 2, kvType: .f32)
        #expect(target.model.config.vocabularySize == engine.model.config.vocabularySize)
        let targetLogits = try Self.engineLogits(target, Self.syntheticTokens)
        func argmax(_ v: [Float]) -> Int { v.indices.max { v[$0] < v[$1] }! }
        let agreements = zip(logits, targetLogits).filter { argmax($0) == argmax($1) }.count
        #expect(agreements < Self.syntheticTokens.count, "the draft should not always agree with its target")
    }

    @Test("SmolLM2-135M on tokenized prompts",
          .enabled(if: ReferenceHarness.smolLMPath != nil,
                   "SmolLM2-135M-Instruct.Q4_1.gguf not found in $TANDEM_MODELS or ~/.cache/tandem/models"),
          .timeLimit(.minutes(15)))
    func smolLM() async throws {
        let path = try #require(ReferenceHarness.smolLMPath)
        let jobs = Self.smolLMPrompts.map { ReferenceJob(model: path, tokens: $0.tokens) }
        let refs = try await ReferenceStore.shared.logits(jobs)
        let model = try LanguageModel(gguf: GGUFFile(path: path))
        #expect(model.config.architecture == "llama")
        #expect(model.config.tiedOutput)
        let engine = ForwardEngine(model: model, threads: 2, kvType: .f32)
        for (i, prompt) in Self.smolLMPrompts.enumerated() {
            let reference = try #require(refs[jobs[i]])
            let logits = try Self.engineLogits(engine, prompt.tokens)
            let comparison = Self.compare(logits, reference)
            print("reference SmolLM2 '\(prompt.name)': \(comparison)")
            #expect(comparison.passed, "SmolLM2 '\(prompt.name)': \(comparison)")
        }
        // The reference itself is sane: " Paris" (7042) follows "The capital of France is".
        let paris = try #require(refs[jobs[0]])
        let last = Array(paris.row(paris.rows - 1))
        #expect(last.indices.max { last[$0] < last[$1] } == 7042)
    }

    /// Real `qwen2` files (biases, NEOX rope, 151,936-token vocabulary, separate output matrix).
    ///
    /// Position 0 is checked separately: on Qwen2.5-Coder-1.5B the first position carries huge activation
    /// outliers, and rounding matmul inputs to int8 per block (the engine's integer kernels) moves its
    /// logits by 18-48 % of their range and flips its argmax. The numpy reference with the same int8
    /// rounding reproduces exactly that (18.0 % / 47.6 %, same flipped argmax), and so does llama.cpp's own
    /// CPU library on the same file (18.9 % / 47.6 %, same flip; `Tests/Reference/llama_cpp_reference.py
    /// logits`), so it is the int8 scheme, not a bug in the forward pass; recorded as a known issue.
    static func checkQwen(_ path: String, label: String) async throws {
        let jobs = Self.qwenPrompts.map { ReferenceJob(model: path, tokens: $0.tokens) }
        let refs = try await ReferenceStore.shared.logits(jobs)
        let model = try LanguageModel(gguf: GGUFFile(path: path))
        #expect(model.config.architecture == "qwen2")
        #expect(!model.config.tiedOutput)
        let engine = ForwardEngine(model: model, threads: 2, kvType: .f32)
        for (i, prompt) in Self.qwenPrompts.enumerated() {
            let reference = try #require(refs[jobs[i]])
            let logits = try Self.engineLogits(engine, prompt.tokens)
            var first = LogitComparison(tolerance: Self.realModelTolerance)
            first.add(engine: logits[0], reference: reference.row(0))
            var rest = LogitComparison(tolerance: Self.realModelTolerance)
            for row in 1..<logits.count { rest.add(engine: logits[row], reference: reference.row(row)) }
            print("reference \(label) '\(prompt.name)': position 0: \(first); positions 1...: \(rest)")
            #expect(rest.passed, "\(label) '\(prompt.name)' positions 1...: \(rest)")
            withKnownIssue("int8 activation rounding vs first-position outliers (see checkQwen)", isIntermittent: true) {
                #expect(first.passed, "\(label) '\(prompt.name)' position 0: \(first)")
            }
        }
    }

    @Test("Qwen2.5-Coder-0.5B on tokenized prompts",
          .enabled(if: ReferenceHarness.qwenDraftPath != nil,
                   "Qwen2.5-Coder-0.5B-Instruct.gguf not found in $TANDEM_MODELS or ~/.cache/tandem/models"),
          .timeLimit(.minutes(30)))
    func qwenDraft() async throws {
        try await Self.checkQwen(try #require(ReferenceHarness.qwenDraftPath), label: "Qwen2.5-Coder-0.5B")
    }

    @Test("Qwen2.5-Coder-1.5B Q4_K_M on tokenized prompts",
          .enabled(if: ReferenceHarness.qwenTargetPath != nil,
                   "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf not found in $TANDEM_MODELS or ~/.cache/tandem/models"),
          .timeLimit(.minutes(30)))
    func qwenTarget() async throws {
        try await Self.checkQwen(try #require(ReferenceHarness.qwenTargetPath), label: "Qwen2.5-Coder-1.5B")
    }
}
