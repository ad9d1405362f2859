import Foundation
import TandemQuantize

/// What `tandem plan --report` writes: every (layer, type) measured, the chosen plan, the prediction,
/// and with `--apply` the measured result. Field names are the JSON's (docs/quantize.md).
struct PlanReport: Codable {
    struct Measurement: Codable {
        var layer: Int
        var type: String
        var deltaMs: Double
        var score: LayerSensitivityProbe.Score
        enum CodingKeys: String, CodingKey { case layer, type, deltaMs = "delta_ms_per_token", score }
    }

    /// One check of a chosen plan as a whole (`PlanCommand.checkedChoice`).
    struct Check: Codable {
        var planningBudget: Double
        var layers: Int
        var predictedKL: Double
        var measured: LayerSensitivityProbe.Score
        enum CodingKeys: String, CodingKey {
            case layers, measured
            case planningBudget = "planning_budget", predictedKL = "predicted_kl"
        }
    }

    struct Prediction: Codable {
        var meanKL: Double
        var top1Flips: Double
        var msPerToken: Double
        var tokensPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case meanKL = "mean_kl", top1Flips = "top1_flips", msPerToken = "ms_per_token", tokensPerSecond = "tokens_per_second"
        }
    }

    struct Acceptance: Codable {
        var target: String
        var positions: Int
        var sourceGreedyPerPosition: [Double]
        var plannedGreedyPerPosition: [Double]
        var sourceSampledPerPosition: [Double]
        var plannedSampledPerPosition: [Double]
        /// First-order prediction of the planned draft's greedy acceptance at position 1 (`PlanCommand.applied`).
        var predictedGreedyPosition1: Double?
        enum CodingKeys: String, CodingKey {
            case target, positions
            case predictedGreedyPosition1 = "predicted_greedy_position_1"
            case sourceGreedyPerPosition = "source_greedy_per_position", plannedGreedyPerPosition = "planned_greedy_per_position"
            case sourceSampledPerPosition = "source_sampled_per_position", plannedSampledPerPosition = "planned_sampled_per_position"
        }
    }

    struct Applied: Codable {
        var path: String
        var bytes: Int
        var sourceBytes: Int
        var meanKL: Double
        var top1Flips: Double
        var sourceTokensPerSecond: [Double]
        var plannedTokensPerSecond: [Double]
        var acceptance: Acceptance?
        enum CodingKeys: String, CodingKey {
            case path, bytes, acceptance
            case sourceBytes = "source_bytes", meanKL = "mean_kl", top1Flips = "top1_flips"
            case sourceTokensPerSecond = "source_tokens_per_second", plannedTokensPerSecond = "planned_tokens_per_second"
        }
    }

    var model: String
    var device: String
    var pricing: String
    var accuracyBudget: Double
    var positions: Int
    var promptSet: String
    var prompts: Int
    var measurements: [Measurement]
    var checks: [Check]
    /// Layer → type written (layers not named keep the source's types).
    var plan: [String: String]
    var predicted: Prediction
    var sourceMsPerToken: Double
    var applied: Applied?

    enum CodingKeys: String, CodingKey {
        case model, device, pricing, positions, prompts, measurements, checks, plan, predicted, applied
        case accuracyBudget = "accuracy_budget", promptSet = "prompt_set", sourceMsPerToken = "source_ms_per_token"
    }
}
