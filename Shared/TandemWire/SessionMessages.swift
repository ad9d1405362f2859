// Session start/open/close, verification and token reports: the request path of docs/design.md §3-§4.

/// Gateway → drafter: begin (or resume, after failover) drafting for a session.
public struct SessionStart: Codable, Sendable, Hashable {
    public var session: SessionID
    public var promptTokens: [Int32]
    /// Tokens already generated (non-empty when resuming a session elsewhere after a fault).
    public var generated: [Int32]
    public var sampling: WireSampling
    public var maxTokens: Int
    /// Stop strings (the drafter detokenizes to find them).
    public var stop: [String]
    public var slo: SLO
    public var mode: VerificationMode
    public var verifierID: ReplicaID
    public var verifierEndpoint: String
    /// Fixed draft length for this session; nil lets the drafter's controller decide.
    public var k: Int?
    /// When the request arrived at the gateway (TTFT is measured from here).
    public var arrivedAt: EpochMillis
    /// The hosted device that drafts this session (see ``Registration/devices``); nil: the drafter's own.
    public var device: String?
    /// The gateway's placement epoch of the session (docs/protocol.md, "Placement epochs"): a replica refuses
    /// a message older than the newest it has seen for the session. nil (older peers): unfenced.
    public var epoch: UInt64? = nil
    /// The model of the verifier the session is placed on, so a drafter asks the config-advisor about the
    /// target it actually drafts for (docs/design.md §10). nil (older gateways): the drafter keeps its advice.
    public var targetModel: String? = nil

    public init(session: SessionID, promptTokens: [Int32], generated: [Int32] = [], sampling: WireSampling,
                maxTokens: Int, stop: [String] = [], slo: SLO = SLO(), mode: VerificationMode = .coupled,
                verifierID: ReplicaID, verifierEndpoint: String, k: Int? = nil, arrivedAt: EpochMillis,
                device: String? = nil) {
        self.session = session
        self.promptTokens = promptTokens
        self.generated = generated
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.stop = stop
        self.slo = slo
        self.mode = mode
        self.verifierID = verifierID
        self.verifierEndpoint = verifierEndpoint
        self.k = k
        self.arrivedAt = arrivedAt
        self.device = device
    }
}

/// Gateway (or drafter, when its verifier lost the session) → verifier: prefill a session's context.
public struct SessionOpen: Codable, Sendable, Hashable {
    public var session: SessionID
    /// Full committed context: prompt followed by tokens generated so far.
    public var tokens: [Int32]
    public var promptLength: Int
    public var sampling: WireSampling
    public var mode: VerificationMode
    public var slo: SLO
    /// Most tokens the session can reach (prompt + max new tokens + draft slack): sizes its KV cache.
    public var capacity: Int
    /// The gateway's placement epoch of the session (docs/protocol.md, "Placement epochs"): a replica refuses
    /// a message older than the newest it has seen for the session. nil (older peers): unfenced.
    public var epoch: UInt64? = nil
    /// Set when no drafter serves the session: the verifier generates it alone and reports its tokens to
    /// the gateway itself (docs/design.md, "Serving without a drafter"). nil: a drafter drives it.
    public var selfDrive: SelfDrive?
    /// With a drafter driving the session: after the prefill, decode this many tokens here and return them in
    /// ``SessionOpened/tokens`` (docs/design.md §3), so the first token does not wait for the drafter's own
    /// prefill of the prompt and its first round. nil or 0: none (the drafter makes every token).
    public var firstTokens: Int? = nil

    public init(session: SessionID, tokens: [Int32], promptLength: Int, sampling: WireSampling,
                mode: VerificationMode, slo: SLO = SLO(), capacity: Int, selfDrive: SelfDrive? = nil) {
        self.session = session
        self.tokens = tokens
        self.promptLength = promptLength
        self.sampling = sampling
        self.mode = mode
        self.slo = slo
        self.capacity = capacity
        self.selfDrive = selfDrive
    }
}

/// What a verifier needs to drive a session without a drafter (``SessionOpen/selfDrive``): where the
/// generation ends. End-of-generation tokens are the verifier's own; stop strings stay with the gateway,
/// which closes the session when one appears.
public struct SelfDrive: Codable, Sendable, Hashable {
    /// Most tokens to generate in all (counting those already in ``SessionOpen/tokens`` after the prompt).
    public var maxTokens: Int
    public init(maxTokens: Int) {
        self.maxTokens = maxTokens
    }
}

public struct SessionOpened: Codable, Sendable, Hashable {
    public var session: SessionID
    public var cachedTokens: Int
    public var prefillMs: Double
    /// The tokens ``SessionOpen/firstTokens`` asked for, generated after the committed ones (fewer when the
    /// generation ended; nil when none were asked for or the decode failed: the drafter then makes them).
    public var tokens: [Int32]? = nil
    public init(session: SessionID, cachedTokens: Int, prefillMs: Double, tokens: [Int32]? = nil) {
        self.session = session
        self.cachedTokens = cachedTokens
        self.prefillMs = prefillMs
        self.tokens = tokens
    }
}

/// Gateway → drafter and verifier: the session is over (finished, cancelled, or moved elsewhere).
public struct SessionClose: Codable, Sendable, Hashable {
    public var session: SessionID
    public var reason: String
    /// The gateway's placement epoch of the session (docs/protocol.md, "Placement epochs"): a replica refuses
    /// a message older than the newest it has seen for the session. nil (older peers): unfenced.
    public var epoch: UInt64? = nil
    public init(session: SessionID, reason: String) {
        self.session = session
        self.reason = reason
    }
}

/// Drafter → verifier: check these draft tokens.
public struct VerifyRequest: Codable, Sendable, Hashable {
    public var session: SessionID
    /// Number of committed context tokens (prompt + generated) the draft continues from.
    /// The verifier answers ``ErrorCode/contextMismatch`` when its cache disagrees.
    public var position: Int
    public var tokens: [Int32]
    /// One per draft token in `exact` mode; empty in `coupled` mode and greedy (only ids travel).
    public var distributions: [WireDistribution]
    /// The last committed token (not yet in the verifier's cache); the verifier feeds it first.
    public var lastToken: Int32
    /// Absolute deadline for the answer (from the session's TPOT SLO).
    public var deadline: EpochMillis
    /// Device time spent drafting these tokens.
    public var draftMs: Double
    /// Draft length the drafter's controller allowed this round (it may have stopped earlier).
    public var k: Int
    /// Who drafted, for the verifier's `round` events.
    public var drafterID: ReplicaID
    public var draftModel: String
    public var device: String
    /// With no draft tokens: decode up to this many tokens on the verifier before answering (each step
    /// joins whichever batch runs next, like centralized serving), stopping early at an end-of-generation
    /// token. Lets a drafter that chose K = 0 pay one network round trip per several tokens. nil = 1.
    public var decodeSteps: Int?
    /// The drafter's id for this round, unique within the session. A retry of the round (after a timeout)
    /// carries the same id, and the verifier answers it with the first request's answer instead of
    /// verifying twice (docs/protocol.md, "Request ids"). nil (older drafters): no de-duplication.
    public var requestID: UInt64?
    /// The gateway's placement epoch of the session (docs/protocol.md, "Placement epochs"): a replica refuses
    /// a message older than the newest it has seen for the session. nil (older peers): unfenced.
    public var epoch: UInt64? = nil

    public init(session: SessionID, position: Int, tokens: [Int32], distributions: [WireDistribution] = [],
                lastToken: Int32, deadline: EpochMillis, draftMs: Double, k: Int, drafterID: ReplicaID = "",
                draftModel: String = "", device: String = "", decodeSteps: Int? = nil, requestID: UInt64? = nil) {
        self.session = session
        self.position = position
        self.tokens = tokens
        self.distributions = distributions
        self.lastToken = lastToken
        self.deadline = deadline
        self.draftMs = draftMs
        self.k = k
        self.drafterID = drafterID
        self.draftModel = draftModel
        self.device = device
        self.decodeSteps = decodeSteps
        self.requestID = requestID
    }
}

public struct VerifyTimings: Codable, Sendable, Hashable {
    public var queueMs: Double
    public var batchMs: Double
    public var batchSequences: Int
    public var batchTokens: Int
    /// Context tokens already cached, summed over the batch's sequences (attention cost); nil from older verifiers.
    public var batchContextTokens: Int?
    /// Prompt tokens prefilled in the same batch (chunked prefill; counted in `batchTokens`, their time in
    /// `batchMs`); nil when none.
    public var prefillTokens: Int?
    /// The verifier's measured batch-time curve, so the drafter prices one more position where the batch
    /// really is (docs/design.md §7); nil from older verifiers.
    public var costCurve: VerifierCostCurve?
    public init(queueMs: Double, batchMs: Double, batchSequences: Int, batchTokens: Int, batchContextTokens: Int? = nil,
                prefillTokens: Int? = nil, costCurve: VerifierCostCurve? = nil) {
        self.queueMs = queueMs
        self.batchMs = batchMs
        self.batchSequences = batchSequences
        self.batchTokens = batchTokens
        self.batchContextTokens = batchContextTokens
        self.prefillTokens = prefillTokens
        self.costCurve = costCurve
    }
}

/// A verifier's batch time as it measured it: one forward of `positions[i]` verified positions (logits on
/// every one) at no cached context takes `ms[i]`, linear in between and past the last point along the last
/// slope; each cached context token adds `contextMsPerToken`. Fitted from the verifier's own batches and a
/// calibration at start.
public struct VerifierCostCurve: Codable, Sendable, Hashable {
    public var positions: [Int]
    public var ms: [Double]
    public var contextMsPerToken: Double
    /// Batches (and calibration forwards) behind the fit.
    public var samples: Int
    public init(positions: [Int], ms: [Double], contextMsPerToken: Double, samples: Int) {
        self.positions = positions
        self.ms = ms
        self.contextMsPerToken = contextMsPerToken
        self.samples = samples
    }

    /// Most points a curve may carry.
    public static let maxPoints = 64

    /// Points increasing and matched, times finite and non-negative.
    public var problem: String? {
        guard !positions.isEmpty, positions.count == ms.count, positions.count <= Self.maxPoints else {
            return "cost curve: 1...\(Self.maxPoints) points with one time each"
        }
        guard positions[0] >= 1, zip(positions, positions.dropFirst()).allSatisfy({ $0 < $1 }),
              positions.last! <= 1 << 20 else {
            return "cost curve: positions must increase from 1"
        }
        guard ms.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1e7 }), contextMsPerToken.isFinite,
              contextMsPerToken >= 0, contextMsPerToken <= 1e3, samples >= 0 else {
            return "cost curve: times must be finite and >= 0"
        }
        return nil
    }
}

/// Verifier → drafter: how many draft tokens were accepted, and the tokens to append.
public struct VerifyResult: Codable, Sendable, Hashable {
    public var session: SessionID
    public var position: Int
    public var accepted: Int
    /// The accepted draft tokens followed by one correction or bonus token.
    public var tokens: [Int32]
    public var timings: VerifyTimings
    /// Tokens the verifier proposed itself by prompt lookup in a K = 0 round (not counted in `accepted`,
    /// which is about the drafter's tokens), and how many of them it accepted; nil when none.
    public var lookupProposed: Int?
    public var lookupAccepted: Int?
    public init(session: SessionID, position: Int, accepted: Int, tokens: [Int32], timings: VerifyTimings,
                lookupProposed: Int? = nil, lookupAccepted: Int? = nil) {
        self.session = session
        self.position = position
        self.accepted = accepted
        self.tokens = tokens
        self.timings = timings
        self.lookupProposed = lookupProposed
        self.lookupAccepted = lookupAccepted
    }
}

/// Running speculative counters of a session.
public struct RoundStats: Codable, Sendable, Hashable {
    public var drafted: Int
    public var accepted: Int
    public var rounds: Int
    /// Device time spent drafting, ms.
    public var draftMs: Double
    /// Device time spent drafting tokens the verifier rejected, ms (WISP's wasted drafting time).
    public var wastedDraftMs: Double
    /// Rounds with no draft (the verifier decoded one token: load-aware K = 0, or centralized serving).
    public var plainRounds: Int
    /// Tokens the verifier proposed by prompt lookup (n-gram) in this session's K = 0 rounds, and accepted.
    public var lookupProposed: Int
    public var lookupAccepted: Int
    /// Rounds whose next draft the device drafted ahead while this one was verified, and those whose answer
    /// confirmed it (the next round's draft was ready when the answer came; docs/design.md §7.4).
    public var aheadDrafts: Int
    public var aheadHits: Int
    public init(drafted: Int = 0, accepted: Int = 0, rounds: Int = 0, draftMs: Double = 0, wastedDraftMs: Double = 0,
                plainRounds: Int = 0, lookupProposed: Int = 0, lookupAccepted: Int = 0, aheadDrafts: Int = 0,
                aheadHits: Int = 0) {
        self.drafted = drafted
        self.accepted = accepted
        self.rounds = rounds
        self.draftMs = draftMs
        self.wastedDraftMs = wastedDraftMs
        self.plainRounds = plainRounds
        self.lookupProposed = lookupProposed
        self.lookupAccepted = lookupAccepted
        self.aheadDrafts = aheadDrafts
        self.aheadHits = aheadHits
    }

    enum CodingKeys: String, CodingKey {
        case drafted, accepted, rounds, draftMs, wastedDraftMs, plainRounds, lookupProposed, lookupAccepted
        case aheadDrafts, aheadHits
    }

    /// Fields added in later versions default to 0 when an older peer leaves them out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        drafted = try c.decode(Int.self, forKey: .drafted)
        accepted = try c.decode(Int.self, forKey: .accepted)
        rounds = try c.decode(Int.self, forKey: .rounds)
        draftMs = try c.decodeIfPresent(Double.self, forKey: .draftMs) ?? 0
        wastedDraftMs = try c.decodeIfPresent(Double.self, forKey: .wastedDraftMs) ?? 0
        plainRounds = try c.decodeIfPresent(Int.self, forKey: .plainRounds) ?? 0
        lookupProposed = try c.decodeIfPresent(Int.self, forKey: .lookupProposed) ?? 0
        lookupAccepted = try c.decodeIfPresent(Int.self, forKey: .lookupAccepted) ?? 0
        aheadDrafts = try c.decodeIfPresent(Int.self, forKey: .aheadDrafts) ?? 0
        aheadHits = try c.decodeIfPresent(Int.self, forKey: .aheadHits) ?? 0
    }
}

/// Drafter → gateway: new committed tokens of a session (the gateway streams them and keeps history).
public struct TokenReport: Codable, Sendable, Hashable {
    public var session: SessionID
    /// Index in the generated sequence of the first token in `tokens` (lets the gateway drop duplicates).
    public var offset: Int
    public var tokens: [Int32]
    public var finish: FinishReason?
    /// Human-readable reason when `finish == .error`.
    public var error: String?
    public var stats: RoundStats
    /// The gateway's placement epoch of the session (docs/protocol.md, "Placement epochs"): a replica refuses
    /// a message older than the newest it has seen for the session. nil (older peers): unfenced.
    public var epoch: UInt64? = nil
    public init(session: SessionID, offset: Int, tokens: [Int32], finish: FinishReason? = nil, error: String? = nil,
                stats: RoundStats = RoundStats()) {
        self.session = session
        self.offset = offset
        self.tokens = tokens
        self.finish = finish
        self.error = error
        self.stats = stats
    }
}

extension SessionOpen {
    /// How long the opener waits for `sessionOpened`. The verifier answers once the prompt is prefilled
    /// (in chunks, between other sessions' rounds), so the wait grows with the prompt: 120 s plus
    /// ``prefillAllowancePerToken`` a token. Attention makes a long prefill slower per token than a short
    /// one (a 16k-token prompt on the 1.5B took over 490 s on a 2-core box), so the allowance is generous:
    /// openers also give up as soon as the verifier is declared dead, so the wait never stalls a failover.
    public var replyTimeout: Duration { .seconds(120) + Self.prefillAllowancePerToken * tokens.count }

    /// Time allowed per context token for a prefill (about 17 tokens/s at the least).
    public static let prefillAllowancePerToken: Duration = .milliseconds(60)
}

