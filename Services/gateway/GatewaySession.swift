import Foundation
import TandemEngine
import TandemService
import TandemWire

/// What a client-facing request handler receives about its session.
enum SessionUpdate: Sendable {
    /// New text (already checked against stop strings) and how many tokens it covers.
    case text(String)
    case finished(SessionSummary)
    case failed(GatewayError)
}

/// The end of a session, for `usage` and Tandem's extension fields.
struct SessionSummary: Sendable {
    var finishReason: FinishReason
    var promptTokens: Int
    var completionTokens: Int
    var stats: RoundStats
    var verifier: ReplicaID
    var drafter: ReplicaID
    var mode: String
    var ttftMs: Double?
    var tpotMs: Double?
    var device: String?
}

/// Parameters of one generation, as validated from an HTTP request.
struct GenerationRequest: Sendable {
    var promptTokens: [Int32]
    var sampling: WireSampling
    var maxTokens: Int
    var stop: [String]
    var slo: SLO
    var mode: VerificationMode
    /// Fixed draft length (nil: drafter decides; 0: centralized, no drafting).
    var k: Int?
    var modeName: String
    /// The device whose drafter must draft this request (SLED: the device that asks drafts); nil: any drafter.
    var device: String? = nil
}

/// A session as the gateway keeps it: placement, the authoritative token history, and the
/// streaming state (incremental detokenization with stop-string hold-back).
final class GatewaySession: @unchecked Sendable {
    let id: SessionID
    let request: GenerationRequest
    let arrived: ContinuousClock.Instant
    let arrivedMillis: Double
    var drafter: ReplicaID
    var verifier: ReplicaID
    var verifierEndpoint: String
    /// The hosted device of `drafter` that drafts this session (nil: the drafter's own).
    var device: String?
    /// Generated tokens, in order (authoritative history for failover).
    var generated: [Int32] = []
    var stats = RoundStats()
    var firstTokenAt: ContinuousClock.Instant?
    var lastTokenAt: ContinuousClock.Instant?
    var finished = false
    var decoder: StreamingDecoder
    /// Decoded text not yet released (it may be the start of a stop string).
    var heldBack = ""
    let continuation: AsyncStream<SessionUpdate>.Continuation

    init(id: SessionID, request: GenerationRequest, drafter: ReplicaID, verifier: ReplicaID, verifierEndpoint: String,
         decoder: StreamingDecoder, continuation: AsyncStream<SessionUpdate>.Continuation) {
        self.id = id
        self.request = request
        self.arrived = .now
        self.arrivedMillis = Date().timeIntervalSince1970 * 1000
        self.drafter = drafter
        self.verifier = verifier
        self.verifierEndpoint = verifierEndpoint
        self.device = request.device
        self.decoder = decoder
        self.continuation = continuation
    }

    /// Feeds newly committed tokens through the detokenizer and the stop strings.
    /// Returns the text that may be released now, and whether a stop string ended the session.
    func absorb(_ tokens: [Int32]) -> (text: String, stopped: Bool) {
        var fresh = ""
        for token in tokens { fresh += decoder.append(token) }
        heldBack += fresh
        return release(final: false)
    }

    /// Releases held-back text: everything up to a stop string (then stopped), or everything but
    /// a suffix that could still begin a stop string (all of it when `final`).
    func release(final: Bool) -> (text: String, stopped: Bool) {
        if final { heldBack += decoder.finish() }
        var earliest: Range<String.Index>?
        for stop in request.stop where !stop.isEmpty {
            if let r = heldBack.range(of: stop), earliest == nil || r.lowerBound < earliest!.lowerBound { earliest = r }
        }
        if let earliest {
            let text = String(heldBack[..<earliest.lowerBound])
            heldBack = ""
            return (text, true)
        }
        if final {
            defer { heldBack = "" }
            return (heldBack, false)
        }
        var keep = 0
        for stop in request.stop where !stop.isEmpty {
            for length in stride(from: min(stop.count - 1, heldBack.count), to: 0, by: -1)
            where heldBack.hasSuffix(stop.prefix(length)) {
                keep = max(keep, length)
                break
            }
        }
        let cut = heldBack.index(heldBack.endIndex, offsetBy: -keep)
        let text = String(heldBack[..<cut])
        heldBack = String(heldBack[cut...])
        return (text, false)
    }

    var ttftMs: Double? { firstTokenAt.map { ($0 - arrived).milliseconds } }
    var tpotMs: Double? {
        guard let first = firstTokenAt, let last = lastTokenAt, generated.count > 1 else { return nil }
        return (last - first).milliseconds / Double(generated.count - 1)
    }
}
