import Foundation
import Logging
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import DrafterAgent
@testable import Verifier

/// Every wire field is validated before use: a bad verify request, session open or session start gets a
/// per-request `invalid_argument` reply and is counted; nothing reaches a precondition, and the other
/// requests of the same batch are served. In-process, on the synthetic models.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct WireValidationTests {
    static let prompt: [Int32] = [72, 101, 108, 108, 111]
    static let limits = WireLimits(vocabularySize: 100, contextLength: 64, maxDraftTokens: 8, maxDecodeSteps: 16)

    static func verify(tokens: [Int32] = [1, 2], distributions: [WireDistribution] = [], position: Int = 5,
                       k: Int = 2, decodeSteps: Int? = nil, deadline: EpochMillis = 1e12, draftMs: Double = 1,
                       lastToken: Int32 = 11) -> VerifyRequest {
        VerifyRequest(session: "s", position: position, tokens: tokens, distributions: distributions, lastToken: lastToken,
                      deadline: deadline, draftMs: draftMs, k: k, decodeSteps: decodeSteps)
    }

    // MARK: Field checks

    @Test func aValidRequestPasses() {
        let d = [WireDistribution(tokens: [1, 3], probs: [0.75, 0.25]), WireDistribution(tokens: [2], probs: [1])]
        #expect(Self.verify(distributions: d).problem(Self.limits) == nil)
        #expect(Self.verify(tokens: [], k: 0, decodeSteps: 4).problem(Self.limits) == nil)
    }

    @Test(arguments: [
        ("negative position", WireValidationTests.verify(position: -3)),
        ("zero position", WireValidationTests.verify(position: 0)),
        ("position past the context", WireValidationTests.verify(position: 1 << 40)),
        ("too many draft tokens", WireValidationTests.verify(tokens: Array(repeating: 1, count: 9), k: 9)),
        ("draft token outside the vocabulary", WireValidationTests.verify(tokens: [1, 100])),
        ("negative draft token", WireValidationTests.verify(tokens: [-1])),
        ("last token outside the vocabulary", WireValidationTests.verify(lastToken: 1 << 20)),
        ("negative k", WireValidationTests.verify(k: -1)),
        ("absurd k", WireValidationTests.verify(k: 1 << 30)),
        ("zero decode steps", WireValidationTests.verify(tokens: [], k: 0, decodeSteps: 0)),
        ("too many decode steps", WireValidationTests.verify(tokens: [], k: 0, decodeSteps: 17)),
        ("NaN deadline", WireValidationTests.verify(deadline: .nan)),
        // Found by BusFuzzTests: finite, but expiring it turned the wait into an Int that overflowed.
        ("deadline of -1e308", WireValidationTests.verify(deadline: -1e308)),
        ("deadline of 1e308", WireValidationTests.verify(deadline: 1e308)),
        ("negative draft time", WireValidationTests.verify(draftMs: -1)),
        ("infinite draft time", WireValidationTests.verify(draftMs: .infinity)),
        ("fewer distributions than tokens", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1], probs: [1])])),
        ("mismatched distribution lengths", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1, 2], probs: [1]),
                                                                   WireDistribution(tokens: [2], probs: [1])])),
        ("NaN probability", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1], probs: [.nan]),
                                                   WireDistribution(tokens: [2], probs: [1])])),
        ("negative probability", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1, 3], probs: [1.5, -0.5]),
                                                        WireDistribution(tokens: [2], probs: [1])])),
        ("probabilities not summing to 1", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1, 3], probs: [0.2, 0.2]),
                                                                  WireDistribution(tokens: [2], probs: [1])])),
        ("duplicate support token", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1, 1], probs: [0.5, 0.5]),
                                                           WireDistribution(tokens: [2], probs: [1])])),
        ("support token outside the vocabulary", WireValidationTests.verify(distributions: [WireDistribution(tokens: [1, 500], probs: [0.5, 0.5]),
                                                                        WireDistribution(tokens: [2], probs: [1])])),
        ("empty distribution", WireValidationTests.verify(distributions: [WireDistribution(tokens: [], probs: []),
                                                      WireDistribution(tokens: [2], probs: [1])])),
        ("draft token outside its distribution", WireValidationTests.verify(distributions: [WireDistribution(tokens: [3], probs: [1]),
                                                                        WireDistribution(tokens: [2], probs: [1])])),
    ])
    func anInvalidVerifyRequestIsRefused(_ why: String, _ request: VerifyRequest) {
        #expect(request.problem(Self.limits) != nil, "accepted: \(why)")
    }

    @Test func invalidSessionOpensAndStartsAreRefused() {
        let sampling = WireSampling()
        func open(_ tokens: [Int32] = [1, 2, 3], promptLength: Int = 2, sampling: WireSampling = sampling,
                  slo: SLO = SLO(), capacity: Int = 32) -> SessionOpen {
            SessionOpen(session: "s", tokens: tokens, promptLength: promptLength, sampling: sampling, mode: .coupled,
                        slo: slo, capacity: capacity)
        }
        #expect(open().problem(Self.limits) == nil)
        #expect(open([]).problem(Self.limits) != nil)
        #expect(open([1, 200]).problem(Self.limits) != nil)
        #expect(open(Array(repeating: 1, count: 65)).problem(Self.limits) != nil)
        #expect(open(promptLength: -1).problem(Self.limits) != nil)
        #expect(open(promptLength: 4).problem(Self.limits) != nil)
        #expect(open(capacity: -5).problem(Self.limits) != nil)
        #expect(open(sampling: WireSampling(temperature: .nan)).problem(Self.limits) != nil)
        #expect(open(sampling: WireSampling(temperature: -1)).problem(Self.limits) != nil)
        #expect(open(sampling: WireSampling(topK: -2)).problem(Self.limits) != nil)
        #expect(open(sampling: WireSampling(topP: 0)).problem(Self.limits) != nil)
        #expect(open(sampling: WireSampling(minP: 2)).problem(Self.limits) != nil)
        #expect(open(sampling: WireSampling(repetitionPenalty: 0)).problem(Self.limits) != nil)
        #expect(open(slo: SLO(ttftMs: .infinity, tpotMs: 100)).problem(Self.limits) != nil)
        #expect(open(slo: SLO(ttftMs: 100, tpotMs: -1)).problem(Self.limits) != nil)

        func start(_ prompt: [Int32] = [1, 2], generated: [Int32] = [], maxTokens: Int = 8, k: Int? = nil,
                   endpoint: String = "tcp://127.0.0.1:1") -> SessionStart {
            SessionStart(session: "s", promptTokens: prompt, generated: generated, sampling: sampling, maxTokens: maxTokens,
                         verifierID: "v", verifierEndpoint: endpoint, k: k, arrivedAt: 0)
        }
        #expect(start().problem(Self.limits) == nil)
        #expect(start([]).problem(Self.limits) != nil)
        #expect(start([1, -2]).problem(Self.limits) != nil)
        #expect(start(generated: [1000]).problem(Self.limits) != nil)
        #expect(start(maxTokens: 0).problem(Self.limits) != nil)
        #expect(start(maxTokens: -4).problem(Self.limits) != nil)
        #expect(start(k: -1).problem(Self.limits) != nil)
        #expect(start(k: 1 << 20).problem(Self.limits) != nil)
        #expect(start(endpoint: "").problem(Self.limits) != nil)
        var far = start()
        far.arrivedAt = -1e308
        #expect(far.problem(Self.limits) != nil)
        var selfDriven = open()
        selfDriven.selfDrive = SelfDrive(maxTokens: 0)
        #expect(selfDriven.problem(Self.limits) != nil)
    }

    /// Token reports are checked before they reach a session's history (`ControlServer`): an offset of
    /// Int.min overflowed the gateway's `history - offset`, and negative counts trapped in its metrics counters.
    @Test func anInvalidTokenReportIsRefused() {
        func report(offset: Int = 0, tokens: [Int32] = [1, 2], stats: RoundStats = RoundStats(drafted: 2, accepted: 1, rounds: 1))
            -> TokenReport {
            TokenReport(session: "s", offset: offset, tokens: tokens, stats: stats)
        }
        #expect(report().problem(vocabularySize: 100) == nil)
        #expect(report(tokens: [1, 500]).problem(vocabularySize: nil) == nil, "ids are not checked without a vocabulary")
        #expect(report(offset: Int.min).problem(vocabularySize: nil) != nil)
        #expect(report(offset: -1).problem(vocabularySize: nil) != nil)
        #expect(report(offset: Int.max).problem(vocabularySize: nil) != nil)
        #expect(report(tokens: [1, 500]).problem(vocabularySize: 100) != nil)
        #expect(report(stats: RoundStats(drafted: -1)).problem(vocabularySize: nil) != nil)
        #expect(report(stats: RoundStats(rounds: Int.min)).problem(vocabularySize: nil) != nil)
        #expect(report(stats: RoundStats(draftMs: .nan)).problem(vocabularySize: nil) != nil)
        #expect(report(stats: RoundStats(wastedDraftMs: -1)).problem(vocabularySize: nil) != nil)
    }

    @Test func aVerifyResultThatDoesNotAnswerTheRequestIsRefused() {
        let timings = VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: 1, batchTokens: 1)
        func result(session: String = "s", position: Int = 5, accepted: Int = 1, tokens: [Int32] = [4, 5]) -> VerifyResult {
            VerifyResult(session: session, position: position, accepted: accepted, tokens: tokens, timings: timings)
        }
        func problem(_ r: VerifyResult) -> String? {
            r.problem(session: "s", position: 5, drafted: 2, maxTokens: 10, vocabularySize: 100)
        }
        #expect(problem(result()) == nil)
        var withCurve = result()
        withCurve.timings.costCurve = VerifierCostCurve(positions: [1, 2, 4], ms: [40, 41, 44], contextMsPerToken: 0.001,
                                                        samples: 3)
        #expect(problem(withCurve) == nil)
        #expect(problem(result(session: "t")) != nil)
        #expect(problem(result(position: 6)) != nil)
        #expect(problem(result(accepted: 3, tokens: [1, 2, 3, 4])) != nil)
        #expect(problem(result(accepted: -1)) != nil)
        #expect(problem(result(accepted: 2, tokens: [1, 2])) != nil)
        #expect(problem(result(tokens: [])) != nil)
        #expect(problem(result(tokens: [1, 100])) != nil)
        #expect(problem(result(accepted: 0, tokens: Array(repeating: 1, count: 11))) != nil)
        for bad in [VerifyTimings(queueMs: -1e308, batchMs: 0, batchSequences: 1, batchTokens: 1),
                    VerifyTimings(queueMs: 0, batchMs: .nan, batchSequences: 1, batchTokens: 1),
                    VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: -1, batchTokens: 1),
                    // A cost curve the drafter could not read: unmatched, not increasing, not finite.
                    VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: 1, batchTokens: 1,
                                  costCurve: VerifierCostCurve(positions: [1, 2], ms: [40], contextMsPerToken: 0, samples: 1)),
                    VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: 1, batchTokens: 1,
                                  costCurve: VerifierCostCurve(positions: [2, 2], ms: [40, 41], contextMsPerToken: 0, samples: 1)),
                    VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: 1, batchTokens: 1,
                                  costCurve: VerifierCostCurve(positions: [0, 2], ms: [40, 41], contextMsPerToken: 0, samples: 1)),
                    VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: 1, batchTokens: 1,
                                  costCurve: VerifierCostCurve(positions: [1, 2], ms: [40, .infinity], contextMsPerToken: 0, samples: 1)),
                    VerifyTimings(queueMs: 0, batchMs: 0, batchSequences: 1, batchTokens: 1,
                                  costCurve: VerifierCostCurve(positions: [1], ms: [40], contextMsPerToken: -1, samples: 1))] {
            var r = result()
            r.timings = bad
            #expect(problem(r) != nil, "timings \(bad)")
        }
    }

    // MARK: In the services

    @Test func theVerifierAnswersBadRequestsPerRequestAndCountsThem() async throws {
        let pair = try await SyntheticPair.make()
        let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
        let core = VerifierCore(engine: ForwardEngine(model: model, threads: 1), modelName: "syn", replicaID: "v-test",
                                configuration: VerifierCore.Configuration(), events: nil, logger: Logger(label: "test"))
        defer { core.shutdown() }
        let badOpen = SessionOpen(session: "bad", tokens: Self.prompt, promptLength: 9,
                                  sampling: WireSampling(temperature: .nan), mode: .coupled, capacity: 64)
        guard case .error(let openError)? = await core.handle(.sessionOpen(badOpen)) else {
            Issue.record("an invalid session_open was accepted")
            return
        }
        #expect(openError.code == .invalidArgument)
        for name in ["good", "bad"] {
            let open = SessionOpen(session: name, tokens: Self.prompt, promptLength: Self.prompt.count,
                                   sampling: WireSampling(temperature: 0.8, seed: 3), mode: .exact, capacity: 64)
            guard case .sessionOpened? = await core.handle(.sessionOpen(open)) else {
                Issue.record("open \(name) failed")
                return
            }
        }
        func send(_ session: String, _ draft: [Int32], _ distributions: [WireDistribution]) async -> WireMessage? {
            await core.handle(.verify(VerifyRequest(
                session: session, position: Self.prompt.count, tokens: draft, distributions: distributions,
                lastToken: Self.prompt.last!, deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: draft.count)))
        }
        let good = [WireDistribution(tokens: [1, 2], probs: [0.5, 0.5]), WireDistribution(tokens: [2], probs: [1])]
        let malformed: [[WireDistribution]] = [
            [WireDistribution(tokens: [1, 2, 3], probs: [0.5, 0.5]), WireDistribution(tokens: [2], probs: [1])],
            [WireDistribution(tokens: [1], probs: [.nan]), WireDistribution(tokens: [2], probs: [1])],
            [WireDistribution(tokens: [1, 2], probs: [2, -1]), WireDistribution(tokens: [2], probs: [1])],
        ]
        for distributions in malformed {
            // The bad request and a good one arrive within one batch window.
            async let goodReply = send("good", [1, 2], good)
            async let badReply = send("bad", [1, 2], distributions)
            let (g, b) = await (goodReply, badReply)
            guard case .error(let error)? = b else {
                Issue.record("accepted \(distributions): \(String(describing: b))")
                continue
            }
            #expect(error.code == .invalidArgument)
            guard case .verified? = g else {
                Issue.record("the good request failed with the bad one: \(String(describing: g))")
                continue
            }
        }
        #expect(core.counters.invalid == 1 + malformed.count)
        guard case .healthReply(let health)? = await core.handle(.health(HealthQuery())) else {
            Issue.record("no health reply")
            return
        }
        #expect(health.details["invalid_requests"] == "\(1 + malformed.count)")
    }

    @Test func theDrafterRefusesAnInvalidSessionStartAndCountsIt() async throws {
        let context = try BusContext()
        let (core, model) = try await SyntheticPair.drafterCore(context: context)
        let vocabulary = Int32(model.config.vocabularySize)
        let starts = [
            SessionStart(session: "a", promptTokens: [1, vocabulary], sampling: WireSampling(), maxTokens: 4,
                         verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0),
            SessionStart(session: "b", promptTokens: [1, 2], sampling: WireSampling(topP: .nan), maxTokens: 4,
                         verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", arrivedAt: 0),
            SessionStart(session: "c", promptTokens: [1, 2], sampling: WireSampling(), maxTokens: 4,
                         verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1", k: -3, arrivedAt: 0),
        ]
        for start in starts {
            guard case .error(let error)? = await core.handle(.sessionStart(start)) else {
                Issue.record("accepted an invalid session_start \(start.session)")
                continue
            }
            #expect(error.code == .invalidArgument)
        }
        #expect(core.invalidMessageCount == starts.count)
        #expect(core.load.activeSessions == 0)
        await core.shutdown()
        await context.shutdown()
    }
}
