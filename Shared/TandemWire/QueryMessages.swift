// Estimator, config-advisor and metrics-store queries.

/// Features of a verification batch, as the estimator's model sees them.
public struct BatchFeatures: Codable, Sendable, Hashable {
    public var sequences: Int
    public var newTokens: Int
    public var contextTokens: Int
    public init(sequences: Int, newTokens: Int, contextTokens: Int) {
        self.sequences = sequences
        self.newTokens = newTokens
        self.contextTokens = contextTokens
    }
}

public struct EstimateQuery: Codable, Sendable, Hashable {
    /// Target model (the estimator keeps one fitted model per verifier model).
    public var model: String
    public var batches: [BatchFeatures]
    public init(model: String, batches: [BatchFeatures]) {
        self.model = model
        self.batches = batches
    }
}

public struct EstimateReply: Codable, Sendable, Hashable {
    public var predictedMs: [Double]
    /// Observations the fit is based on (0 = prior only).
    public var samples: Int
    public var rmseMs: Double
    public var meanRelativeError: Double
    public init(predictedMs: [Double], samples: Int, rmseMs: Double, meanRelativeError: Double) {
        self.predictedMs = predictedMs
        self.samples = samples
        self.rmseMs = rmseMs
        self.meanRelativeError = meanRelativeError
    }
}

public enum Objective: String, Codable, Sendable, CaseIterable, Hashable {
    case goodput, cost, energy
}

public struct AdvisorQuery: Codable, Sendable, Hashable {
    public var device: DeviceProfile
    public var objective: Objective
    public var targetModel: String
    /// Draft models the device can run (empty: the advisor's known candidates).
    public var candidates: [String]
    /// The device's measured profile (`tandem profile`): with it the advisor chooses over (draft variant, K)
    /// from alignment profiles, per K draft times, RTT and joules/token (docs/alignment.md). Optional, so
    /// queries from older drafters still decode and get the per-token-speed answer.
    public var edgeProfile: EdgeDeviceProfile?
    public init(device: DeviceProfile, objective: Objective, targetModel: String, candidates: [String] = [],
                edgeProfile: EdgeDeviceProfile? = nil) {
        self.device = device
        self.objective = objective
        self.targetModel = targetModel
        self.candidates = candidates
        self.edgeProfile = edgeProfile
    }
}

public struct AdvisorRecommendation: Codable, Sendable, Hashable {
    public var draftModel: String
    public var quantization: String
    public var k: Int
    public var expectedTokensPerRound: Double
    public var objectiveValue: Double
    /// `measured` when based on stored acceptance/timing data, `prior` otherwise.
    public var basis: String
    public init(draftModel: String, quantization: String, k: Int, expectedTokensPerRound: Double,
                objectiveValue: Double, basis: String) {
        self.draftModel = draftModel
        self.quantization = quantization
        self.k = k
        self.expectedTokensPerRound = expectedTokensPerRound
        self.objectiveValue = objectiveValue
        self.basis = basis
    }
}

public enum MetricsQueryKind: String, Codable, Sendable, CaseIterable, Hashable {
    /// Acceptance rate and mean acceptance length per (draft model, target model, K).
    case acceptance
    /// Verification batch latency percentiles (per verifier model).
    case batchLatency = "batch_latency"
    /// Per-session TTFT/TPOT.
    case sessionLatency = "session_latency"
    /// Stored event counts per topic.
    case eventCounts = "event_counts"
    /// Drafting speed/power profiles per (device, draft model).
    case profiles
    /// Draft/target alignment per (draft model, quantization, target model), latest measurement.
    case alignment
}

public struct MetricsQuery: Codable, Sendable, Hashable {
    public var kind: MetricsQueryKind
    /// Only events at or after this time.
    public var since: EpochMillis?
    public var limit: Int?
    public init(kind: MetricsQueryKind, since: EpochMillis? = nil, limit: Int? = nil) {
        self.kind = kind
        self.since = since
        self.limit = limit
    }
}

public struct AcceptanceRow: Codable, Sendable, Hashable {
    public var draftModel: String
    public var targetModel: String
    public var k: Int
    public var rounds: Int
    public var drafted: Int
    public var accepted: Int
    public var acceptanceRate: Double
    public var meanAcceptanceLength: Double
    /// Acceptance rate at draft position i (i = 0 ..< k).
    public var perPosition: [Double]
    public init(draftModel: String, targetModel: String, k: Int, rounds: Int, drafted: Int, accepted: Int,
                acceptanceRate: Double, meanAcceptanceLength: Double, perPosition: [Double]) {
        self.draftModel = draftModel
        self.targetModel = targetModel
        self.k = k
        self.rounds = rounds
        self.drafted = drafted
        self.accepted = accepted
        self.acceptanceRate = acceptanceRate
        self.meanAcceptanceLength = meanAcceptanceLength
        self.perPosition = perPosition
    }
}

public struct LatencyRow: Codable, Sendable, Hashable {
    public var key: String
    public var count: Int
    public var meanMs: Double
    public var p50Ms: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public init(key: String, count: Int, meanMs: Double, p50Ms: Double, p90Ms: Double, p99Ms: Double) {
        self.key = key
        self.count = count
        self.meanMs = meanMs
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
    }
}

public struct SessionLatencyRow: Codable, Sendable, Hashable {
    public var session: SessionID
    public var model: String
    public var outputTokens: Int
    public var ttftMs: Double?
    public var tpotMs: Double?
    public var metSLO: Bool?
    public init(session: SessionID, model: String, outputTokens: Int, ttftMs: Double?, tpotMs: Double?,
                metSLO: Bool?) {
        self.session = session
        self.model = model
        self.outputTokens = outputTokens
        self.ttftMs = ttftMs
        self.tpotMs = tpotMs
        self.metSLO = metSLO
    }
}

public struct ProfileRow: Codable, Sendable, Hashable {
    public var device: String
    public var draftModel: String
    public var quantization: String
    public var samples: Int
    public var draftTokensPerSecond: Double
    public var powerWatts: Double
    public init(device: String, draftModel: String, quantization: String, samples: Int,
                draftTokensPerSecond: Double, powerWatts: Double) {
        self.device = device
        self.draftModel = draftModel
        self.quantization = quantization
        self.samples = samples
        self.draftTokensPerSecond = draftTokensPerSecond
        self.powerWatts = powerWatts
    }
}

/// The latest `tandem profile --pair` measurement of one (draft model, quantization, target model).
public struct AlignmentRow: Codable, Sendable, Hashable {
    /// The machine that measured it (its speed is that machine's).
    public var device: String
    public var draftModel: String
    public var quantization: String
    public var targetModel: String
    /// Alignment events stored for this key.
    public var samples: Int
    /// Conditional acceptance per draft position, greedy and sampled (at `temperature`).
    public var perPosition: [Double]
    public var sampledPerPosition: [Double]
    public var temperature: Double
    public var klDivergence: Double
    public var perplexity: Double
    public var positions: Int
    public var draftTokensPerSecond: Double
    public var at: EpochMillis
    public init(device: String, draftModel: String, quantization: String, targetModel: String, samples: Int,
                perPosition: [Double], sampledPerPosition: [Double], temperature: Double, klDivergence: Double,
                perplexity: Double, positions: Int, draftTokensPerSecond: Double, at: EpochMillis) {
        self.device = device
        self.draftModel = draftModel
        self.quantization = quantization
        self.targetModel = targetModel
        self.samples = samples
        self.perPosition = perPosition
        self.sampledPerPosition = sampledPerPosition
        self.temperature = temperature
        self.klDivergence = klDivergence
        self.perplexity = perplexity
        self.positions = positions
        self.draftTokensPerSecond = draftTokensPerSecond
        self.at = at
    }
}

/// The metrics-store's answer; exactly the array matching the query kind is filled.
public struct MetricsResult: Codable, Sendable, Hashable {
    public var kind: MetricsQueryKind
    public var acceptance: [AcceptanceRow]
    public var latency: [LatencyRow]
    public var sessions: [SessionLatencyRow]
    public var profiles: [ProfileRow]
    public var eventCounts: [String: Int]
    /// Filled for `alignment` (optional: answers from older stores lack it).
    public var alignment: [AlignmentRow]?
    public init(kind: MetricsQueryKind, acceptance: [AcceptanceRow] = [], latency: [LatencyRow] = [],
                sessions: [SessionLatencyRow] = [], profiles: [ProfileRow] = [], eventCounts: [String: Int] = [:],
                alignment: [AlignmentRow]? = nil) {
        self.alignment = alignment
        self.kind = kind
        self.acceptance = acceptance
        self.latency = latency
        self.sessions = sessions
        self.profiles = profiles
        self.eventCounts = eventCounts
    }
}
