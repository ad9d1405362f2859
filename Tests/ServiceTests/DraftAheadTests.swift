import Foundation
import Logging
import TandemEngine
import TandemServing
import TandemSpeculative
import TandemWire
import Testing
@testable import DrafterAgent
@testable import Gateway

/// Drafting ahead (docs/design.md §7.4): what a device drafts during a round's verification, on the
/// assumption that the whole draft is accepted and the bonus token is its own guess, must be exactly what it
/// would have drafted after the verifier's answer; and it is used only when the answer confirms that
/// assumption. Checked round by round on the synthetic pair (which disagrees often enough for misses), for
/// the real draft model (whose KV cache runs ahead and must roll back) and for emulated devices.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct DraftAheadTests {
    static let k = 3

    static func session(_ prompt: [Int32], id: String) -> DrafterSession {
        let start = SessionStart(session: SessionID(id), promptTokens: prompt, sampling: WireSampling(temperature: 0, topK: 0,
                                 topP: 1, minP: 0, repetitionPenalty: 1, seed: 0), maxTokens: FleetReplayTests.maxTokens,
                                 verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0, device: "dev-1")
        // A fixed K: the controller never cuts a round short, so drafts compare token for token.
        let config = SpeculationController.Configuration(maxDraftLength: k, initialDraftLength: k, fixedDraftLength: k)
        return DrafterSession(start: start, controller: SpeculationController(configuration: config))
    }

    @Test func aConfirmedDraftAheadEqualsDraftingAfterTheAnswerAndOnlyConfirmedOnesAreUsed() async throws {
        let f = try await FleetReplayTests.fixture()
        let trace = try FleetReplayTests.record(f, params: .greedy)
        func modelSource() -> ModelDraftSource {
            ModelDraftSource(engine: f.draft, tokenizer: f.draftTokenizer, modelName: "syn-draft", quantization: "Q8_0",
                             device: DeviceProfile(name: "test", powerWatts: 1), devices: nil, maxK: 8, draftSupport: 32)
        }
        let fresh = modelSource(), ahead = modelSource()
        defer { fresh.shutdown(); ahead.shutdown() }
        let emulated = EmulatedDraftSource(trace: trace, tracePath: "test", profile: FleetReplayTests.profile,
                                           devices: ["dev-1"], logger: Logger(label: "test"))
        var hits = 0, misses = 0, fullyAccepted = 0
        var wasted = 0.0
        for (p, prompt) in FleetReplayTests.prompts.enumerated() {
            let output = trace.entries[p].output
            let reference = Self.session(prompt, id: "ref\(p)")
            let real = Self.session(prompt, id: "real\(p)"), replayed = Self.session(prompt, id: "emu\(p)")
            let realAhead = DraftAhead(), replayedAhead = DraftAhead()
            while reference.generatedCount < output.count - 1 {
                for s in [reference, real, replayed] { s.controller.beginRound(verifyTime: nil) }
                let want = try await fresh.draft(reference, k: Self.k)
                let realTaken = realAhead.take(committed: real.committed, k: Self.k, session: real)
                let replayedTaken = replayedAhead.take(committed: replayed.committed, k: Self.k, session: replayed)
                // A draft ahead is ready exactly when the last answer confirmed it, for both kinds of device.
                #expect((realTaken == nil) == (replayedTaken == nil))
                var x: DraftOutput, y: DraftOutput
                if let realTaken { x = realTaken } else { x = try await ahead.draft(real, k: Self.k) }
                if let replayedTaken { y = replayedTaken } else { y = try await emulated.draft(replayed, k: Self.k) }
                #expect(x.tokens == want.tokens, "prompt \(p), \(reference.generatedCount) generated, ahead: \(realTaken != nil)")
                #expect(y.tokens == want.tokens, "prompt \(p), \(reference.generatedCount) generated, ahead: \(replayedTaken != nil)")
                if realTaken != nil { hits += 1 }

                // Drafting ahead runs while the round is "verified"; the target's own output decides the answer.
                realAhead.start(source: ahead, session: real, base: real.committed + x.tokens, k: Self.k + 1)
                replayedAhead.start(source: emulated, session: replayed, base: replayed.committed + y.tokens, k: Self.k + 1)
                let i = reference.generatedCount
                var n = 0
                while n < want.tokens.count, i + n < output.count, want.tokens[n] == output[i + n] { n += 1 }
                let commit = Array(output[i..<min(output.count, i + n + 1)])
                if n == want.tokens.count { fullyAccepted += 1 } else { misses += 1 }
                let result = VerifyResult(session: "s", position: reference.committed.count, accepted: n, tokens: commit,
                                          timings: VerifyTimings(queueMs: 0, batchMs: 1, batchSequences: 1, batchTokens: n + 1))
                for s in [reference, real, replayed] {
                    s.committed.append(contentsOf: commit)
                    s.controller.finishRound(drafted: want.tokens.count, accepted: n)
                }
                await realAhead.settle(result: result, draft: x, committed: real.committed, answered: .now, session: real)
                await replayedAhead.settle(result: result, draft: y, committed: replayed.committed, answered: .now,
                                           session: replayed)
            }
            #expect(real.stats.aheadHits == replayed.stats.aheadHits)
            #expect(real.stats.aheadDrafts == replayed.stats.aheadDrafts)
            wasted += replayed.stats.wastedDraftMs
        }
        // Every rejection threw a draft ahead away: wasted device time (the emulated device's is its profile's).
        #expect(wasted > 0)
        #expect(hits > 0, "no draft ahead was ever confirmed")
        #expect(misses > 0, "the pair never rejected: the test shows nothing about misses")
        #expect(hits <= fullyAccepted)
        // The emulated device never left the trace: misses drafted ahead after a rejected draft are not "left the trace".
        #expect(emulated.replayCounts.misses == 0)
    }

    /// A draft ahead stops where the session's controller would stop a round (the guessed bonus token and then
    /// the plan's K), not at the largest K it may ask for: on a slow device the rest was waste the next round
    /// waited for.
    @Test func aDraftAheadStopsWhereTheControllerWould() async throws {
        let f = try await FleetReplayTests.fixture()
        let trace = try FleetReplayTests.record(f, params: .greedy)
        let emulated = EmulatedDraftSource(trace: trace, tracePath: "test", profile: FleetReplayTests.profile,
                                           devices: ["dev-1"], logger: Logger(label: "test"))
        let s = Self.session(FleetReplayTests.prompts[0], id: "stop")
        s.controller.beginRound(verifyTime: nil)
        let base = s.committed + [trace.entries[0].output[0]]
        let capped = try await emulated.draft(s, DraftCall(base: base, k: 6, ahead: DraftAbort(),
                                                            stopRule: s.controller.roundAhead()))
        #expect(capped.tokens.count == 1 + Self.k)
        let uncapped = try await emulated.draft(s, DraftCall(base: base, k: 6, ahead: DraftAbort()))
        #expect(uncapped.tokens.count == 6)
        #expect(Array(uncapped.tokens.prefix(1 + Self.k)) == capped.tokens)
    }

    @Test func anAbortedDraftAheadGivesTheEmulatedDeviceBackAtOnce() async throws {
        let f = try await FleetReplayTests.fixture()
        let trace = try FleetReplayTests.record(f, params: .greedy)
        // A slow device: 200 ms per drafted token.
        var profile = FleetReplayTests.profile
        profile.draftMs = [200, 400, 600, 800]
        let emulated = EmulatedDraftSource(trace: trace, tracePath: "test", profile: profile, devices: ["dev-1"],
                                           logger: Logger(label: "test"))
        let s = Self.session(FleetReplayTests.prompts[0], id: "slow")
        let ahead = DraftAhead()
        ahead.start(source: emulated, session: s, base: s.committed + [trace.entries[0].output[0]], k: 4)
        try await Task.sleep(for: .milliseconds(50))
        let began = ContinuousClock.now
        await ahead.drop(session: s)
        // Dropped after ~50 ms of an 800 ms draft: the device was given back, not held to the end.
        #expect(ContinuousClock.now - began < .milliseconds(500))
        #expect(s.stats.wastedDraftMs > 0 && s.stats.wastedDraftMs < 500)
        let next = ContinuousClock.now
        s.controller.beginRound(verifyTime: nil)
        _ = try await emulated.draft(s, k: 1)
        #expect(ContinuousClock.now - next < .milliseconds(450), "the next draft waited for the dropped one")
    }

    /// Through the whole serving path (gateway session manager, verifier core, drafter core): with drafting
    /// ahead on, every session's text is the target-only text, and drafts ahead are both confirmed and
    /// thrown away; with it off, none is made and the text is the same.
    @Test(arguments: [DrafterCore.DraftAheadMode.on, .off])
    func aSessionDraftingAheadServesExactlyTheTargetOnlyText(mode: DrafterCore.DraftAheadMode) async throws {
        var config = DrafterCore.Configuration()
        config.dynamic = false
        config.defaultK = Self.k
        config.draftAhead = mode
        let cluster = try await InProcessSpeculativeCluster(drafter: config)
        try await cluster.start()
        var drafts = 0, hits = 0
        for prompt in FleetReplayTests.prompts {
            let (text, summary) = try await cluster.generate(prompt: prompt, maxTokens: FleetReplayTests.maxTokens)
            let expected = try cluster.targetOnly(prompt: prompt, maxTokens: FleetReplayTests.maxTokens)
            #expect(text == cluster.tokenizer.decode(expected))
            let stats = try #require(summary?.stats)
            drafts += stats.aheadDrafts
            hits += stats.aheadHits
            #expect(stats.wastedDraftMs <= stats.draftMs)
        }
        if mode == .on {
            #expect(hits > 0 && hits < drafts, "\(hits) of \(drafts) drafts ahead confirmed")
        } else {
            #expect(drafts == 0)
        }
        await cluster.stop()
    }
}
