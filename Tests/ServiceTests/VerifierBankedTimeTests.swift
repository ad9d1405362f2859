import TandemWire
import Testing
@testable import Verifier

/// The TPOT time a session banks by running under its objective (docs/fleet.md, "Chunked prefill"): what a
/// batch may spend on a newcomer's prompt without making the running sessions miss their TPOT.
struct VerifierBankedTimeTests {
    static func session(prompt: Int = 4, tpotMs: Double = 100) -> VerifierSession {
        let open = SessionOpen(session: "s", tokens: Array(repeating: 7, count: prompt), promptLength: prompt,
                               sampling: WireSampling(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0),
                               mode: .coupled, slo: SLO(ttftMs: 2000, tpotMs: tpotMs), capacity: 64)
        return VerifierSession(open: open, capacity: 64)
    }

    @Test func nothingIsBankedBeforeTheFirstToken() {
        let s = Self.session()
        #expect(s.bankedTPOTMs(now: 10_000) == 0)
        s.commit([], now: 1_000)
        #expect(s.bankedTPOTMs(now: 10_000) == 0, "an empty commit starts no clock")
    }

    @Test func aSessionUnderItsObjectiveBanksTheDifferenceAndSpendsItAsTimePasses() {
        let s = Self.session(tpotMs: 100)
        s.commit([1], now: 1_000)             // first token: the clock starts, nothing banked yet
        #expect(s.bankedTPOTMs(now: 1_000) == 0)
        s.commit([2, 3, 4], now: 1_090)       // 3 tokens in 90 ms against 300 ms allowed
        #expect(s.bankedTPOTMs(now: 1_090) == 210)
        #expect(s.bankedTPOTMs(now: 1_200) == 100, "waiting spends what was banked")
        #expect(s.bankedTPOTMs(now: 1_400) == 0, "never negative: a session over its objective has nothing to give")
        s.commit([5], now: 1_400)
        #expect(s.bankedTPOTMs(now: 1_400) == 0)
    }

    @Test func aRolledBackSessionAndOneWithoutTPOTObjectiveBankNothing() {
        let s = Self.session(prompt: 4, tpotMs: 100)
        s.commit([1, 2, 3], now: 0)
        s.committed.removeLast(3)             // a drafter resumes from the prompt (verify at position 4)
        #expect(s.bankedTPOTMs(now: 0) == 0)
        let noObjective = Self.session(tpotMs: 0)
        noObjective.commit([1], now: 0)
        noObjective.commit([2, 3], now: 10)
        #expect(noObjective.bankedTPOTMs(now: 10) == 0)
    }
}
