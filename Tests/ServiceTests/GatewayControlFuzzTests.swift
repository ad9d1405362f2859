import Foundation
@testable import Gateway
import HummingbirdTesting
import Logging
import TandemBus
import TandemService
import TandemWire
import Testing

/// Random and mutated frames (``FrameFuzzer``, seeded) into the gateway's control socket, in this process,
/// while a session waits for token reports, so fuzzed reports reach the session manager's history: every
/// frame sent as a request is answered (undecodable ones with the error their decode failure calls for,
/// foreign kinds with `unexpected_kind`, reports with their acknowledgement), undecodable ones are counted,
/// nothing crashes, and afterwards the gateway still places and completes requests.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct GatewayControlFuzzTests {
    static let seed: UInt64 = 0x7A4D_E3F0_0100

    @Test func theControlSocketAnswersOrCountsEveryFuzzedFrameAndKeepsServing() async throws {
        let g = try InProcessGateway(contextLength: 512, maxSessions: 8)
        try await g.addVerifier("v1")
        // Takes sessions and never reports: the fuzzed reports are the only ones its session gets.
        try await g.addReplica("d-silent", role: .drafter) { _, message in
            guard case .sessionStart(let start) = message else { return nil }
            g.sent.starts.withLock { $0.append(start) }
            return .ack(Ack())
        }
        try await g.test { client in
            // Sessions waiting for reports; a new one is started whenever the fuzz has ended the last.
            var live: [(start: SessionStart, response: Task<TestResponse, any Error>)] = []
            func startLive() async throws -> SessionStart {
                let before = g.sent.starts.withLock { $0.count }
                let response = Task { try await client.post("/v1/completions", ["prompt": "hi", "max_tokens": 400]) }
                for _ in 0..<500 {
                    if let start = g.sent.starts.withLock({ $0.count > before ? $0.last : nil }) {
                        live.append((start, response))
                        return start
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                throw BusError.invalidEndpoint("a live session was never placed")
            }
            var placed = try await startLive()

            guard let control = g.gateway.control.endpoint.boundEndpoint else { throw BusError.invalidEndpoint("control") }
            let fuzzClient = try BusEndpoint.dealer(context: g.context, connect: control, identity: PeerID("fuzz-client"))
            let tokens = (97..<123).map { g.vocabulary.id([UInt8($0)]) }
            let handled: Set<MessageKind> = [.register, .heartbeat, .status, .health, .tokens]
            var fuzzer = FrameFuzzer(seed: Self.seed, seeds: FuzzSeeds.weighted(session: placed.session, handled),
                                     strings: [placed.session], tokens: tokens)
            let decodeErrorsBefore = WireErrorCounter.count
            var undecodable = 0, answered = 0, refusedReports = 0
            // Every single-field substitution of the messages the control socket handles, then random frames.
            var sweep: [(WireMessage, Int)] = []
            for seed in FuzzSeeds.all() where handled.contains(seed.kind) {
                sweep += fuzzer.sweep(seed).indices.map { (seed, $0) }
            }
            var sweepFrames: [[UInt8]] = []
            var sweepSession = ""
            let total = sweep.count + 10_000
            for index in 0..<total {
                if index % 50 == 0, await g.gateway.sessions.activeCount == 0 {
                    placed = try await startLive()
                    fuzzer.seeds = FuzzSeeds.weighted(session: placed.session, handled)
                    fuzzer.strings = [placed.session]
                }
                let frame: [UInt8], shape: String
                if index < sweep.count {
                    // Swept against the current live session (re-made when the fuzz has ended it).
                    if sweepSession != placed.session || sweepFrames.isEmpty {
                        sweepSession = placed.session
                        sweepFrames = []
                        for seed in FuzzSeeds.all(session: placed.session) where handled.contains(seed.kind) {
                            sweepFrames += fuzzer.sweep(seed)
                        }
                    }
                    (frame, shape) = (sweepFrames[index], "sweep")
                } else {
                    let next = fuzzer.next()
                    (frame, shape) = (next.frame, next.shape.rawValue)
                }
                let what = "seed \(Self.seed) frame \(index) (\(shape))"
                let local: Result<Envelope, WireError>
                do throws(WireError) { local = .success(try WireCodec.decode(frame)) } catch {
                    local = .failure(error)
                    undecodable += 1
                }
                if index >= sweep.count, fuzzer.chance(0.1) {
                    try await fuzzClient.send(frame)
                    continue
                }
                let reply = try WireCodec.decode(try await fuzzClient.request(frame, timeout: .seconds(30)))
                answered += 1
                switch local {
                case .failure(let error):
                    guard case .error(let e) = reply.message, e.code == FrameFuzzer.expectedCode(error) else {
                        Issue.record("\(what): undecodable (\(error)) but answered \(reply.message)")
                        continue
                    }
                case .success(let envelope):
                    let kind = envelope.message.kind
                    if !handled.contains(kind) {
                        guard case .error(let e) = reply.message, e.code == .unexpectedKind else {
                            Issue.record("\(what): \(kind) is not the control socket's but answered \(reply.message)")
                            continue
                        }
                    } else if case .tokens(let report) = envelope.message {
                        // Acknowledged, or refused as invalid when a field is out of range.
                        switch reply.message {
                        case .ack: break
                        case .error(let e) where e.code == .invalidArgument:
                            refusedReports += 1
                            #expect(report.problem(vocabularySize: nil) != nil,
                                    "\(what): a valid report refused: \(e.message)")
                        default: Issue.record("\(what): a token report answered \(reply.message)")
                        }
                    }
                }
            }
            // Frames sent without waiting for an answer may still be in the gateway's socket: give it time to
            // count them before comparing.
            let settle = ContinuousClock.now + .seconds(10)
            while WireErrorCounter.count - decodeErrorsBefore < undecodable, ContinuousClock.now < settle {
                try await Task.sleep(for: .milliseconds(20))
            }
            await fuzzClient.close()
            print("gateway control fuzz: \(total) frames (\(sweep.count) sweep), \(undecodable) undecodable, "
                  + "\(refusedReports) invalid token reports refused, \(answered) answered, \(live.count) live sessions")
            #expect(refusedReports > 0, "invalid token reports are refused")
            #expect(live.count > 1, "the fuzz reached live sessions and ended some: \(live.count)")
            #expect(answered > total / 2)
            #expect(WireErrorCounter.count - decodeErrorsBefore >= undecodable, "every undecodable frame is counted")
            #expect(undecodable > 500, "the fuzz reached the decoder's every layer: \(undecodable)")

            // The live sessions end (a final report completes each, unless a fuzzed one already did) with an answer.
            for (start, response) in live {
                var last = TokenReport(session: start.session, offset: 0, tokens: Array(repeating: tokens[0], count: 400),
                                       finish: .length)
                last.epoch = start.epoch
                try? await g.control(post: .tokens(last))
                let r = try await response.value
                #expect([200, 500, 504].contains(r.status.code), "the live session ended: \(r.status)")
            }

            // Still serving: without the replicas the fuzz registered, a request is placed and completes.
            for replica in await g.gateway.registry.status().replicas
            where !["v1", "d-silent"].contains(replica.registration.replicaID) {
                await g.gateway.registry.remove(replica.registration.replicaID)
            }
            await g.gateway.registry.remove("d-silent")
            try await g.addDrafter("d-ok")
            let r = try await client.post("/v1/completions", ["prompt": "hi", "max_tokens": 5])
            #expect(r.status == .ok, "\(r.text.prefix(300))")
            #expect((r.json?["choices"] as? [[String: Any]])?.first?["text"] as? String == "Hello")
            let health = try await client.get("/health")
            #expect(health.status == .ok)
        }
    }
}

extension InProcessGateway {
    /// Posts `message` to the gateway's control socket from a replica-less DEALER (as a replica would).
    func control(post message: WireMessage) async throws {
        guard let control = gateway.control.endpoint.boundEndpoint else { throw BusError.invalidEndpoint("control") }
        let dealer = try BusEndpoint.dealer(context: context, connect: control)
        _ = try await dealer.call(message, timeout: .seconds(10))
        await dealer.close()
    }
}
