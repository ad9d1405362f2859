// Events published on the bus (PUB/SUB through the metrics-store proxy; topic = event kind).

/// One verification batch on a verifier: the estimator learns batch time from these.
public struct BatchEvent: Codable, Sendable, Hashable {
    public var verifierID: ReplicaID
    public var model: String
    public var sequences: Int
    /// New tokens evaluated per sequence (K+1 for a verify, the prompt for a prefill).
    public var tokensPerSequence: [Int]
    /// Context length (cached tokens) per sequence before this batch.
    public var contextLengths: [Int]
    public var wallMs: Double
    /// What the estimator predicted for this batch, when one was asked (for fit error).
    public var predictedMs: Double?
    public var at: EpochMillis
    /// True for a batch that only prefilled prompts, nil/false when it verified (or decoded) sessions.
    public var prefill: Bool?
    /// Prompt tokens prefilled in this batch (chunked prefill rides along with verification), counted in
    /// `tokensPerSequence` too; nil when none.
    public var prefillTokens: Int?
    /// Tokens the verifier proposed by prompt lookup (n-gram) for K = 0 steps in this batch (counted in
    /// `tokensPerSequence`), and how many were accepted; nil when none.
    public var lookupProposed: Int?
    public var lookupAccepted: Int?
    /// Requests in this batch the scheduler predicted would miss their deadline (served best effort); nil when none.
    public var late: Int?
    public init(verifierID: ReplicaID, model: String, sequences: Int, tokensPerSequence: [Int],
                contextLengths: [Int], wallMs: Double, predictedMs: Double? = nil, at: EpochMillis,
                prefill: Bool? = nil, prefillTokens: Int? = nil, lookupProposed: Int? = nil,
                lookupAccepted: Int? = nil, late: Int? = nil) {
        self.verifierID = verifierID
        self.model = model
        self.sequences = sequences
        self.tokensPerSequence = tokensPerSequence
        self.contextLengths = contextLengths
        self.wallMs = wallMs
        self.predictedMs = predictedMs
        self.at = at
        self.prefill = prefill
        self.prefillTokens = prefillTokens
        self.lookupProposed = lookupProposed
        self.lookupAccepted = lookupAccepted
        self.late = late
    }
}

/// One speculative round of one session.
public struct RoundEvent: Codable, Sendable, Hashable {
    public var session: SessionID
    public var drafterID: ReplicaID
    public var verifierID: ReplicaID
    public var draftModel: String
    public var targetModel: String
    public var device: String
    /// Draft length the controller allowed this round (K).
    public var k: Int
    public var drafted: Int
    public var accepted: Int
    /// `acceptedPerPosition[i]` is true when draft position i was accepted.
    public var acceptedPerPosition: [Bool]
    public var draftMs: Double
    public var verifyMs: Double
    public var at: EpochMillis
    public init(session: SessionID, drafterID: ReplicaID, verifierID: ReplicaID, draftModel: String,
                targetModel: String, device: String, k: Int, drafted: Int, accepted: Int,
                acceptedPerPosition: [Bool], draftMs: Double, verifyMs: Double, at: EpochMillis) {
        self.session = session
        self.drafterID = drafterID
        self.verifierID = verifierID
        self.draftModel = draftModel
        self.targetModel = targetModel
        self.device = device
        self.k = k
        self.drafted = drafted
        self.accepted = accepted
        self.acceptedPerPosition = acceptedPerPosition
        self.draftMs = draftMs
        self.verifyMs = verifyMs
        self.at = at
    }
}

public enum SessionPhase: String, Codable, Sendable, Hashable {
    case started, finished
}

/// Session lifecycle, with its latency numbers when finished.
public struct SessionEvent: Codable, Sendable, Hashable {
    public var session: SessionID
    public var phase: SessionPhase
    public var model: String
    public var promptTokens: Int
    public var outputTokens: Int
    public var ttftMs: Double?
    public var tpotMs: Double?
    public var metSLO: Bool?
    public var finishReason: FinishReason?
    public var at: EpochMillis
    public init(session: SessionID, phase: SessionPhase, model: String, promptTokens: Int, outputTokens: Int,
                ttftMs: Double? = nil, tpotMs: Double? = nil, metSLO: Bool? = nil,
                finishReason: FinishReason? = nil, at: EpochMillis) {
        self.session = session
        self.phase = phase
        self.model = model
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.ttftMs = ttftMs
        self.tpotMs = tpotMs
        self.metSLO = metSLO
        self.finishReason = finishReason
        self.at = at
    }
}

/// A measured device/model profile (drafting speed, power), used by the config-advisor.
public struct ProfileEvent: Codable, Sendable, Hashable {
    public var device: String
    public var draftModel: String
    public var quantization: String
    public var draftTokensPerSecond: Double
    public var powerWatts: Double
    public var at: EpochMillis
    /// Draft/target alignment measured with this speed (`tandem profile --pair`, docs/alignment.md); nil for
    /// a speed-only profile. Optional so that events from older publishers still decode.
    public var alignment: Alignment?

    /// What `tandem profile --pair` measured for (draft model, target model).
    public struct Alignment: Codable, Sendable, Hashable {
        public var targetModel: String
        /// Conditional greedy acceptance per draft position.
        public var perPosition: [Double]
        /// Conditional sampled acceptance `Σ min(p, q)` per draft position, at `temperature`.
        public var sampledPerPosition: [Double]
        public var temperature: Double
        /// Mean D(target || draft), nats, and the draft's perplexity on the target's outputs.
        public var klDivergence: Double
        public var perplexity: Double
        /// Target tokens scored.
        public var positions: Int
        public init(targetModel: String, perPosition: [Double], sampledPerPosition: [Double], temperature: Double,
                    klDivergence: Double, perplexity: Double, positions: Int) {
            self.targetModel = targetModel
            self.perPosition = perPosition
            self.sampledPerPosition = sampledPerPosition
            self.temperature = temperature
            self.klDivergence = klDivergence
            self.perplexity = perplexity
            self.positions = positions
        }
    }

    public init(device: String, draftModel: String, quantization: String, draftTokensPerSecond: Double,
                powerWatts: Double, at: EpochMillis, alignment: Alignment? = nil) {
        self.device = device
        self.draftModel = draftModel
        self.quantization = quantization
        self.draftTokensPerSecond = draftTokensPerSecond
        self.powerWatts = powerWatts
        self.at = at
        self.alignment = alignment
    }
}

/// The event topics (ZeroMQ subscription prefixes).
public enum EventTopic: String, Codable, Sendable, CaseIterable {
    case batch, round, session, profile
}
