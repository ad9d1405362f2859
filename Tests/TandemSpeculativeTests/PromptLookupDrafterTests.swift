import Testing
import TandemSpeculative

@Suite("Prompt lookup drafter")
struct PromptLookupDrafterTests {
    let drafter = PromptLookupDrafter()

    @Test("the longest suffix n-gram wins, and its most recent occurrence")
    func longestAndMostRecent() throws {
        // ... 1 2 3 [4 5] ... 9 2 3 [7 8] ... 2 3: the 2-gram "2 3" occurs twice before the suffix; the
        // most recent occurrence (followed by 7 8) is proposed.
        let context: [Int32] = [1, 2, 3, 4, 5, 6, 9, 2, 3, 7, 8, 0, 2, 3]
        let match = try #require(drafter.match(in: context, maxTokens: 4))
        #expect(match.ngram == 2)
        #expect(Array(context[match.continuation]) == [7, 8, 0, 2])
        // A 3-gram match beats a more recent 2-gram one.
        let longer: [Int32] = [5, 2, 3, 4, 1, 9, 2, 3, 8, 6, 5, 2, 3]
        let m3 = try #require(drafter.match(in: longer, maxTokens: 2))
        #expect(m3.ngram == 3)
        #expect(Array(longer[m3.continuation]) == [4, 1])
    }

    @Test("the continuation is capped by maxTokens and by the context's end")
    func caps() throws {
        let context: [Int32] = [7, 8, 9, 7, 8]
        let match = try #require(drafter.match(in: context, maxTokens: 10))
        #expect(match.ngram == 2)
        #expect(Array(context[match.continuation]) == [9, 7, 8])
        #expect(drafter.match(in: context, maxTokens: 0) == nil)
        let one = try #require(drafter.match(in: context, maxTokens: 1))
        #expect(one.continuation.count == 1)
    }

    @Test("no match: nothing repeats, too short, or below the minimum n-gram")
    func noMatch() {
        #expect(drafter.match(in: [1, 2, 3, 4, 5], maxTokens: 3) == nil)
        #expect(drafter.match(in: [1], maxTokens: 3) == nil)
        let strict = PromptLookupDrafter(configuration: .init(maxNgram: 3, minNgram: 2))
        // Only the 1-gram "5" repeats.
        #expect(strict.match(in: [5, 1, 2, 5], maxTokens: 2) == nil)
        #expect(drafter.match(in: [5, 1, 2, 5], maxTokens: 2)?.ngram == 1)
    }

    @Test("the lookback window bounds the search")
    func lookback() {
        let context: [Int32] = [4, 5, 6] + (0..<20).map { Int32(100 + $0) } + [4, 5]
        let near = PromptLookupDrafter(configuration: .init(maxLookback: 10))
        #expect(near.match(in: context, maxTokens: 2) == nil)
        #expect(drafter.match(in: context, maxTokens: 2)?.continuation == 2..<4)
    }

    @Test("the proposal length follows the batch-time model and the acceptance")
    func proposalLength() {
        // 20 ms per batch + 1 ms per extra position: cheap positions, so propose all that is likely accepted.
        let cheap: (Int) -> Double = { 0.020 + 0.001 * Double($0) }
        #expect(PromptLookupDrafter.proposalLength(available: 8, acceptance: 0.9, batchTokens: 1, batchSeconds: cheap) == 8)
        // Expensive positions (each one as dear as the whole step): nothing pays at moderate acceptance.
        let dear: (Int) -> Double = { 0.020 * Double(1 + $0) }
        #expect(PromptLookupDrafter.proposalLength(available: 8, acceptance: 0.5, batchTokens: 1, batchSeconds: dear) == 0)
        // A full batch (many sequences' tokens already) gains little from one session's proposal.
        let medium: (Int) -> Double = { 0.020 + 0.004 * Double($0) }
        let alone = PromptLookupDrafter.proposalLength(available: 8, acceptance: 0.6, batchTokens: 1, batchSeconds: medium)
        let crowded = PromptLookupDrafter.proposalLength(available: 8, acceptance: 0.6, batchTokens: 16, batchSeconds: medium)
        #expect(alone > 0)
        #expect(crowded < alone)
        #expect(PromptLookupDrafter.proposalLength(available: 0, acceptance: 1, batchTokens: 1, batchSeconds: cheap) == 0)
        #expect(PromptLookupDrafter.proposalLength(available: 4, acceptance: 0, batchTokens: 1, batchSeconds: cheap) == 0)
    }

    @Test("acceptance statistics per n-gram length")
    func stats() {
        var stats = PromptLookupStats(maxNgram: 3)
        #expect(stats.acceptance(ngram: 3) == 0.5)
        stats.record(ngram: 3, proposed: 4, accepted: 4)
        stats.record(ngram: 3, proposed: 4, accepted: 2)
        stats.record(ngram: 1, proposed: 2, accepted: 0)
        #expect(stats.proposed == 10 && stats.accepted == 6)
        #expect(stats.acceptance(ngram: 3) == 7.0 / 9.0)   // (6 + 1) / (6 + 1 + 1 rejection + 1)
        #expect(stats.acceptance(ngram: 1) == 1.0 / 3.0)
        #expect(stats.acceptance(ngram: 2) == 0.5)
    }
}
