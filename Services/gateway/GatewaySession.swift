import Foundation
import TandemEngine
import TandemService
import TandemWire

/// What a client-facing request handler receives about its session.
enum SessionUpdate: Sendable {
    /// New text, already checked against stop strings (never contains one or anything after it).
    case text(String)
    case finished(SessionSummary)
    case failed(GatewayError)
}

/// The end of a session, for `usage` and Tandem's extension fields.
struct SessionSummary: Sendable {
    var finishReason: FinishReason
    var promptTokens: Int
    /// Generated tokens up to and including the one that ended the generation: with a stop string,
    /// the token that completed it (vLLM's count; tokens decoded after it are not billed).
    var completionTokens: Int
    var stats: RoundStats
    var verifier: ReplicaID
    var drafter: ReplicaID
    var mode: ServingMode
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
    var mode: ServingMode
    /// Fixed draft length (nil: drafter decides; 0: centralized, no drafting).
    var k: Int?
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
    /// Last sign of progress: placement or an accepted token report (what the inactivity timeout measures).
    var lastActivity: ContinuousClock.Instant = .now
    /// Whether a token report arrived since the session was last placed: until one does, its drafter is
    /// still prefilling the whole context, which takes time in proportion to it (``inactivityAllowance(_:)``).
    var reportedSincePlacement = false

    /// How long the session may go without a report: `timeout`, plus, before the first report of a
    /// placement, `SessionOpen.prefillAllowancePerToken` a context token for the drafter's prefill (what
    /// `SessionOpen.replyTimeout` allows the verifier's).
    func inactivityAllowance(_ timeout: Duration) -> Duration {
        reportedSincePlacement ? timeout
            : timeout + SessionOpen.prefillAllowancePerToken * (request.promptTokens.count + generated.count)
    }
    /// Being placed or re-placed: the replicas are not expected to report yet (placement has its own timeouts).
    var placing = true
    /// Placement epoch: incremented each time the session is (re)placed and carried by every session message,
    /// so replicas and this gateway refuse messages of an abandoned placement (docs/protocol.md).
    var epoch: UInt64 = 0
    var finished = false
    var decoder: StreamingDecoder
    /// Finds stop strings in the decoded text and holds back what may begin one.
    var stopMatcher: StopStringMatcher
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
        self.stopMatcher = StopStringMatcher(stops: request.stop)
        self.continuation = continuation
    }

    /// Feeds newly committed tokens, in order, through the detokenizer and the stop strings, and
    /// appends to ``generated`` those that count.
    ///
    /// Generation ends at the first token that is an end-of-generation token, completes a stop string,
    /// or reaches `max_tokens`; tokens after it in the same report are dropped, so ``generated``
    /// (and `usage.completion_tokens`) counts the tokens up to and including the one that ended it,
    /// as vLLM does. The end-of-generation token itself counts but has no text; a stop string and
    /// anything after it are never released.
    ///
    /// - Returns: the text that may be released now, and why generation ended (nil: it goes on).
    func absorb(_ tokens: [Int32], isEndOfGeneration: (Int32) -> Bool) -> (text: String, finish: FinishReason?) {
        var text = ""
        for token in tokens {
            guard generated.count < request.maxTokens else { return (text, .length) }
            generated.append(token)
            if isEndOfGeneration(token) { return (text, .stop) }
            let piece = stopMatcher.append(decoder.append(token))
            text += piece.text
            if piece.stopped { return (text, .stop) }
        }
        return (text, generated.count >= request.maxTokens ? .length : nil)
    }

    /// The generation ended: releases what the detokenizer and the stop-string matcher still hold.
    /// Bytes the decoder held back are released only when no stop string came before them; they can
    /// still complete one (then `stopped`, and the text ends before it).
    func releaseRemaining() -> (text: String, stopped: Bool) {
        guard !stopMatcher.stopped else {
            _ = decoder.finish()
            return ("", true)
        }
        let last = stopMatcher.append(decoder.finish())
        return (last.text + stopMatcher.finish(), last.stopped)
    }

    /// The `session_close` of the current placement.
    func closeMessage(_ reason: String) -> WireMessage {
        var close = SessionClose(session: id, reason: reason)
        close.epoch = epoch
        return .sessionClose(close)
    }

    var ttftMs: Double? { firstTokenAt.map { ($0 - arrived).milliseconds } }
    var tpotMs: Double? {
        guard let first = firstTokenAt, let last = lastTokenAt, generated.count > 1 else { return nil }
        return (last - first).milliseconds / Double(generated.count - 1)
    }
}
