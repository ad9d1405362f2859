import Foundation

/// One finished request of `tandem bench fleet`, as the client saw it.
struct FleetSample: Sendable {
    var device: String
    var tokens: Int
    var ttftMs: Double
    var tpotMs: Double?
    var metSLO: Bool
    var drafted: Int
    var accepted: Int
    var rounds: Int
    var plainRounds: Int
    var wastedDraftMs: Double
    var aheadDrafts = 0
    var aheadHits = 0
    /// The text equals the target-only output recorded in the trace (lossless, nothing lost).
    var identical: Bool
}

/// One (mode, device count) row of the fleet benchmark; field names are the JSON schema's
/// (docs/fleet.md, "`tandem bench fleet`").
struct FleetRow: Codable, Sendable {
    var mode: String
    var devices: Int
    var requests: Int
    var errors: Int
    var identical: Int
    var seconds: Double
    var throughputTPS: Double
    var goodputTPS: Double
    var sloAttainment: Double
    var ttftMsP50: Double?
    var ttftMsP90: Double?
    var ttftMsP99: Double?
    var tpotMsP50: Double?
    var tpotMsP90: Double?
    var tpotMsP99: Double?
    var acceptance: Double?
    var meanAcceptedLength: Double?
    /// Mean drafts sent per verification round (the controller's K, K = 0 rounds included).
    var meanK: Double?
    var plainRoundFraction: Double?
    var batchPositionsMean: Double?
    var verifierBusy: Double?
    var wastedDraftS: Double
    /// Share of rounds drafted ahead whose next draft the verifier's answer confirmed (nil: none drafted ahead).
    var aheadHitRate: Double?
    /// Share of verification rounds that had a draft ahead running.
    var aheadFraction: Double?

    enum CodingKeys: String, CodingKey {
        case mode, devices, requests, errors, identical, seconds, acceptance
        case throughputTPS = "throughput_tps", goodputTPS = "goodput_tps", sloAttainment = "slo_attainment"
        case ttftMsP50 = "ttft_ms_p50", ttftMsP90 = "ttft_ms_p90", ttftMsP99 = "ttft_ms_p99"
        case tpotMsP50 = "tpot_ms_p50", tpotMsP90 = "tpot_ms_p90", tpotMsP99 = "tpot_ms_p99"
        case meanAcceptedLength = "mean_accepted_length", meanK = "mean_k", plainRoundFraction = "plain_round_fraction"
        case batchPositionsMean = "batch_positions_mean", verifierBusy = "verifier_busy", wastedDraftS = "wasted_draft_s"
        case aheadHitRate = "ahead_hit_rate", aheadFraction = "ahead_fraction"
    }

    /// Aggregates the samples of one (mode, N) run over `seconds` of wall time; `batches` are the
    /// verifier's batch events in that window (positions per batch, wall ms).
    init(mode: String, devices: Int, samples: [FleetSample], errors: Int, seconds: Double,
         batches: [(positions: Int, wallMs: Double, prefill: Bool)]) {
        self.mode = mode
        self.devices = devices
        requests = samples.count
        self.errors = errors
        identical = samples.filter(\.identical).count
        self.seconds = seconds
        let tokens = samples.reduce(0) { $0 + $1.tokens }
        let good = samples.filter(\.metSLO).reduce(0) { $0 + $1.tokens }
        throughputTPS = seconds > 0 ? Double(tokens) / seconds : 0
        goodputTPS = seconds > 0 ? Double(good) / seconds : 0
        let all = samples.count + errors
        sloAttainment = all > 0 ? Double(samples.filter(\.metSLO).count) / Double(all) : 0
        let ttft = samples.map(\.ttftMs).sorted()
        let tpot = samples.compactMap(\.tpotMs).sorted()
        ttftMsP50 = NearestRank.percentile(ttft, 0.5)
        ttftMsP90 = NearestRank.percentile(ttft, 0.9)
        ttftMsP99 = NearestRank.percentile(ttft, 0.99)
        tpotMsP50 = NearestRank.percentile(tpot, 0.5)
        tpotMsP90 = NearestRank.percentile(tpot, 0.9)
        tpotMsP99 = NearestRank.percentile(tpot, 0.99)
        let drafted = samples.reduce(0) { $0 + $1.drafted }
        let accepted = samples.reduce(0) { $0 + $1.accepted }
        let rounds = samples.reduce(0) { $0 + $1.rounds }
        let plain = samples.reduce(0) { $0 + $1.plainRounds }
        acceptance = drafted > 0 ? Double(accepted) / Double(drafted) : nil
        meanAcceptedLength = rounds > 0 && drafted > 0 ? 1 + Double(accepted) / Double(rounds) : nil
        meanK = rounds > 0 ? Double(drafted) / Double(rounds) : nil
        plainRoundFraction = rounds > 0 ? Double(plain) / Double(rounds) : nil
        let verifies = batches.filter { !$0.prefill }
        batchPositionsMean = verifies.isEmpty ? nil : Double(verifies.reduce(0) { $0 + $1.positions }) / Double(verifies.count)
        verifierBusy = seconds > 0 ? min(1, batches.reduce(0) { $0 + $1.wallMs } / 1000 / seconds) : nil
        wastedDraftS = samples.reduce(0) { $0 + $1.wastedDraftMs } / 1000
        let ahead = samples.reduce(0) { $0 + $1.aheadDrafts }
        aheadHitRate = ahead > 0 ? Double(samples.reduce(0) { $0 + $1.aheadHits }) / Double(ahead) : nil
        aheadFraction = rounds > 0 ? Double(ahead) / Double(rounds) : nil
    }
}

/// Nearest-rank percentiles of sorted values (`tandem bench fleet` and `bench serve`).
enum NearestRank {
    static func percentile(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// The whole benchmark's output file (`--json`).
struct FleetReport: Codable, Sendable {
    var schema = "tandem.bench-fleet/1"
    /// Always true: edge devices are emulated (drafts replayed from the trace, time from the profile).
    var emulatedDevices = true
    var trace: String
    var draftModel: String
    var targetModel: String
    var promptSet: String
    var prompts: Int
    var maxTokens: Int
    var profile: String
    var profileSource: String
    var sloTTFTMs: Double
    var sloTPOTMs: Double
    var sledK: Int
    var requestsPerDevice: Int
    var staggerMs: Double
    var thinkMs: Double
    var verifierThreads: Int
    var startedAt: String
    var rows: [FleetRow]
    /// Largest device count with at least 90 % SLO attainment, per mode (0: none).
    var capacity: [String: Int]

    enum CodingKeys: String, CodingKey {
        case schema, trace, prompts, profile, rows, capacity
        case emulatedDevices = "emulated_devices", draftModel = "draft_model", targetModel = "target_model"
        case promptSet = "prompt_set", maxTokens = "max_tokens", profileSource = "profile_source"
        case sloTTFTMs = "slo_ttft_ms", sloTPOTMs = "slo_tpot_ms", sledK = "sled_k"
        case requestsPerDevice = "requests_per_device", staggerMs = "stagger_ms", thinkMs = "think_ms"
        case verifierThreads = "verifier_threads", startedAt = "started_at"
    }

    static func capacity(of rows: [FleetRow]) -> [String: Int] {
        Dictionary(grouping: rows, by: \.mode).mapValues { rows in
            rows.filter { $0.sloAttainment >= 0.9 }.map(\.devices).max() ?? 0
        }
    }
}
