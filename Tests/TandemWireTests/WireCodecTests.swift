import Foundation
import PropertyBased
import Testing
@testable import TandemWire

/// One sample message of every kind, so a new kind without a sample fails `everyKindHasASample`.
let samples: [WireMessage] = {
    let device = DeviceProfile(name: "rpi5", powerWatts: 6.5, computeThrottle: 0.5, threads: 2)
    let reg = Registration(role: .drafter, replicaID: "drafter-1", endpoint: "tcp://127.0.0.1:6000",
                           model: "qwen2.5-coder-0.5b-instruct", device: device, pid: 42, version: "0.1.0",
                           attributes: ["k": "4"])
    let sampling = WireSampling(temperature: 0.7, topK: 20, topP: 0.9, seed: 1234)
    return [
        .register(reg),
        .registered(RegistrationAck(heartbeatIntervalMs: 500, missedHeartbeatsAllowed: 3)),
        .heartbeat(Heartbeat(replicaID: "v1", role: .verifier, load: ReplicaLoad(activeSessions: 3, queuedRequests: 1, kvBytes: 1 << 20))),
        .heartbeatAck(HeartbeatAck(known: false)),
        .health(HealthQuery()),
        .healthReply(HealthReply(role: .estimator, replicaID: "e1", uptimeSeconds: 12.5, details: ["samples": "10"])),
        .status(StatusQuery()),
        .clusterStatus(ClusterStatus(replicas: [ReplicaInfo(registration: reg, registeredAt: 1, lastHeartbeat: 2, alive: true, load: ReplicaLoad())])),
        .error(ErrorReply(code: .contextMismatch, message: "cache has 10 tokens, request says 12")),
        .ack(Ack()),
        .sessionStart(SessionStart(session: "cmpl-1", promptTokens: [1, 2, 3], generated: [4], sampling: sampling,
                                   maxTokens: 64, stop: ["\n\n"], slo: SLO(ttftMs: 1000, tpotMs: 100), mode: .exact,
                                   verifierID: "v1", verifierEndpoint: "tcp://127.0.0.1:5560", k: 4, arrivedAt: 1.5)),
        .sessionOpen(SessionOpen(session: "cmpl-1", tokens: [1, 2, 3, 4], promptLength: 3, sampling: sampling, mode: .coupled, capacity: 512)),
        .sessionOpened(SessionOpened(session: "cmpl-1", cachedTokens: 4, prefillMs: 12.25)),
        .sessionClose(SessionClose(session: "cmpl-1", reason: "finished")),
        .verify(VerifyRequest(session: "cmpl-1", position: 4, tokens: [5, 6],
                              distributions: [WireDistribution(tokens: [5, 9], probs: [0.75, 0.25]),
                                              WireDistribution(tokens: [6], probs: [1])],
                              lastToken: 4, deadline: 99.5, draftMs: 3.25, k: 4, drafterID: "d1",
                              draftModel: "a", device: "rpi5")),
        .verified(VerifyResult(session: "cmpl-1", position: 4, accepted: 1, tokens: [5, 7],
                               timings: VerifyTimings(queueMs: 1, batchMs: 30, batchSequences: 3, batchTokens: 12))),
        .tokens(TokenReport(session: "cmpl-1", offset: 1, tokens: [5, 7], finish: .length,
                            stats: RoundStats(drafted: 2, accepted: 1, rounds: 1))),
        .batch(BatchEvent(verifierID: "v1", model: "qwen", sequences: 2, tokensPerSequence: [5, 3],
                          contextLengths: [100, 20], wallMs: 55.5, predictedMs: 50, at: 10)),
        .round(RoundEvent(session: "cmpl-1", drafterID: "d1", verifierID: "v1", draftModel: "a", targetModel: "b",
                          device: "rpi5", k: 4, drafted: 4, accepted: 2, acceptedPerPosition: [true, true, false, false],
                          draftMs: 20, verifyMs: 40, at: 11)),
        .session(SessionEvent(session: "cmpl-1", phase: .finished, model: "b", promptTokens: 3, outputTokens: 10,
                              ttftMs: 120, tpotMs: 40, metSLO: true, finishReason: .stop, at: 12)),
        .profile(ProfileEvent(device: "rpi5", draftModel: "a", quantization: "Q4_K", draftTokensPerSecond: 30,
                              powerWatts: 6, at: 13)),
        .estimate(EstimateQuery(model: "b", batches: [BatchFeatures(sequences: 2, newTokens: 10, contextTokens: 300)])),
        .estimateReply(EstimateReply(predictedMs: [42], samples: 100, rmseMs: 2.5, meanRelativeError: 0.05)),
        .advise(AdvisorQuery(device: device, objective: .energy, targetModel: "b", candidates: ["a"])),
        .advice(AdvisorRecommendation(draftModel: "a", quantization: "Q4_K", k: 2, expectedTokensPerRound: 2.4,
                                      objectiveValue: 10, basis: "measured")),
        .metricsQuery(MetricsQuery(kind: .acceptance, since: 0, limit: 10)),
        .metricsResult(MetricsResult(kind: .batchLatency,
                                     latency: [LatencyRow(key: "b", count: 3, meanMs: 10, p50Ms: 9, p90Ms: 12, p99Ms: 13)],
                                     eventCounts: ["batch": 3])),
    ]
}()

@Suite struct WireCodecTests {
    @Test func everyKindHasASample() {
        #expect(Set(samples.map(\.kind)) == Set(MessageKind.allCases))
    }

    @Test(arguments: samples)
    func roundTrip(_ message: WireMessage) throws {
        let envelope = Envelope(message, id: 77, sentAt: 1_700_000_000_000.5)
        let decoded = try WireCodec.decode(WireCodec.encode(envelope))
        #expect(decoded == envelope)
        #expect(decoded.kind == message.kind)
    }

    @Test func envelopeJSONCarriesTheDocumentedFields() throws {
        let frame = WireCodec.encode(Envelope(.ack(Ack()), id: 5, sentAt: 1))
        let json = try JSONSerialization.jsonObject(with: Data(frame[WireCodec.headerSize...])) as? [String: Any]
        #expect(json?["v"] as? Int == Envelope.currentVersion)
        #expect(json?["kind"] as? String == "ack")
        #expect(json?["id"] as? Int == 5)
        #expect(json?["body"] != nil)
    }

    @Test func truncatedFrameIsRejected() {
        let frame = WireCodec.encode(samples[10])
        for cut in [0, 5, WireCodec.headerSize, frame.count - 1] {
            #expect(throws: WireError.self) { try WireCodec.decode(frame.prefix(cut)) }
            do {
                _ = try WireCodec.decode(frame.prefix(cut))
            } catch {
                if case .truncated = error {} else { Issue.record("expected truncated, got \(error)") }
            }
        }
    }

    @Test func corruptedFrameIsRejected() {
        var frame = WireCodec.encode(samples[14])
        frame[WireCodec.headerSize + 20] ^= 0x40
        do {
            _ = try WireCodec.decode(frame)
            Issue.record("corrupted frame decoded")
        } catch {
            #expect(error == .corrupted("checksum mismatch"))
        }
        var badMagic = WireCodec.encode(samples[0])
        badMagic[0] = 0
        #expect(throws: WireError.corrupted("bad magic bytes")) { try WireCodec.decode(badMagic) }
    }

    @Test func unknownKindIsRejected() {
        let frame = rawFrame(#"{"v":1,"kind":"teleport","id":1,"sentAt":0,"body":{}}"#)
        #expect(throws: WireError.unknownKind("teleport")) { try WireCodec.decode(frame) }
    }

    @Test func wrongVersionIsRejected() {
        let frame = rawFrame(#"{"v":2,"kind":"ack","id":1,"sentAt":0,"body":{}}"#)
        #expect(throws: WireError.unsupportedVersion(2)) { try WireCodec.decode(frame) }
        let v = WireCodec.encode(Envelope(.ack(Ack()), v: 99))
        #expect(throws: WireError.unsupportedVersion(99)) { try WireCodec.decode(v) }
    }

    @Test func schemaViolationIsMalformed() {
        let frame = rawFrame(#"{"v":1,"kind":"verify","id":1,"sentAt":0,"body":{"session":"s"}}"#)
        do {
            _ = try WireCodec.decode(frame)
            Issue.record("decoded a verify request without its fields")
        } catch {
            guard case .malformed(let why) = error else { Issue.record("got \(error)"); return }
            #expect(why.contains("missing field"))
        }
    }

    @Test func randomBytesNeverCrashTheDecoder() async {
        await propertyCheck(count: 2000, input: Gen<UInt8>.uint8().array(of: 0...300)) { bytes in
            #expect(throws: WireError.self) { try WireCodec.decode(bytes) }
        }
    }

    @Test func randomBodiesBehindAValidHeaderNeverCrash() async {
        await propertyCheck(count: 2000, input: Gen<UInt8>.uint8().array(of: 0...300)) { body in
            let frame = rawFrame(bytes: body)
            do {
                _ = try WireCodec.decode(frame)
            } catch {
                // Any typed error is fine; a crash is not.
                #expect(error is WireError)
            }
        }
    }

    @Test func mutatedValidFramesNeverCrash() async {
        let frames = samples.map { WireCodec.encode($0) }
        await propertyCheck(count: 2000, input: Gen.int(in: 0...(frames.count - 1)), Gen.int(in: 0...10_000),
                            Gen<UInt8>.uint8()) { which, at, value in
            var frame = frames[which]
            frame[at % frame.count] = value
            _ = try? WireCodec.decode(frame)
        }
    }
}

/// A frame with a correct header around an arbitrary body, to reach the JSON layer.
func rawFrame(_ json: String) -> [UInt8] { rawFrame(bytes: Array(json.utf8)) }

func rawFrame(bytes body: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x54, 0x57, 1]
    let n = UInt32(body.count)
    let crc = CRC32.checksum(body)
    for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: n >> UInt32(s))) }
    for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: crc >> UInt32(s))) }
    return out + body
}
