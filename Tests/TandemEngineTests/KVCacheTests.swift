import Foundation
import Testing

@testable import TandemEngine

/// `KVCache` memory accounting (committed in blocks as it grows, released by `reset`) and f16 caches
/// against f32 ones on a real model.
@Suite("KV cache", .serialized)
struct KVCacheTests {
    static func smolModel() throws -> LanguageModel? {
        guard let path = TestModels.path("SmolLM2-135M-Instruct.Q4_1.gguf") else { return nil }
        return try LanguageModel(gguf: GGUFFile(path: path))
    }

    /// A deterministic token sequence of `n` ids below `vocab`.
    static func tokens(_ n: Int, vocab: Int, seed: Int = 1) -> [Int32] {
        (0..<n).map { Int32((($0 + seed) * 7919 + 13) % (vocab - 10) + 5) }
    }

    @Test(arguments: KVCacheType.allCases)
    func memoryIsCommittedInBlocksAndReleasedByReset(type: KVCacheType) throws {
        guard let model = try Self.smolModel() else { return }
        let c = model.config
        let engine = ForwardEngine(model: model, threads: 2, kvType: type)
        let cache = engine.makeCache(capacity: 2048)
        let perPos = c.layerCount * 2 * c.kvWidth * type.elementSize
        #expect(cache.type == type)
        #expect(cache.bytesPerPosition == perPos && engine.kvBytesPerPosition == perPos)
        #expect(cache.reservedBytes == 2048 * perPos)
        #expect(cache.residentBytes == 0, "nothing is committed before the first token")

        let block = KVCache.blockPositions
        _ = try engine.forward([ForwardRequest(cache: cache, tokens: Self.tokens(10, vocab: c.vocabularySize), logits: .last)])
        #expect(cache.residentBytes == block * perPos)
        #expect(cache.byteCount == cache.residentBytes)
        // Crossing a block boundary commits exactly one more block.
        _ = try engine.forward([ForwardRequest(cache: cache, tokens: Self.tokens(block, vocab: c.vocabularySize), logits: .last)])
        #expect(cache.count == block + 10)
        #expect(cache.committedPositions == 2 * block && cache.residentBytes == 2 * block * perPos)
        // Rollback keeps the blocks; reset gives them back.
        cache.truncate(to: 3)
        #expect(cache.residentBytes == 2 * block * perPos)
        cache.reset()
        #expect(cache.count == 0 && cache.residentBytes == 0)
        // And the cache works again after a reset (memory re-committed, zero-filled).
        let logits = try engine.decode(cache: cache, token: 42)
        let finite = logits.allSatisfy { $0.isFinite }
        #expect(finite)
        #expect(cache.residentBytes == block * perPos)
        // Never more than the capacity.
        let small = engine.makeCache(capacity: 20)
        _ = try engine.decode(cache: small, token: 1)
        #expect(small.residentBytes == 20 * perPos)
    }

    /// A sequence that crosses block boundaries gives the same bits decoded token by token, in one call,
    /// and continued from a copied prefix; and after a reset the cache reproduces them.
    @Test(arguments: KVCacheType.allCases)
    func blocksAreInvisibleToTheLogits(type: KVCacheType) throws {
        guard let model = try Self.smolModel() else { return }
        let engine = ForwardEngine(model: model, threads: 2, kvType: type)
        let seq = Self.tokens(KVCache.blockPositions + 40, vocab: model.config.vocabularySize)
        let whole = engine.makeCache(capacity: 1024)
        let r = try engine.forward([ForwardRequest(cache: whole, tokens: seq, logits: .all)])
        let rows = (0..<seq.count).map { r.logits(request: 0, row: $0).map(\.bitPattern) }

        let prefix = KVCache.blockPositions - 3
        let copy = engine.makeCache(capacity: 1024)
        copy.copyPrefix(of: whole, count: prefix)
        #expect(copy.count == prefix && copy.residentBytes == KVCache.blockPositions * copy.bytesPerPosition)
        let r2 = try engine.forward([ForwardRequest(cache: copy, tokens: Array(seq[prefix...]), logits: .all)])
        for row in 0..<(seq.count - prefix) {
            #expect(r2.logits(request: 0, row: row).map(\.bitPattern) == rows[prefix + row], "row \(prefix + row) after copyPrefix")
        }

        whole.reset()
        for (i, t) in seq.enumerated() where i < seq.count - 1 {
            _ = try engine.decode(cache: whole, token: t)
        }
        let last = try engine.decode(cache: whole, token: seq.last!).map(\.bitPattern)
        #expect(last == rows.last!, "token-by-token after reset vs one call")
    }

    /// f16 keys/values change the logits only slightly: same greedy choice on a real prompt, small
    /// differences in log-probabilities.
    @Test func f16StaysCloseToF32() throws {
        guard let model = try Self.smolModel() else { return }
        let seq = Self.tokens(120, vocab: model.config.vocabularySize, seed: 3)
        func run(_ type: KVCacheType) throws -> [[Float]] {
            let engine = ForwardEngine(model: model, threads: 2, kvType: type)
            let cache = engine.makeCache(capacity: 200)
            let r = try engine.forward([ForwardRequest(cache: cache, tokens: seq, logits: .all)])
            return (0..<seq.count).map { Array(r.logits(request: 0, row: $0)) }
        }
        let a = try run(.f32), b = try run(.f16)
        var same = 0, maxDiff: Float = 0
        var differs = false
        for (x, y) in zip(a, b) {
            if x.indices.max(by: { x[$0] < x[$1] }) == y.indices.max(by: { y[$0] < y[$1] }) { same += 1 }
            for i in x.indices {
                maxDiff = max(maxDiff, abs(x[i] - y[i]))
                if x[i] != y[i] { differs = true }
            }
        }
        #expect(differs, "an f16 cache must actually round the keys and values")
        #expect(same >= seq.count * 95 / 100, "greedy choice agrees at \(same)/\(seq.count) positions")
        #expect(maxDiff < 0.5, "largest logit difference \(maxDiff)")
    }

    @Test func kvTypeParsing() throws {
        #expect(try KVCacheType(parsing: "f16") == .f16)
        #expect(try KVCacheType(parsing: "F32") == .f32)
        #expect(throws: KVCacheTypeError.self) { try KVCacheType(parsing: "bf16") }
        // The flag wins over the environment, which wins over the default.
        #expect(try KVCacheType(flag: "f32", environment: "f16") == .f32)
        #expect(try KVCacheType(flag: nil, environment: "f16") == .f16)
        #expect(try KVCacheType(flag: nil, environment: nil) == KVCacheType.default)
        #expect(throws: KVCacheTypeError.self) { try KVCacheType(flag: nil, environment: "half") }
    }
}
