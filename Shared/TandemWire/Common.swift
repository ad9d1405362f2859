/// Identifies one generation request end to end (gateway-assigned, e.g. `cmpl-<uuid>`).
public typealias SessionID = String
/// Identifies one replica of a service (unique per process; defaults to `<role>-<host>-<pid>`).
public typealias ReplicaID = String

/// The six Tandem services.
public enum Role: String, Codable, Sendable, CaseIterable, Hashable {
    case gateway
    case drafter = "drafter-agent"
    case verifier
    case estimator
    case configAdvisor = "config-advisor"
    case metricsStore = "metrics-store"
}

/// What an edge device is, as the config-advisor and energy accounting need it.
public struct DeviceProfile: Codable, Sendable, Hashable {
    /// Human-readable device class, e.g. `rpi5`, `orin-nano`, `laptop`.
    public var name: String
    /// Average power drawn while drafting, in watts (energy efficiency = accepted tokens / joule).
    public var powerWatts: Double
    /// Fraction of full compute speed this device runs at (1 = unthrottled). Used to emulate slow devices.
    public var computeThrottle: Double
    /// Threads the drafter uses for its model.
    public var threads: Int

    public init(name: String, powerWatts: Double, computeThrottle: Double = 1, threads: Int = 1) {
        self.name = name
        self.powerWatts = powerWatts
        self.computeThrottle = computeThrottle
        self.threads = threads
    }
}

/// Sampling parameters as they travel on the bus (mirrors the engine's `SamplingParams`).
public struct WireSampling: Codable, Sendable, Hashable {
    /// 0 means greedy.
    public var temperature: Float
    /// 0 means off.
    public var topK: Int
    /// 1 means off.
    public var topP: Float
    public var minP: Float
    public var repetitionPenalty: Float
    /// All random choices derive from `(seed, position)`, so retries and failover reproduce the output.
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }
}

/// Latency objectives of one request.
public struct SLO: Codable, Sendable, Hashable {
    public var ttftMs: Double
    public var tpotMs: Double
    public init(ttftMs: Double = 2000, tpotMs: Double = 150) {
        self.ttftMs = ttftMs
        self.tpotMs = tpotMs
    }
}

/// A truncated, renormalized distribution: the exact support and probabilities a draft token was
/// sampled from. Sending it (instead of the full vocabulary) keeps the uplink small and verification exact.
public struct WireDistribution: Codable, Sendable, Hashable {
    public var tokens: [Int32]
    public var probs: [Float]
    public init(tokens: [Int32], probs: [Float]) {
        self.tokens = tokens
        self.probs = probs
    }
}

/// Why a generation ended, in OpenAI's vocabulary.
public enum FinishReason: String, Codable, Sendable, Hashable {
    case stop, length, error, cancelled
}

/// Load a replica reports with each heartbeat; the gateway places sessions on the least loaded.
public struct ReplicaLoad: Codable, Sendable, Hashable {
    public var activeSessions: Int
    public var queuedRequests: Int
    /// Bytes of KV cache in use (verifier, drafter).
    public var kvBytes: Int
    public init(activeSessions: Int = 0, queuedRequests: Int = 0, kvBytes: Int = 0) {
        self.activeSessions = activeSessions
        self.queuedRequests = queuedRequests
        self.kvBytes = kvBytes
    }
}

/// Milliseconds since the Unix epoch: the wire's clock for deadlines and timestamps.
public typealias EpochMillis = Double
