import Foundation
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// Random and mutated frames (``FrameFuzzer``, seeded: a failure names its seed and frame number and
/// reproduces) into the wire decoder and, through a real ROUTER socket in this process, into the
/// verifier's message handling: nothing crashes, every undecodable frame is counted and answered with the
/// error its decode failure calls for, every decodable one gets an answer (an invalid one `invalid_argument`,
/// counted), and the verifier still serves target-only output afterwards. The gateway's control socket gets
/// the same treatment in `GatewayControlFuzzTests`.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct BusFuzzTests {
    static let seed: UInt64 = 0x7A4D_E3F0_0001

    @Test func theWireDecoderSurvivesFiftyThousandMutatedFrames() {
        var fuzzer = FrameFuzzer(seed: Self.seed, seeds: FuzzSeeds.all())
        var failures: [String: Int] = [:]
        var shapes: [FrameFuzzer.Shape: Int] = [:]
        var decoded = 0
        for i in 0..<50_000 {
            let (frame, shape) = fuzzer.next()
            shapes[shape, default: 0] += 1
            do throws(WireError) {
                let envelope = try WireCodec.decode(frame)
                decoded += 1
                // Whatever decodes re-encodes, and decodes again to the same message (NaN aside, which is
                // not equal to itself).
                let again = WireCodec.encode(envelope)
                do throws(WireError) {
                    let second = try WireCodec.decode(again)
                    let hasNaN = String(decoding: again, as: UTF8.self).contains("\"nan\"")
                    #expect(hasNaN || second == envelope, "seed \(Self.seed) frame \(i) (\(shape)): re-decoded differently")
                } catch {
                    Issue.record("seed \(Self.seed) frame \(i) (\(shape)): re-encoded frame does not decode: \(error)")
                }
            } catch {
                failures[error.label, default: 0] += 1
            }
        }
        // The fuzzer reaches every layer of the decoder: header, checksum, version, kind and schema.
        for label in ["truncated", "corrupted", "unsupported_version", "unknown_kind", "malformed"] {
            #expect((failures[label] ?? 0) > 0, "no frame failed as \(label): \(failures)")
        }
        #expect(decoded > 1_000, "well-formed and tolerable mutations decode: \(decoded)")
        #expect(Set(shapes.keys) == Set(FrameFuzzer.Shape.allCases))
    }

    /// The synthetic target's verifier behind a ROUTER on loopback, as `VerifierCommand` serves it, with
    /// a live session the fuzzed frames can name, and self-driven sessions' reports going nowhere.
    struct Harness {
        let core: VerifierCore
        let engine: ForwardEngine
        let endOfGeneration: Set<Int32>
        let context: BusContext
        let server: BusEndpoint
        let client: BusEndpoint

        static func start() async throws -> Harness {
            let pair = try await SyntheticPair.make()
            let model = try LanguageModel.load(path: pair.target, logger: Logger(label: "test"))
            let engine = ForwardEngine(model: model, threads: 1)
            var config = VerifierCore.Configuration()
            config.endOfGeneration = try Tokenizer(gguf: model.gguf).endOfGenerationIDs
            let core = VerifierCore(engine: engine, modelName: "syn", replicaID: "v-fuzz", configuration: config,
                                    events: nil, logger: Logger(label: "test"))
            core.selfDriven.attach { _ in }
            let context = try BusContext()
            let server = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            try server.serve(logger: Logger(label: "test.verifier")) { envelope, _ in await core.handle(envelope.message) }
            let client = try BusEndpoint.dealer(context: context, connect: server.boundEndpoint!)
            return Harness(core: core, engine: engine, endOfGeneration: config.endOfGeneration, context: context,
                           server: server, client: client)
        }

        func stop() async {
            await client.close()
            await server.close()
            await context.shutdown()
            core.shutdown()
        }
    }

    @Test func theVerifierAnswersOrCountsEveryFuzzedFrameAndKeepsServing() async throws {
        let harness = try await Harness.start()
        let core = harness.core
        let prompt: [Int32] = [72, 101, 108, 108, 111]
        for session in ["cmpl-fuzz", "cmpl-live"] {
            guard case .sessionOpened? = await core.handle(VerifierChunkedPrefillTests.openMessage(session, prompt)) else {
                await harness.stop()
                throw ReferenceError("open \(session) failed")
            }
        }
        let limits = WireLimits(vocabularySize: harness.engine.model.config.vocabularySize,
                                contextLength: harness.engine.model.config.contextLength)
        let handled: Set<MessageKind> = [.sessionOpen, .sessionClose, .verify, .health]
        var fuzzer = FrameFuzzer(seed: Self.seed + 1, seeds: FuzzSeeds.weighted(handled),
                                 strings: ["cmpl-fuzz", "cmpl-live"], tokens: (32..<127).map { Int32($0) })
        // Every single-field substitution of the messages the verifier handles, then random frames.
        var sweep: [[UInt8]] = []
        for seed in FuzzSeeds.all() where handled.contains(seed.kind) { sweep += fuzzer.sweep(seed) }
        let decodeErrorsBefore = WireErrorCounter.count
        var undecodable = 0, invalidVerifies = 0, replies = 0
        let total = sweep.count + 10_000, concurrency = 16
        var sent = 0
        while sent < total {
            // The sweep one frame at a time (a request of a session supersedes that session's queued one, so a
            // concurrent neighbour could answer a swept request before its value is used); the rest concurrently.
            let width = sent < sweep.count ? 1 : concurrency
            let batch = (0..<min(width, total - sent)).map { i -> (Int, [UInt8], String, Bool) in
                if sent + i < sweep.count { return (sent + i, sweep[sent + i], "sweep", false) }
                let (frame, shape) = fuzzer.next()
                return (sent + i, frame, shape.rawValue, fuzzer.chance(0.1))
            }
            sent += batch.count
            for (_, frame, _, _) in batch {
                do throws(WireError) {
                    let envelope = try WireCodec.decode(frame)
                    if case .verify(let request) = envelope.message, request.problem(limits) != nil { invalidVerifies += 1 }
                } catch {
                    undecodable += 1
                }
            }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, frame, shape, oneWay) in batch {
                    group.addTask {
                        let context = "seed \(Self.seed + 1) frame \(index) (\(shape))"
                        let local: Result<Envelope, WireError>
                        do throws(WireError) { local = .success(try WireCodec.decode(frame)) } catch { local = .failure(error) }
                        if oneWay {
                            try await harness.client.send(frame)
                            return 0
                        }
                        let replyBytes = try await harness.client.request(frame, timeout: .seconds(60))
                        guard let reply = try? WireCodec.decode(replyBytes) else {
                            Issue.record("\(context): the reply does not decode")
                            return 1
                        }
                        switch local {
                        case .failure(let error):
                            guard case .error(let e) = reply.message, e.code == FrameFuzzer.expectedCode(error) else {
                                Issue.record("\(context): undecodable (\(error)) but answered \(reply.message)")
                                return 1
                            }
                        case .success(let envelope):
                            let kind = envelope.message.kind
                            if !handled.contains(kind) {
                                guard case .error(let e) = reply.message, e.code == .unexpectedKind else {
                                    Issue.record("\(context): \(kind) is not the verifier's but answered \(reply.message)")
                                    return 1
                                }
                            } else if case .verify(let request) = envelope.message, let problem = request.problem(limits) {
                                guard case .error(let e) = reply.message, e.code == .invalidArgument else {
                                    Issue.record("\(context): invalid verify (\(problem)) answered \(reply.message)")
                                    return 1
                                }
                            }
                        }
                        return 1
                    }
                }
                for try await n in group { replies += n }
            }
        }
        print("verifier fuzz: \(total) frames (\(sweep.count) sweep), \(undecodable) undecodable, \(invalidVerifies) invalid verify requests, \(replies) replies, \(core.counters) ")
        #expect(replies > total / 2)
        #expect(WireErrorCounter.count - decodeErrorsBefore >= undecodable, "every undecodable frame is counted")
        #expect(undecodable > 300 && invalidVerifies > 10, "the fuzz reached both layers: \(undecodable), \(invalidVerifies)")
        #expect(core.counters.invalid >= invalidVerifies, "invalid verify requests are counted")

        // Still serving, correctly: a new session decodes the target's own greedy continuation.
        let after: [Int32] = [100, 101, 102, 32, 102]
        let opened = try WireCodec.decode(try await harness.client.request(
            WireCodec.encode(VerifierChunkedPrefillTests.openMessage("cmpl-after", after)), timeout: .seconds(30)))
        guard case .sessionOpened = opened.message else {
            Issue.record("open after the fuzz failed: \(opened.message)")
            await harness.stop()
            return
        }
        let decoded = await VerifierChunkedPrefillTests.decode(core, "cmpl-after", after: after, steps: 8)
        let expected = try TargetOnlyTokens.generate(harness.engine, prompt: after, params: .greedy, maxTokens: 8,
                                                     isEndOfGeneration: { harness.endOfGeneration.contains($0) })
        guard case .verified(let result)? = decoded else {
            Issue.record("decode after the fuzz failed: \(String(describing: decoded))")
            await harness.stop()
            return
        }
        #expect(result.tokens == expected)
        await harness.stop()
    }
}
