// Checks of session-message fields before a service uses them: bad input from the bus gets a per-request
// error reply (docs/protocol.md, "Validation"), never a precondition failure that would take a whole
// batch, or the process, down with it. Each check returns a human-readable problem, or nil when valid.

/// Limits a receiver applies to a message besides its own state (vocabulary, context, service caps).
public struct WireLimits: Sendable, Hashable {
    /// Token ids must be in `0..<vocabularySize`.
    public var vocabularySize: Int
    /// Most tokens a session may hold (the model's context).
    public var contextLength: Int
    /// Most draft tokens in one verify request.
    public var maxDraftTokens: Int
    /// Most decode steps one K = 0 verify request may ask for.
    public var maxDecodeSteps: Int

    public init(vocabularySize: Int, contextLength: Int, maxDraftTokens: Int = 256, maxDecodeSteps: Int = 64) {
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.maxDraftTokens = maxDraftTokens
        self.maxDecodeSteps = maxDecodeSteps
    }

    /// Wall-clock times (deadlines, arrivals) a message may carry, in epoch milliseconds: from 1970 to about the
    /// year 33,000. Finite is not enough: a deadline of -1e308 is finite, and every difference with it overflows
    /// whatever integer it is turned into.
    public static let plausibleTime: ClosedRange<Double> = 0...1e15

    /// The first token outside the vocabulary, described.
    func tokenProblem(_ tokens: [Int32], field: String) -> String? {
        guard let bad = tokens.first(where: { $0 < 0 || Int($0) >= vocabularySize }) else { return nil }
        return "\(field): token id \(bad) is outside the vocabulary (0..<\(vocabularySize))"
    }
}

extension WireSampling {
    /// Temperature, top-k, top-p, min-p and repetition penalty within their meaningful ranges.
    public var problem: String? {
        guard temperature.isFinite, temperature >= 0 else { return "temperature must be a finite number >= 0" }
        guard topK >= 0 else { return "top_k must be >= 0" }
        guard topP.isFinite, topP > 0, topP <= 1 else { return "top_p must be in (0, 1]" }
        guard minP.isFinite, minP >= 0, minP <= 1 else { return "min_p must be in [0, 1]" }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else { return "repetition_penalty must be a finite number > 0" }
        return nil
    }
}

extension SLO {
    /// Both objectives finite and positive (they become deadlines and time budgets).
    public var problem: String? {
        guard ttftMs.isFinite, ttftMs > 0, tpotMs.isFinite, tpotMs > 0 else {
            return "slo: ttft_ms and tpot_ms must be finite numbers > 0"
        }
        return nil
    }
}

extension WireDistribution {
    /// Non-empty, one probability per token, ids inside the vocabulary and distinct, probabilities finite,
    /// non-negative and summing to 1 (within `tolerance`).
    public func problem(vocabularySize: Int, tolerance: Double = 1e-3) -> String? {
        guard !tokens.isEmpty else { return "empty distribution" }
        guard tokens.count == probs.count else { return "\(tokens.count) token ids but \(probs.count) probabilities" }
        guard tokens.count <= vocabularySize else { return "support of \(tokens.count) exceeds the vocabulary" }
        var sum = 0.0
        var seen = Set<Int32>(minimumCapacity: tokens.count)
        for (token, p) in zip(tokens, probs) {
            guard token >= 0, Int(token) < vocabularySize else {
                return "token id \(token) is outside the vocabulary (0..<\(vocabularySize))"
            }
            guard p.isFinite, p >= 0 else { return "probability \(p) of token \(token) is not a finite number >= 0" }
            guard seen.insert(token).inserted else { return "token \(token) appears twice" }
            sum += Double(p)
        }
        guard abs(sum - 1) <= tolerance else { return "probabilities sum to \(sum), not 1" }
        return nil
    }
}

extension VerifyRequest {
    /// Every field a verifier uses, checked against `limits` (the session's own state, such as the position
    /// matching its committed tokens, is checked later, with the session).
    public func problem(_ limits: WireLimits) -> String? {
        guard position >= 1, position <= limits.contextLength else {
            return "position \(position) is outside 1...\(limits.contextLength)"
        }
        guard tokens.count <= limits.maxDraftTokens else {
            return "\(tokens.count) draft tokens exceed the limit of \(limits.maxDraftTokens)"
        }
        if let problem = limits.tokenProblem([lastToken] + tokens, field: "draft") { return problem }
        guard k >= 0, k <= limits.maxDraftTokens else { return "k = \(k) is outside 0...\(limits.maxDraftTokens)" }
        if let steps = decodeSteps, !(1...limits.maxDecodeSteps).contains(steps) {
            return "decode_steps must be in 1...\(limits.maxDecodeSteps)"
        }
        guard WireLimits.plausibleTime.contains(deadline) else {
            return "deadline must be a time in epoch milliseconds (0...\(WireLimits.plausibleTime.upperBound))"
        }
        guard draftMs.isFinite, draftMs >= 0 else { return "draft_ms must be a finite number >= 0" }
        guard distributions.isEmpty || distributions.count == tokens.count else {
            return "\(distributions.count) distributions for \(tokens.count) draft tokens"
        }
        for (i, (token, distribution)) in zip(tokens, distributions).enumerated() {
            if let problem = distribution.problem(vocabularySize: limits.vocabularySize) {
                return "distribution \(i): \(problem)"
            }
            guard let at = distribution.tokens.firstIndex(of: token), distribution.probs[at] > 0 else {
                return "distribution \(i): draft token \(token) has no probability in the distribution it was drawn from"
            }
        }
        return nil
    }
}

extension SessionOpen {
    /// Tokens, prompt length, capacity, sampling and SLO of a session a verifier is asked to open.
    public func problem(_ limits: WireLimits) -> String? {
        guard !tokens.isEmpty else { return "session_open needs at least one token" }
        guard tokens.count <= limits.contextLength else {
            return "\(tokens.count) tokens exceed the model's context of \(limits.contextLength)"
        }
        if let problem = limits.tokenProblem(tokens, field: "tokens") { return problem }
        guard promptLength >= 1, promptLength <= tokens.count else {
            return "prompt_length \(promptLength) is outside 1...\(tokens.count)"
        }
        guard capacity >= 0 else { return "capacity must be >= 0" }
        if let selfDrive, selfDrive.maxTokens < 1 { return "self_drive.max_tokens must be at least 1" }
        // The first tokens are decode steps the verifier sends itself: the same bound as `decode_steps`.
        if let firstTokens, !(0...limits.maxDecodeSteps).contains(firstTokens) {
            return "first_tokens = \(firstTokens) is outside 0...\(limits.maxDecodeSteps)"
        }
        return sampling.problem ?? slo.problem
    }
}

extension SessionStart {
    /// Prompt, history, limits, draft length, sampling and SLO of a session a drafter is asked to run.
    public func problem(_ limits: WireLimits) -> String? {
        guard !promptTokens.isEmpty else { return "session_start needs a non-empty prompt" }
        guard maxTokens >= 1 else { return "max_tokens must be at least 1" }
        guard promptTokens.count + generated.count <= limits.contextLength else {
            return "\(promptTokens.count + generated.count) tokens exceed the model's context of \(limits.contextLength)"
        }
        if let problem = limits.tokenProblem(promptTokens, field: "prompt") { return problem }
        if let problem = limits.tokenProblem(generated, field: "generated") { return problem }
        if let k, !(0...limits.maxDraftTokens).contains(k) { return "k = \(k) is outside 0...\(limits.maxDraftTokens)" }
        guard WireLimits.plausibleTime.contains(arrivedAt) else {
            return "arrived_at must be a time in epoch milliseconds (0...\(WireLimits.plausibleTime.upperBound))"
        }
        guard !verifierEndpoint.isEmpty else { return "session_start needs a verifier endpoint" }
        return sampling.problem ?? slo.problem
    }
}

extension TokenReport {
    /// Most generated tokens a report may place (its offset and its tokens): far past any context, and far
    /// from any integer's range.
    public static let maxOffset = 1 << 31

    /// A report as the gateway checks it before it touches the session's history: offset and token count
    /// in range (so `offset + tokens.count` and `history - offset` cannot overflow), token ids inside the
    /// vocabulary (when known), and counters that are non-negative and finite (they feed metrics counters).
    public func problem(vocabularySize: Int?) -> String? {
        guard offset >= 0, offset <= Self.maxOffset else { return "offset \(offset) is outside 0...\(Self.maxOffset)" }
        guard tokens.count <= Self.maxOffset else { return "\(tokens.count) tokens exceed the limit" }
        if let vocabularySize, let bad = tokens.first(where: { $0 < 0 || Int($0) >= vocabularySize }) {
            return "token id \(bad) is outside the vocabulary (0..<\(vocabularySize))"
        }
        let s = stats
        guard [s.drafted, s.accepted, s.rounds, s.plainRounds, s.lookupProposed, s.lookupAccepted, s.aheadDrafts,
               s.aheadHits].allSatisfy({ $0 >= 0 }) else {
            return "stats: counts must be >= 0"
        }
        guard s.draftMs.isFinite, s.draftMs >= 0, s.wastedDraftMs.isFinite, s.wastedDraftMs >= 0 else {
            return "stats: draft_ms and wasted_draft_ms must be finite numbers >= 0"
        }
        return nil
    }
}

extension VerifyResult {
    /// A verifier's answer as the drafter that asked checks it: for its session and position, tokens inside
    /// the vocabulary, at least one and at most `maxTokens`, and `accepted` at most the `drafted` tokens.
    public func problem(session expected: SessionID, position expectedPosition: Int, drafted: Int, maxTokens: Int,
                        vocabularySize: Int) -> String? {
        guard session == expected else { return "result for session \(session), expected \(expected)" }
        guard position == expectedPosition else { return "result for position \(position), expected \(expectedPosition)" }
        guard !tokens.isEmpty, tokens.count <= maxTokens else {
            return "\(tokens.count) result tokens, expected 1...\(maxTokens)"
        }
        guard accepted >= 0, accepted <= drafted, accepted < tokens.count || drafted == 0 else {
            return "accepted = \(accepted) with \(drafted) drafts and \(tokens.count) tokens"
        }
        // The timings feed the drafter's cost model and round-trip estimate.
        let t = timings
        guard t.queueMs.isFinite, t.queueMs >= 0, t.batchMs.isFinite, t.batchMs >= 0,
              [t.batchSequences, t.batchTokens, t.batchContextTokens ?? 0, t.prefillTokens ?? 0,
               lookupProposed ?? 0, lookupAccepted ?? 0].allSatisfy({ $0 >= 0 }) else {
            return "timings and counts must be finite and >= 0"
        }
        if let problem = t.costCurve?.problem { return problem }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= vocabularySize }) {
            return "token id \(bad) is outside the vocabulary (0..<\(vocabularySize))"
        }
        return nil
    }
}
