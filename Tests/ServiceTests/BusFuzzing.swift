import Foundation
import TandemTestSupport
import TandemWire

/// Makes bad bus frames from good ones, reproducibly (a seeded ``TestRNG``): random bytes, truncated and
/// bit-flipped frames, and frames whose header and checksum are right but whose JSON is wrong in the ways a
/// confused or hostile peer would send it: fields of the wrong type, huge and non-finite numbers (as
/// numbers and as the strings the codec reads as non-finite floats), missing and unknown fields, huge
/// arrays, deep nesting, unknown message kinds and schema versions, truncated JSON text.
///
/// `seeds` are well-formed messages to mutate; `strings` are values worth substituting for strings (live
/// session ids, so mutated messages reach a service's session state rather than stopping at "unknown
/// session"); `tokens` are token ids inside the receiver's vocabulary, for the same reason.
struct FrameFuzzer {
    /// What one generated frame is, for reporting a failure.
    enum Shape: String, CaseIterable {
        case randomBytes, randomBehindHeader, truncated, bitFlip, jsonMutation, textMutation, envelopeMutation, valid
    }

    var rng: TestRNG
    var seeds: [WireMessage]
    var strings: [String]
    let tokens: [Int32]

    init(seed: UInt64, seeds: [WireMessage], strings: [String] = [], tokens: [Int32] = []) {
        rng = TestRNG(seed: seed)
        self.seeds = seeds
        self.strings = strings
        self.tokens = tokens
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    /// The next frame and what kind of mutation made it.
    mutating func next() -> (frame: [UInt8], shape: Shape) {
        let shape = Shape.allCases[int(0...(Shape.allCases.count - 1))]
        return (frame(shape), shape)
    }

    mutating func frame(_ shape: Shape) -> [UInt8] {
        let seed = seeds[int(0...(seeds.count - 1))]
        switch shape {
        case .randomBytes:
            return (0..<int(0...300)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case .randomBehindHeader:
            return Self.frame(body: (0..<int(0...300)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        case .truncated:
            let valid = WireCodec.encode(seed)
            return Array(valid.prefix(int(0...(valid.count - 1))))
        case .bitFlip:
            var valid = WireCodec.encode(seed)
            for _ in 0...int(0...3) {
                let at = int(0...(valid.count - 1))
                valid[at] ^= UInt8(1) << UInt8(int(0...7))
            }
            return valid
        case .jsonMutation:
            var tree = Self.json(seed)
            for _ in 0...int(0...2) { tree = mutate(tree, depth: 0) }
            return Self.frame(body: Self.serialize(tree))
        case .textMutation:
            return Self.frame(body: mutateText(Array(Self.serialize(Self.json(seed)))))
        case .envelopeMutation:
            var envelope = Self.json(seed) as? [String: Any] ?? [:]
            switch int(0...5) {
            case 0: envelope["v"] = [0, 2, -1, 99, Int.max, "1", 1.5, NSNull()][int(0...7)]
            case 1: envelope["kind"] = ["teleport", "", "VERIFY", "verify ", "session_open\u{0}", String(repeating: "k", count: 5000)][int(0...5)]
            case 2: envelope["kind"] = MessageKind.allCases[int(0...(MessageKind.allCases.count - 1))].rawValue
            case 3: envelope["id"] = [-1, 1.5, "7", NSNull(), 1e300][int(0...4)]
            case 4: envelope["sentAt"] = ["nan", "inf", "-inf", 1e308, -1e308, "x", NSNull()][int(0...6)]
            default: envelope.removeValue(forKey: ["v", "kind", "id", "sentAt", "body"][int(0...4)])
            }
            return Self.frame(body: Self.serialize(envelope))
        case .valid:
            var tree = Self.json(seed)
            // Well-formed, but with live session ids and in-vocabulary tokens where the seed has others.
            if !strings.isEmpty || !tokens.isEmpty { tree = personalize(tree) }
            return Self.frame(body: Self.serialize(tree))
        }
    }

    // MARK: Sweeps

    /// Every single-field substitution of `message` (made well-formed for the receiver first, as in
    /// ``Shape/valid``): each number by each of ``hostileNumbers``, and every field by a value of each other
    /// JSON type. Systematic where ``next()`` is random, so a bad value in one field never depends on luck.
    mutating func sweep(_ message: WireMessage) -> [[UInt8]] {
        let tree = personalize(Self.json(message))
        var frames: [[UInt8]] = []
        for path in Self.leafPaths(tree) {
            let leaf = Self.value(tree, at: path)
            var replacements: [Any] = ["x", NSNull(), [Any](), [String: Any](), true]
            if leaf is NSNumber { replacements += Self.hostileNumbers }
            for replacement in replacements {
                frames.append(Self.frame(body: Self.serialize(Self.setting(tree, at: path, to: replacement))))
            }
        }
        return frames
    }

    nonisolated(unsafe) static let hostileNumbers: [Any] = [0, -1, Int64.min, Int64.max, Int32.min, Int32.max, Int(Int32.max) + 1, 1.5,
                                        -0.0, 1e308, -1e308, Double.leastNonzeroMagnitude, 1 << 40, -(1 << 40), "nan", "inf", "-inf"]

    enum PathStep { case key(String), index(Int) }

    static func leafPaths(_ tree: Any, prefix: [PathStep] = []) -> [[PathStep]] {
        if let object = tree as? [String: Any] {
            return object.keys.sorted().flatMap { leafPaths(object[$0]!, prefix: prefix + [.key($0)]) }
        }
        if let array = tree as? [Any], !array.isEmpty {
            return array.indices.flatMap { leafPaths(array[$0], prefix: prefix + [.index($0)]) }
        }
        return prefix.isEmpty ? [] : [prefix]
    }

    static func value(_ tree: Any, at path: [PathStep]) -> Any? {
        guard let step = path.first else { return tree }
        switch step {
        case .key(let k): return (tree as? [String: Any])?[k].flatMap { value($0, at: Array(path.dropFirst())) }
        case .index(let i): return (tree as? [Any]).flatMap { i < $0.count ? value($0[i], at: Array(path.dropFirst())) : nil }
        }
    }

    static func setting(_ tree: Any, at path: [PathStep], to replacement: Any) -> Any {
        guard let step = path.first else { return replacement }
        let rest = Array(path.dropFirst())
        switch step {
        case .key(let k):
            guard var object = tree as? [String: Any], let child = object[k] else { return tree }
            object[k] = setting(child, at: rest, to: replacement)
            return object
        case .index(let i):
            guard var array = tree as? [Any], i < array.count else { return tree }
            array[i] = setting(array[i], at: rest, to: replacement)
            return array
        }
    }

    // MARK: JSON trees

    static func json(_ message: WireMessage) -> Any {
        let frame = WireCodec.encode(Envelope(message))
        return (try? JSONSerialization.jsonObject(with: Data(frame[WireCodec.headerSize...]), options: [.fragmentsAllowed])) ?? [:]
    }

    static func serialize(_ tree: Any) -> [UInt8] {
        guard JSONSerialization.isValidJSONObject(tree) || tree is String || tree is NSNumber || tree is NSNull,
              let data = try? JSONSerialization.data(withJSONObject: tree, options: [.fragmentsAllowed]) else {
            return Array("{}".utf8)
        }
        return Array(data)
    }

    /// Values of every JSON type that schema fields must reject or survive.
    mutating func hostileValue() -> Any {
        let values: [Any] = [
            "", "x", "nan", "inf", "-inf", "NaN", "Infinity", "1e999", String(repeating: "é", count: 2000),
            0, -1, 1, Int64.min, Int64.max, Int32.max, Int(Int32.max) + 1, Int(UInt32.max) + 1, 1.5, -0.0, 1e308,
            -1e308, Double.leastNonzeroMagnitude, true, false, NSNull(), [Any](), [String: Any](), [1, 2, 3], ["a": 1],
            Array(repeating: 7, count: 5000), Array(repeating: -1, count: 300),
        ]
        if !strings.isEmpty && chance(0.2) { return strings[int(0...(strings.count - 1))] }
        return values[int(0...(values.count - 1))]
    }

    /// Numbers no field should take at face value (out of range, negative, fractional, extreme).
    mutating func hostileNumber() -> Any {
        Self.hostileNumbers[int(0...(Self.hostileNumbers.count - 1))]
    }

    /// One mutation somewhere in `tree`.
    mutating func mutate(_ tree: Any, depth: Int) -> Any {
        if var object = tree as? [String: Any], !object.isEmpty {
            let keys = object.keys.sorted()
            let key = keys[int(0...(keys.count - 1))]
            switch int(0...9) {
            case 0: object.removeValue(forKey: key)
            case 1: object["unexpected_\(int(0...99))"] = hostileValue()
            case 2, 3: object[key] = hostileValue()
            default: object[key] = mutate(object[key]!, depth: depth + 1)
            }
            return object
        }
        if var array = tree as? [Any] {
            if array.isEmpty || chance(0.2) {
                switch int(0...2) {
                case 0: return array + Array(repeating: array.first ?? hostileValue(), count: int(1...2000))
                case 1: return [hostileValue()] + array
                default: return Array(array.dropLast())
                }
            }
            let i = int(0...(array.count - 1))
            array[i] = chance(0.5) ? hostileValue() : mutate(array[i], depth: depth + 1)
            return array
        }
        if tree is NSNumber, !(tree is Bool), chance(0.5) { return hostileNumber() }
        return hostileValue()
    }

    /// Replaces strings by the given ones and token-like integers by in-vocabulary tokens, at random.
    mutating func personalize(_ tree: Any) -> Any {
        if let object = tree as? [String: Any] {
            var out: [String: Any] = [:]
            for key in object.keys.sorted() {
                let value = object[key]!
                if key == "session", !strings.isEmpty, value is String {
                    out[key] = strings[int(0...(strings.count - 1))]
                } else if ["tokens", "promptTokens", "generated"].contains(key), let list = value as? [Any],
                          !tokens.isEmpty {
                    out[key] = list.map { _ in Int(tokens[int(0...(tokens.count - 1))]) }
                } else if key == "deadline" || key == "arrivedAt" {
                    out[key] = Date().timeIntervalSince1970 * 1000 + 5_000
                } else {
                    out[key] = personalize(value)
                }
            }
            return out
        }
        if let array = tree as? [Any] { return array.map { personalize($0) } }
        return tree
    }

    /// Cuts, splices or corrupts serialized JSON text (what a tree cannot express: numbers out of every
    /// range, deep nesting, invalid UTF-8, text that ends mid-token).
    mutating func mutateText(_ text: [UInt8]) -> [UInt8] {
        var text = text
        switch int(0...6) {
        case 0:
            return Array(text.prefix(int(0...max(0, text.count - 1))))
        case 1:
            let at = int(0...text.count)
            let insert = [",", "}", "]", "\"", ":", "null", "\u{0}", "\\u0000", "\\ud800"][int(0...8)]
            text.insert(contentsOf: Array(insert.utf8), at: at)
            return text
        case 2:
            // Every number becomes one no field can hold.
            let huge = ["1e400", "-1e400", "123456789012345678901234567890", "-0", "1E+9999", "0.0000000000000000000000000001"][int(0...5)]
            var out: [UInt8] = []
            var i = 0
            while i < text.count {
                let c = text[i]
                if (c >= 0x30 && c <= 0x39) || c == 0x2D, i > 0, [0x3A, 0x2C, 0x5B].contains(text[i - 1]) {
                    while i < text.count, (text[i] >= 0x30 && text[i] <= 0x39) || [0x2D, 0x2E, 0x65, 0x45, 0x2B].contains(text[i]) { i += 1 }
                    out += Array(huge.utf8)
                    continue
                }
                out.append(c)
                i += 1
            }
            return out
        case 3:
            let depth = int(1...20_000)
            return Array(String(repeating: "[", count: depth).utf8) + Array(String(repeating: "]", count: depth).utf8)
        case 4:
            let depth = int(1...5_000)
            return Array((#"{"v":1,"kind":"verify","id":1,"sentAt":0,"body":"# + String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth + 1)).utf8)
        case 5:
            text[int(0...(text.count - 1))] = [0xFF, 0xC0, 0x80, 0xED][int(0...3)]
            return text
        default:
            // Duplicate keys: the last one wins, or the decoder refuses; never a crash.
            if let brace = text.firstIndex(of: 0x7B) {
                text.insert(contentsOf: Array(#""v":"dup","#.utf8), at: brace + 1)
            }
            return text
        }
    }

    /// A frame with a correct header and checksum around any body.
    static func frame(body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x54, 0x57, 1]
        let crc = crc32(body)
        for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: UInt32(body.count) >> UInt32(s))) }
        for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: crc >> UInt32(s))) }
        return out + body
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (0xEDB8_8320 ^ (c >> 1)) : (c >> 1) }
        }
        return c ^ 0xFFFF_FFFF
    }

    /// The reply code a service sends for a frame that fails to decode with `error` (`WireRPC.serve`).
    static func expectedCode(_ error: WireError) -> ErrorCode {
        switch error {
        case .unsupportedVersion: .unsupportedVersion
        case .unknownKind: .unknownKind
        default: .badMessage
        }
    }
}

/// One well-formed message of every kind, with values a service on the synthetic model accepts (tokens
/// below 256), for the fuzzers to mutate.
enum FuzzSeeds {
    /// Every kind once, and the kinds in `weighted` `times` more often (the ones the socket under test
    /// handles, so most mutations reach its handler rather than stopping at "unexpected kind").
    static func weighted(session: SessionID = "cmpl-fuzz", _ weighted: Set<MessageKind>, times: Int = 6) -> [WireMessage] {
        let all = all(session: session)
        return all + (0..<times).flatMap { _ in all.filter { weighted.contains($0.kind) } }
    }

    static func all(session: SessionID = "cmpl-fuzz") -> [WireMessage] {
        let device = DeviceProfile(name: "rpi5", powerWatts: 6.5, computeThrottle: 0.5, threads: 2)
        let registration = Registration(role: .drafter, replicaID: "fuzz-drafter", endpoint: "tcp://127.0.0.1:1",
                                        model: "m", device: device, pid: 42, version: "0", attributes: ["k": "4"],
                                        devices: ["dev-1"])
        let sampling = WireSampling(temperature: 0.7, topK: 20, topP: 0.9, seed: 1234)
        let now = Date().timeIntervalSince1970 * 1000
        var open = SessionOpen(session: session, tokens: [72, 101, 108, 108, 111], promptLength: 4, sampling: sampling,
                               mode: .coupled, capacity: 64)
        open.epoch = 1
        var selfDriven = open
        selfDriven.selfDrive = SelfDrive(maxTokens: 8)
        var verify = VerifyRequest(session: session, position: 5, tokens: [32, 119],
                                   distributions: [WireDistribution(tokens: [32, 9], probs: [0.75, 0.25]),
                                                   WireDistribution(tokens: [119], probs: [1])],
                                   lastToken: 111, deadline: now + 5_000, draftMs: 3.25, k: 2, drafterID: "d1",
                                   draftModel: "a", device: "rpi5", requestID: 9)
        // No epoch (unfenced, as from an older drafter): a fuzzed open that records a huge epoch for the
        // session must not turn every later verify into a `stale_epoch` refusal that never reaches the queue.
        verify.epoch = nil
        let decode = VerifyRequest(session: session, position: 5, tokens: [], lastToken: 111, deadline: now + 5_000,
                                   draftMs: 0, k: 0, decodeSteps: 4)
        var report = TokenReport(session: session, offset: 0, tokens: [104, 105], finish: nil,
                                 stats: RoundStats(drafted: 2, accepted: 1, rounds: 1))
        report.epoch = 1
        var finishing = report
        finishing.tokens = Array(repeating: 104, count: 40)
        finishing.finish = .stop
        var failing = report
        failing.finish = .error
        failing.error = "drafting failed"
        return [
            .register(registration),
            .registered(RegistrationAck(heartbeatIntervalMs: 500, missedHeartbeatsAllowed: 3)),
            .heartbeat(Heartbeat(replicaID: "fuzz-drafter", role: .drafter,
                                 load: ReplicaLoad(activeSessions: 3, queuedRequests: 1, kvBytes: 1 << 20))),
            .heartbeatAck(HeartbeatAck(known: false)),
            .health(HealthQuery()),
            .healthReply(HealthReply(role: .estimator, replicaID: "e1", uptimeSeconds: 12.5, details: ["a": "1"])),
            .status(StatusQuery()),
            .clusterStatus(ClusterStatus(replicas: [ReplicaInfo(registration: registration, registeredAt: 1,
                                                                lastHeartbeat: 2, alive: true, load: ReplicaLoad())])),
            .error(ErrorReply(code: .resourceExhausted, message: "full", retryAfterMs: 500)),
            .ack(Ack()),
            .sessionStart(SessionStart(session: session, promptTokens: [72, 101, 108], generated: [108], sampling: sampling,
                                       maxTokens: 16, stop: ["\n\n"], slo: SLO(ttftMs: 1000, tpotMs: 100), mode: .exact,
                                       verifierID: "v1", verifierEndpoint: "tcp://127.0.0.1:1", k: 4, arrivedAt: now)),
            .sessionOpen(open),
            .sessionOpen(selfDriven),
            .sessionOpened(SessionOpened(session: session, cachedTokens: 4, prefillMs: 12.25)),
            .sessionClose(SessionClose(session: session, reason: "finished")),
            .verify(verify),
            .verify(decode),
            .verified(VerifyResult(session: session, position: 5, accepted: 1, tokens: [32, 119],
                                   timings: VerifyTimings(queueMs: 1, batchMs: 30, batchSequences: 3, batchTokens: 12))),
            .tokens(report),
            .tokens(finishing),
            .tokens(failing),
            .batch(BatchEvent(verifierID: "v1", model: "m", sequences: 2, tokensPerSequence: [5, 3],
                              contextLengths: [100, 20], wallMs: 55.5, predictedMs: 50, at: 10)),
            .round(RoundEvent(session: session, drafterID: "d1", verifierID: "v1", draftModel: "a", targetModel: "b",
                              device: "rpi5", k: 4, drafted: 4, accepted: 2, acceptedPerPosition: [true, true, false, false],
                              draftMs: 20, verifyMs: 40, at: 11)),
            .session(SessionEvent(session: session, phase: .finished, model: "b", promptTokens: 3, outputTokens: 10,
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
    }
}
