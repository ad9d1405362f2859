import Foundation
import Testing

@testable import TandemEngine

/// Batch invariance, KV-cache rollback and request validation of `ForwardEngine`.
///
/// Batch invariance is what makes speculative verification lossless for greedy decoding: the logits of a
/// position must be bit-for-bit the same whether it is decoded alone, as one of several new positions of
/// its sequence, or in a call together with other sequences.
@Suite("Model forward", .serialized)
struct ModelForwardTests {
    static let sequences: [[Int32]] = [
        [1, 504, 3575, 282, 4649, 314, 253, 1838, 28, 665, 436, 253],
        [1604, 3987, 46477, 24, 94, 727, 12615, 36411, 418],
        [2, 6403, 1980, 253, 655],
    ]

    static func smolModel() throws -> LanguageModel? {
        guard let path = TestModels.path("SmolLM2-135M-Instruct.Q4_1.gguf") else { return nil }
        return try LanguageModel(gguf: GGUFFile(path: path))
    }

    /// Bit patterns, so that equality means bit-identical (and NaN would never pass).
    static func bits(_ logits: UnsafeBufferPointer<Float>) -> [UInt32] { logits.map(\.bitPattern) }

    /// Equality without dumping 50k-element arrays into the test log on failure.
    static func same<T: Equatable>(_ a: T, _ b: T) -> Bool { a == b }

    /// Logits per position of each sequence, decoded one token per call.
    static func oneByOne(_ engine: ForwardEngine, _ seqs: [[Int32]]) throws -> [[[UInt32]]] {
        try seqs.map { seq in
            let cache = engine.makeCache(capacity: 256)
            return try seq.map { try bits(engine.decode(cache: cache, token: $0)) }
        }
    }

    /// Logits per position of each sequence, one call per sequence with all its tokens.
    static func perSequence(_ engine: ForwardEngine, _ seqs: [[Int32]]) throws -> [[[UInt32]]] {
        try seqs.map { seq in
            let cache = engine.makeCache(capacity: 256)
            let r = try engine.forward([ForwardRequest(cache: cache, tokens: seq, logits: .all)])
            return (0..<seq.count).map { bits(r.logits(request: 0, row: $0)) }
        }
    }

    /// All sequences in one call.
    static func allTogether(_ engine: ForwardEngine, _ seqs: [[Int32]]) throws -> [[[UInt32]]] {
        let caches = seqs.map { _ in engine.makeCache(capacity: 256) }
        let r = try engine.forward(zip(caches, seqs).map { ForwardRequest(cache: $0, tokens: $1, logits: .all) })
        return seqs.indices.map { i in (0..<seqs[i].count).map { bits(r.logits(request: i, row: $0)) } }
    }

    /// Ragged schedule: each sequence is split into pieces of different sizes at different offsets, and the
    /// pieces of all sequences are interleaved into shared calls.
    static func ragged(_ engine: ForwardEngine, _ seqs: [[Int32]]) throws -> [[[UInt32]]] {
        let caches = seqs.map { _ in engine.makeCache(capacity: 256) }
        var out: [[[UInt32]]] = seqs.map { _ in [] }
        var next = seqs.map { _ in 0 }
        var round = 0
        while zip(next, seqs).contains(where: { $0 < $1.count }) {
            var reqs: [ForwardRequest] = []
            var owners: [Int] = []
            for i in seqs.indices where next[i] < seqs[i].count {
                let n = min(seqs[i].count - next[i], 1 + (round + i) % 4)
                reqs.append(ForwardRequest(cache: caches[i], tokens: Array(seqs[i][next[i]..<(next[i] + n)]), logits: .all))
                owners.append(i)
                next[i] += n
            }
            let r = try engine.forward(reqs)
            for (k, i) in owners.enumerated() {
                for row in 0..<r.rowCount(request: k) { out[i].append(bits(r.logits(request: k, row: row))) }
            }
            round += 1
        }
        return out
    }

    /// Every schedule gives the same bits, with caches of `kvType` (f16 caches must be as batch-invariant
    /// as f32 ones).
    static func checkBatchInvariance(_ model: LanguageModel, _ seqs: [[Int32]], kvType: KVCacheType = .f32) throws {
        let engine = ForwardEngine(model: model, threads: 2, kvType: kvType)
        let alone = try oneByOne(engine, seqs)
        let multi = try perSequence(engine, seqs)
        let together = try allTogether(engine, seqs)
        let mixed = try ragged(engine, seqs)
        // A single-threaded engine must agree too (work split across threads must not matter).
        let single = try allTogether(ForwardEngine(model: model, threads: 1, kvType: kvType), seqs)
        for i in seqs.indices {
            #expect(alone[i].count == seqs[i].count)
            for p in seqs[i].indices {
                #expect(Self.same(alone[i][p], multi[i][p]), "sequence \(i) position \(p): one-by-one vs one call")
                #expect(Self.same(alone[i][p], together[i][p]), "sequence \(i) position \(p): one-by-one vs batched")
                #expect(Self.same(alone[i][p], mixed[i][p]), "sequence \(i) position \(p): one-by-one vs ragged")
                #expect(Self.same(alone[i][p], single[i][p]), "sequence \(i) position \(p): 2 threads vs 1 thread")
            }
        }
        // The logits are not degenerate.
        let first = alone[0][0].map { Float(bitPattern: $0) }
        #expect(first.allSatisfy { $0.isFinite })
        #expect(Set(first).count > 100)
    }

    @Test(arguments: KVCacheType.allCases)
    func batchInvarianceSmolLM2(kvType: KVCacheType) throws {
        guard let model = try Self.smolModel() else { return }
        try Self.checkBatchInvariance(model, Self.sequences, kvType: kvType)
    }

    /// The draft model: qwen2 with q/k/v biases, NEOX rope, GQA 14/2, and Q4_K/Q5_0/Q6_K/Q8_0 weights.
    /// Sequences long enough for several attention tiles (16 new tokens) and key blocks (64 positions):
    /// tiling changes which (token, head) pair runs when, never the bits it computes.
    @Test(arguments: KVCacheType.allCases)
    func batchInvarianceAcrossAttentionTilesAndKeyBlocks(kvType: KVCacheType) throws {
        guard let model = try Self.smolModel() else { return }
        let lengths = [150, 70, 33]
        let seqs = lengths.enumerated().map { i, n in (0..<n).map { Int32(($0 * 7919 + i * 104_729) % 40_000 + 10) } }
        try Self.checkBatchInvariance(model, seqs, kvType: kvType)
    }

    @Test(arguments: KVCacheType.allCases)
    func batchInvarianceQwen05B(kvType: KVCacheType) throws {
        guard let path = TestModels.path("Qwen2.5-Coder-0.5B-Instruct.gguf") else { return }
        let model = try LanguageModel(gguf: GGUFFile(path: path))
        #expect(model.config.architecture == "qwen2" && model.config.ropeLayout == .neox)
        #expect(model.layers[0].bq != nil && !model.config.tiedOutput)
        try Self.checkBatchInvariance(model, Self.sequences.map { Array($0.prefix(6)) }, kvType: kvType)
    }

    @Test(arguments: ["qwen2-Q4_K_M", "llama-Q4_1", "qwen2-Q8_0"], KVCacheType.allCases)
    func batchInvarianceSynthetic(name: String, kvType: KVCacheType) async throws {
        guard await ReferenceStore.shared.pythonReady() else {
            print("SKIPPED batchInvarianceSynthetic(\(name)): python with gguf+numpy is not available")
            return
        }
        let models = try await ReferenceStore.shared.syntheticModels()
        let path = try #require(models[name], "no synthetic model \(name)")
        let model = try LanguageModel(gguf: GGUFFile(path: path))
        let v = Int32(model.config.vocabularySize)
        let seqs = Self.sequences.map { $0.map { $0 % v } }
        try Self.checkBatchInvariance(model, seqs, kvType: kvType)
    }

    @Test(arguments: KVCacheType.allCases)
    func kvRollbackReproducesLogits(kvType: KVCacheType) throws {
        guard let model = try Self.smolModel() else { return }
        let engine = ForwardEngine(model: model, threads: 2, kvType: kvType)
        let seq = Self.sequences[0]
        let cache = engine.makeCache(capacity: 256)
        let first = try seq.map { try Self.bits(engine.decode(cache: cache, token: $0)) }
        #expect(cache.count == seq.count)

        // Roll back 5 positions and decode the same tokens again.
        cache.truncate(to: seq.count - 5)
        let again = try seq[(seq.count - 5)...].map { try Self.bits(engine.decode(cache: cache, token: $0)) }
        #expect(Self.same(Array(first[(seq.count - 5)...]), again))

        // Speculate different tokens, reject them, then continue with the real ones.
        cache.truncate(to: 4)
        _ = try engine.forward([ForwardRequest(cache: cache, tokens: [7, 8, 9, 10, 11, 12], logits: .all)])
        #expect(cache.count == 10)
        cache.truncate(to: 4)
        let r = try engine.forward([ForwardRequest(cache: cache, tokens: Array(seq[4...]), logits: .all)])
        for row in 0..<(seq.count - 4) {
            #expect(Self.same(Self.bits(r.logits(request: 0, row: row)), first[4 + row]), "row \(row) after rollback")
        }
    }

    @Test func logitsSelection() throws {
        guard let model = try Self.smolModel() else { return }
        let engine = ForwardEngine(model: model, threads: 2)
        let a = engine.makeCache(capacity: 256), b = engine.makeCache(capacity: 256), c = engine.makeCache(capacity: 256)
        let s = Self.sequences
        let r = try engine.forward([
            ForwardRequest(cache: a, tokens: s[0], logits: .last),
            ForwardRequest(cache: b, tokens: s[1], logits: .none),
            ForwardRequest(cache: c, tokens: s[2], logits: .all),
        ])
        #expect(r.rowCount(request: 0) == 1 && r.rowCount(request: 1) == 0 && r.rowCount(request: 2) == s[2].count)
        let lastOfFirst = Self.bits(r.logits(request: 0))
        let allOfThird = (0..<s[2].count).map { Self.bits(r.logits(request: 2, row: $0)) }
        // `r`'s views are only valid until the next call on the engine.
        let expected = try Self.perSequence(engine, s)
        #expect(Self.same(lastOfFirst, expected[0].last!))
        #expect(Self.same(allOfThird, expected[2]))
        let r2 = try engine.forward([
            ForwardRequest(cache: engine.makeCache(capacity: 256), tokens: s[0], logits: .last),
            ForwardRequest(cache: engine.makeCache(capacity: 256), tokens: s[2], logits: .all),
        ])
        #expect(Self.same(Self.bits(r2.logits(request: 0)), expected[0].last!))
        for row in 0..<s[2].count { #expect(Self.same(Self.bits(r2.logits(request: 1, row: row)), expected[2][row])) }
        #expect(a.count == s[0].count && b.count == s[1].count && c.count == s[2].count)
    }

    /// A call longer than `maxTokensPerPass` runs in several passes (prefill chunks first, without logits):
    /// the logits and the caches must be bit-for-bit those of one pass.
    @Test(arguments: KVCacheType.allCases)
    func passesSplitByTheTokenLimitGiveTheSameLogits(kvType: KVCacheType) throws {
        guard let model = try Self.smolModel() else { return }
        let s = Self.sequences
        func run(maxPass: Int) throws -> (last: [UInt32], all: [[UInt32]], next: [UInt32], counts: [Int]) {
            let engine = ForwardEngine(model: model, threads: 2, kvType: kvType)
            engine.maxTokensPerPass = maxPass
            let a = engine.makeCache(capacity: 256), b = engine.makeCache(capacity: 256), c = engine.makeCache(capacity: 256)
            let r = try engine.forward([
                ForwardRequest(cache: a, tokens: s[0], logits: .last),
                ForwardRequest(cache: b, tokens: s[1], logits: .none),
                ForwardRequest(cache: c, tokens: s[2], logits: .all),
            ])
            let last = Self.bits(r.logits(request: 0))
            let all = (0..<s[2].count).map { Self.bits(r.logits(request: 2, row: $0)) }
            // The cache written in passes continues exactly like the one written at once.
            let next = try Self.bits(engine.decode(cache: b, token: 42))
            return (last, all, next, [a.count, b.count, c.count])
        }
        let whole = try run(maxPass: 256)
        for maxPass in [1, 3, 7] {
            let split = try run(maxPass: maxPass)
            #expect(Self.same(split.last, whole.last), "max \(maxPass): last-row logits")
            #expect(Self.same(split.all, whole.all), "max \(maxPass): all-rows logits")
            #expect(Self.same(split.next, whole.next), "max \(maxPass): decode after a prefill in passes")
            #expect(split.counts == [s[0].count, s[1].count + 1, s[2].count])
        }
    }

    @Test func invalidRequestsAreRejectedWithoutSideEffects() throws {
        guard let model = try Self.smolModel() else { return }
        let engine = ForwardEngine(model: model, threads: 2)
        let cache = engine.makeCache(capacity: 4)
        let other = engine.makeCache(capacity: 4)
        _ = try engine.forward([ForwardRequest(cache: cache, tokens: [1, 2], logits: .none)])
        #expect(throws: ForwardError.self) {
            try engine.forward([ForwardRequest(cache: cache, tokens: [1, 2, 3], logits: .all)])  // over capacity
        }
        #expect(throws: ForwardError.self) {
            try engine.forward([ForwardRequest(cache: other, tokens: [1], logits: .all),
                                ForwardRequest(cache: cache, tokens: [Int32(model.config.vocabularySize)], logits: .all)])
        }
        #expect(throws: ForwardError.self) {
            try engine.forward([ForwardRequest(cache: cache, tokens: [1]), ForwardRequest(cache: cache, tokens: [2])])
        }
        #expect(throws: ForwardError.self) { try engine.forward([ForwardRequest(cache: cache, tokens: [])]) }
        #expect(cache.count == 2 && other.count == 0)
    }

    @Test func configFromSmolLM2Metadata() throws {
        guard let model = try Self.smolModel() else { return }
        let c = model.config
        #expect(c.architecture == "llama" && c.ropeLayout == .normal)
        #expect(c.layerCount == 30 && c.embeddingWidth == 576 && c.headCount == 9 && c.kvHeadCount == 3)
        #expect(c.headDim == 64 && c.feedForwardWidth == 1536 && c.vocabularySize == 49152)
        #expect(c.tiedOutput && c.rmsEpsilon == 1e-5 && c.ropeBase == 100_000)
        #expect(model.layers[0].bq == nil)
    }
}
