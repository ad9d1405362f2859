import TandemModels
import TandemSpeculative

/// What the advisor assumes when the metrics-store has no measurement.
///
/// The numbers are for this machine class (x86-64, 2 threads, AVX2) from `docs/models.md`:
/// - drafting speed = llama.cpp single-token decode speed (Qwen2.5-Coder-0.5B 61 tok/s,
///   SmolLM2-135M 166 tok/s), scaled by the device's `computeThrottle`;
/// - verification time of K+1 positions = a line through the measured single-token decode and the
///   5-position verification of the target (1.5B: ~30 ms and ~108 ms → 10.5 ms + 19.5 ms/position;
///   SmolLM2-135M: 6 ms and 8 tokens in 27.6 ms → 2.9 ms + 3.1 ms/position);
/// - acceptance: Qwen 0.5B → 1.5B measured 88% on code and ~30% on prose with llama.cpp: 0.6 as a
///   middle; SmolLM2 drafting for itself (tests): 0.9; any other compatible pair: `defaultAcceptance`;
/// - power: the device's declared `powerWatts` times a per-model factor (a smaller drafter keeps
///   fewer cores/memory busy: 0.8 for the 135M model). These factors are guesses, not measurements.
///
/// Pairs whose tokenizers differ (SmolLM2 vs Qwen) cannot draft for each other and are never
/// recommended.
struct AdvisorPriors: Sendable {
    struct Draft: Sendable, Hashable {
        var quantization: String
        /// Unthrottled drafting speed, tokens/s.
        var tokensPerSecond: Double
        /// Multiplier on the device's declared power while drafting with this model.
        var powerFactor: Double
        var tokenizer: String
    }

    struct Pair: Sendable, Hashable {
        var draft: String
        var target: String
    }

    /// By canonical model name.
    var drafts: [String: Draft]
    /// Tokenizer family of known targets (compatibility check).
    var targetTokenizers: [String: String]
    var acceptance: [Pair: Double]
    var defaultAcceptance: Double
    /// Verification time vs K by canonical target name.
    var verify: [String: VerifyTimeModel]
    var defaultVerify: VerifyTimeModel
    /// Speed assumed for a draft model with neither profile nor prior.
    var defaultTokensPerSecond: Double
    var defaultQuantization: String
    /// K assumed behind a measured mean batch latency when no round says which K was used.
    var typicalK: Int

    static let standard: AdvisorPriors = {
        let qwenTarget = ModelCatalog.qwen25Coder15B.name
        let qwenDraft = ModelCatalog.qwen25Coder05B.name
        let smol = ModelCatalog.smolLM2.name
        let qwenVerify = VerifyTimeModel(fixedSeconds: 0.0105, perTokenSeconds: 0.0195)
        return AdvisorPriors(
            drafts: [
                qwenDraft: Draft(quantization: "Q4_K/Q5_0/Q6_K/Q8_0", tokensPerSecond: 61, powerFactor: 1,
                                 tokenizer: "qwen2"),
                smol: Draft(quantization: "Q4_1", tokensPerSecond: 166, powerFactor: 0.8, tokenizer: "smollm2"),
            ],
            targetTokenizers: [qwenTarget: "qwen2", qwenDraft: "qwen2", smol: "smollm2"],
            acceptance: [Pair(draft: qwenDraft, target: qwenTarget): 0.6, Pair(draft: smol, target: smol): 0.9],
            defaultAcceptance: 0.5,
            verify: [qwenTarget: qwenVerify,
                     smol: VerifyTimeModel(fixedSeconds: 0.0029, perTokenSeconds: 0.0031)],
            defaultVerify: qwenVerify,
            defaultTokensPerSecond: 60,
            defaultQuantization: "unknown",
            typicalK: 4)
    }()

    /// False when both tokenizer families are known and differ.
    func compatible(draft: String, target: String) -> Bool {
        guard let d = drafts[draft]?.tokenizer, let t = targetTokenizers[target] else { return true }
        return d == t
    }

    func acceptance(draft: String, target: String) -> Double {
        acceptance[Pair(draft: draft, target: target)] ?? defaultAcceptance
    }

    func verifyModel(target: String) -> VerifyTimeModel {
        verify[target] ?? defaultVerify
    }

    /// Prior drafts that can draft for `target`, in name order.
    func draftCandidates(target: String) -> [String] {
        drafts.keys.filter { compatible(draft: $0, target: target) }.sorted()
    }
}
