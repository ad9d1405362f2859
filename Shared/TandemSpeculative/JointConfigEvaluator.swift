import TandemEngine
import Foundation
import TandemModels

/// ConfigSpec's joint choice of (draft variant, K) for one device and one objective (docs/alignment.md).
///
/// Why a separate evaluator: ``SpeculationPlanner`` scores one draft at one per-token speed with one α; the
/// joint space needs a per-variant acceptance *curve* (per position, measured by ``AlignmentProfiler`` or
/// live), the device's measured draft time *per K* (its profile's `draft_ms`, which includes per-round
/// overhead), the network round trip, and the device's joules per drafted token, all scaled per variant.
///
/// For variant v and draft length K, with `T(K) = 1 + Σ_{j<K} Π_{i≤j} a_i` (docs/design.md §6):
/// - goodput = `T(K) / (draft_v(K) + rtt + verify(K))` tokens per second of the device's session;
/// - cost = `verify(K) / T(K)`: verifier seconds per emitted token (lower is better);
/// - energy = `(J_v·K + P_idle·(rtt + verify(K))) / T(K)`: device joules per emitted token (lower is better),
///   J_v the profile's joules per drafted token scaled like the draft time, P_idle the drafting power times
///   `idlePowerFraction` (0 by default: drafting energy only, as docs/design.md §11 counts it).
/// "Emitted" tokens are the accepted drafts plus the verifier's correction/bonus token: the bonus token is why
/// cost and energy favour short K.
public enum JointConfigEvaluator {
    public enum Objective: String, Sendable, Hashable, CaseIterable, Codable {
        case goodput, cost, energy
    }

    /// The device side, from an edge-device profile (TandemWire's `EdgeDeviceProfile`).
    public struct Device: Sendable, Hashable {
        public var name: String
        /// The draft model the profile's figures were measured (or cited) for.
        public var draftModel: String
        public var draftMs: [Double]
        public var decodeTokensPerSecond: Double
        public var rttSeconds: Double
        public var joulesPerToken: Double?
        public var powerWatts: Double?

        public init(name: String, draftModel: String, draftMs: [Double], decodeTokensPerSecond: Double,
                    rttSeconds: Double, joulesPerToken: Double?, powerWatts: Double?) {
            self.name = name
            self.draftModel = draftModel
            self.draftMs = draftMs
            self.decodeTokensPerSecond = decodeTokensPerSecond
            self.rttSeconds = rttSeconds
            self.joulesPerToken = joulesPerToken
            self.powerWatts = powerWatts
        }

        /// Round time for K drafts: the measured `draft_ms`, extended linearly past its end (same rule as
        /// `EdgeDeviceProfile.draftSeconds`).
        public func draftSeconds(k: Int) -> Double {
            guard k > 0 else { return 0 }
            let perToken = 1 / max(decodeTokensPerSecond, 1e-9)
            guard !draftMs.isEmpty else { return Double(k) * perToken }
            if k <= draftMs.count { return draftMs[k - 1] / 1000 }
            let step = draftMs.count >= 2 ? (draftMs[draftMs.count - 1] - draftMs[draftMs.count - 2]) / 1000 : perToken
            return draftMs[draftMs.count - 1] / 1000 + Double(k - draftMs.count) * max(step, 0)
        }

        /// Power while drafting: the profile's, else joules/token × tokens/s.
        public var drafterWatts: Double? {
            powerWatts ?? joulesPerToken.map { $0 * decodeTokensPerSecond }
        }
    }

    /// One draft variant: its acceptance curve and its speed relative to the device profile's draft model.
    public struct Variant: Sendable, Hashable {
        public var name: String
        public var quantization: String
        /// Conditional acceptance per draft position (the last value is carried beyond).
        public var acceptance: [Double]
        /// Where `acceptance` came from (`alignment`, `live`, `prior`).
        public var acceptanceSource: String
        /// Draft time of this variant ÷ draft time of the device profile's model, and how it was obtained.
        public var timeScale: Double
        public var timeScaleSource: String

        public init(name: String, quantization: String, acceptance: [Double], acceptanceSource: String,
                    timeScale: Double, timeScaleSource: String) {
            self.name = name
            self.quantization = quantization
            self.acceptance = acceptance
            self.acceptanceSource = acceptanceSource
            self.timeScale = timeScale
            self.timeScaleSource = timeScaleSource
        }
    }

    /// One (variant, K) with every objective's predicted value.
    public struct Candidate: Sendable, Hashable {
        public var variant: Int
        public var k: Int
        public var expectedTokens: Double
        public var draftSeconds: Double
        public var roundSeconds: Double
        /// Tokens per second.
        public var goodput: Double
        /// Verifier seconds per token.
        public var verifierSecondsPerToken: Double
        /// Device joules per token; nil when the profile has neither joules/token nor power.
        public var joulesPerToken: Double?

        /// The value ranked for `objective`, oriented so that larger is better (nil: not computable).
        public func score(_ objective: Objective) -> Double? {
            switch objective {
            case .goodput: goodput
            case .cost: -verifierSecondsPerToken
            case .energy: joulesPerToken.map { -$0 }
            }
        }

        /// The value reported for `objective` in its own unit.
        public func value(_ objective: Objective) -> Double? {
            switch objective {
            case .goodput: goodput
            case .cost: verifierSecondsPerToken
            case .energy: joulesPerToken
            }
        }
    }

    public struct Result: Sendable, Hashable {
        /// Every (variant, K), variant-major, K ascending.
        public var candidates: [Candidate]
        /// Index into `candidates` of the choice.
        public var best: Int
        public var choice: Candidate { candidates[best] }
    }

    public enum Failure: Error, CustomStringConvertible, Sendable, Equatable {
        case noVariants
        case noEnergyFigure(device: String)
        case badInput(String)

        public var description: String {
            switch self {
            case .noVariants: "no draft variant to evaluate"
            case .noEnergyFigure(let device):
                "device profile '\(device)' has neither joules_per_token nor power_watts: the energy objective cannot be evaluated"
            case .badInput(let why): why
            }
        }
    }

    /// Evaluates every variant at every K of `kRange` and picks the best for `objective` (ties: earlier
    /// variant, smaller K).
    public static func evaluate(device: Device, variants: [Variant], verify: VerifyTimeModel, objective: Objective,
                                kRange: ClosedRange<Int>, idlePowerFraction: Double = 0) throws(Failure) -> Result {
        guard !variants.isEmpty else { throw .noVariants }
        guard kRange.lowerBound >= 1 else { throw .badInput("K must start at 1 or more") }
        guard idlePowerFraction >= 0, device.rttSeconds >= 0 else { throw .badInput("negative idle power or RTT") }
        for v in variants where !(v.timeScale.isFinite && v.timeScale > 0) {
            throw .badInput("variant \(v.name) has time scale \(v.timeScale)")
        }
        let watts = device.drafterWatts
        let joulesPerDraft = device.joulesPerToken ?? watts.map { $0 / max(device.decodeTokensPerSecond, 1e-9) }
        var candidates: [Candidate] = []
        for (i, v) in variants.enumerated() {
            for k in kRange {
                let tokens = SpeculationMath.expectedTokensPerRound(positionAcceptance: v.acceptance, draftLength: k)
                let draft = device.draftSeconds(k: k) * v.timeScale
                let verifySeconds = verify.seconds(draftLength: k)
                let round = draft + device.rttSeconds + verifySeconds
                var joules: Double?
                if let j = joulesPerDraft {
                    let idle = (watts ?? 0) * idlePowerFraction * (device.rttSeconds + verifySeconds)
                    joules = (j * v.timeScale * Double(k) + idle) / tokens
                }
                candidates.append(Candidate(variant: i, k: k, expectedTokens: tokens, draftSeconds: draft,
                                            roundSeconds: round, goodput: tokens / round,
                                            verifierSecondsPerToken: verifySeconds / tokens, joulesPerToken: joules))
            }
        }
        if objective == .energy, joulesPerDraft == nil { throw .noEnergyFigure(device: device.name) }
        var best = 0
        for (i, c) in candidates.enumerated() {
            if let s = c.score(objective), let b = candidates[best].score(objective), s > b { best = i }
        }
        return Result(candidates: candidates, best: best)
    }

    /// Model names as compared across profiles: ``ModelCatalog/canonicalName(_:)`` (a catalog file and its
    /// catalog name are one model), the key the estimator and the metrics use too.
    public static func modelKey(_ name: String) -> String { ModelCatalog.canonicalName(name) }

    /// Variants from alignment profiles. A variant's time scale is the device model's speed on the profiling
    /// machine ÷ the variant's (both measured there, so the ratio carries to the device: batch-1 decode is
    /// memory-bound on both), when a profile of the device's model is among them; else 1 (`unscaled`, and
    /// said so in `timeScaleSource`). `live` replaces a variant's curve by the
    /// metrics-store's when it has one (keyed by ``modelKey(_:)``).
    public static func variants(from profiles: [AlignmentProfile], device: Device, sampled: Bool = false,
                                live: [String: [Double]] = [:]) -> [Variant] {
        let deviceKey = modelKey(device.draftModel)
        let reference = profiles.first { modelKey($0.draftModel) == deviceKey }
        return profiles.map { p in
            let key = modelKey(p.draftModel)
            var scale = 1.0
            var scaleSource = "unscaled: no alignment profile of the device's model \(device.draftModel)"
            if key == deviceKey {
                scaleSource = "the device profile's own model"
            } else if let reference {
                scale = reference.draftTokensPerSecond / p.draftTokensPerSecond
                scaleSource = String(format: "tok/s ratio measured here (%.1f / %.1f)", reference.draftTokensPerSecond,
                                     p.draftTokensPerSecond)
            }
            let curve = live[key] ?? (sampled ? p.sampled.perPosition : p.greedy.perPosition)
            return Variant(name: p.draftModel, quantization: p.draftQuantization, acceptance: curve,
                           acceptanceSource: live[key] != nil ? "live" : (sampled ? "alignment (sampled)" : "alignment (greedy)"),
                           timeScale: scale, timeScaleSource: scaleSource)
        }
    }
}
