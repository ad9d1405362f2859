import Foundation

/// What one edge device can do as a drafter: how fast it drafts with a given draft model, and the
/// network it sits behind. Written by `tandem profile` on a real device (measured) or by hand from a
/// cited public figure; read by emulated devices (`drafter-agent --emulate`), `tandem bench fleet`
/// and the config-advisor. A profile is an *input* to emulation, never a result. Schema:
/// `docs/fleet.md` ("Device profiles").
public struct EdgeDeviceProfile: Codable, Sendable, Hashable {
    /// Schema identifier written into every file, so a reader can refuse a file it does not understand.
    public static let currentSchema = "tandem.device-profile/1"

    /// The device's uplink to the cluster: each bus message from or to the device waits
    /// `rttMs / 2` plus its size over the link's bandwidth.
    public struct Network: Codable, Sendable, Hashable {
        public var rttMs: Double
        public var uplinkMbps: Double
        public var downlinkMbps: Double
        public init(rttMs: Double, uplinkMbps: Double, downlinkMbps: Double) {
            self.rttMs = rttMs
            self.uplinkMbps = uplinkMbps
            self.downlinkMbps = downlinkMbps
        }

        enum CodingKeys: String, CodingKey {
            case rttMs = "rtt_ms", uplinkMbps = "uplink_mbps", downlinkMbps = "downlink_mbps"
        }

        /// One-way time of a message of `bytes` sent by the device (`up`) or to it.
        public func oneWaySeconds(bytes: Int, up: Bool) -> Double {
            let mbps = up ? uplinkMbps : downlinkMbps
            let transfer = mbps > 0 ? Double(bytes) * 8 / (mbps * 1_000_000) : 0
            return rttMs / 2000 + transfer
        }
    }

    public var schema: String
    /// Short identifier, e.g. `rpi5-8gb`, `orin-nano`, `m2-laptop`.
    public var name: String
    /// Free-form description of the hardware (CPU, memory, accelerator).
    public var hardware: String
    /// Where the figures come from: `measured: ...` (with the command, host and date) or `cited: ...`
    /// (the public source and how it was scaled to this draft model).
    public var source: String
    /// Draft model the figures are for (catalog name or file name) and its dominant quantization.
    public var draftModel: String
    public var quantization: String?
    public var threads: Int?
    /// Steady-state decode speed of the draft model on this device (batch 1).
    public var decodeTokensPerSecond: Double
    /// Wall time of one drafting round of K = 1, 2, ... tokens, in milliseconds: feeding the last
    /// committed token and drafting K tokens autoregressively (what a drafter does each round).
    public var draftMs: [Double]
    /// Peak resident memory while drafting, MB.
    public var peakRSSMB: Double?
    /// Energy per drafted token (J), measured from RAPL counters where the machine exposes them.
    public var joulesPerToken: Double?
    /// Average power while drafting (W); `joulesPerToken × decodeTokensPerSecond` when measured.
    public var powerWatts: Double?
    public var network: Network
    /// Batch-1 time (ms) of each matrix of one layer of the draft model at each weight type, keyed by
    /// type name then matrix role (`attn_q` ... `ffn_down`), measured on the device by `tandem profile`
    /// (weights streamed from memory as in a decode step). What `tandem plan` prices a per-layer plan with;
    /// absent in cited profiles.
    public var layerMatvecMs: [String: [String: Double]]?

    public init(name: String, hardware: String, source: String, draftModel: String, quantization: String? = nil,
                threads: Int? = nil, decodeTokensPerSecond: Double, draftMs: [Double], peakRSSMB: Double? = nil,
                joulesPerToken: Double? = nil, powerWatts: Double? = nil, network: Network) {
        self.schema = Self.currentSchema
        self.name = name
        self.hardware = hardware
        self.source = source
        self.draftModel = draftModel
        self.quantization = quantization
        self.threads = threads
        self.decodeTokensPerSecond = decodeTokensPerSecond
        self.draftMs = draftMs
        self.peakRSSMB = peakRSSMB
        self.joulesPerToken = joulesPerToken
        self.powerWatts = powerWatts
        self.network = network
    }

    enum CodingKeys: String, CodingKey {
        case schema, name, hardware, source, quantization, threads, network
        case draftModel = "draft_model"
        case decodeTokensPerSecond = "decode_tokens_per_second"
        case draftMs = "draft_ms"
        case peakRSSMB = "peak_rss_mb"
        case joulesPerToken = "joules_per_token"
        case powerWatts = "power_watts"
        case layerMatvecMs = "layer_matvec_ms"
    }

    /// Device time of a drafting round of `k` tokens. Between and beyond the measured K the time is
    /// extended linearly with the last measured step (or the decode speed when fewer than two are known).
    public func draftSeconds(k: Int) -> Double {
        guard k > 0 else { return 0 }
        let perToken = 1 / max(decodeTokensPerSecond, 1e-9)
        guard !draftMs.isEmpty else { return Double(k) * perToken }
        if k <= draftMs.count { return draftMs[k - 1] / 1000 }
        let step = draftMs.count >= 2 ? (draftMs[draftMs.count - 1] - draftMs[draftMs.count - 2]) / 1000 : perToken
        return draftMs[draftMs.count - 1] / 1000 + Double(k - draftMs.count) * max(step, 0)
    }

    /// Reads and validates a profile file.
    public static func load(path: String) throws -> EdgeDeviceProfile {
        let profile = try JSONFile.decode(EdgeDeviceProfile.self, path: path, what: "device profile",
                                          error: ProfileError.init)
        try profile.validate()
        return profile
    }

    /// Checks the fields a reader relies on; the message names the field.
    public func validate() throws(ProfileError) {
        guard schema == Self.currentSchema else {
            throw ProfileError("schema is '\(schema)', expected '\(Self.currentSchema)'")
        }
        guard !name.isEmpty else { throw ProfileError("name is empty") }
        guard decodeTokensPerSecond.isFinite, decodeTokensPerSecond > 0 else {
            throw ProfileError("decode_tokens_per_second must be positive")
        }
        guard draftMs.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw ProfileError("draft_ms must be non-negative") }
        guard network.rttMs >= 0, network.uplinkMbps >= 0, network.downlinkMbps >= 0 else {
            throw ProfileError("network figures must be non-negative")
        }
    }

    public struct ProfileError: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = "device profile: " + description }
    }
}
