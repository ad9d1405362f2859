import Foundation

/// How well one draft model (variant) agrees with one target model, measured offline over a prompt set by
/// `tandem profile --pair` (``AlignmentProfiler``). Schema `tandem.alignment-profile/1`, documented in
/// docs/alignment.md.
///
/// It exists because the advisor has to choose among draft *variants* (the shipped draft and its
/// requantisations) before any of them has served a session: the live acceptance in the metrics-store
/// only exists for the variant a drafter already runs. Everything here is measured along the target's
/// own greedy continuation of each prompt, so every variant is scored on the same token sequences.
public struct AlignmentProfile: Codable, Sendable, Hashable {
    public static let currentSchema = "tandem.alignment-profile/1"

    /// Acceptance of drafts of one kind (greedy or sampled), per draft position and per K.
    public struct Acceptance: Codable, Sendable, Hashable {
        /// Conditional acceptance of draft position j (0-based) given positions < j were accepted:
        /// the `a_j` of docs/design.md's per-position formula `E[tokens] = 1 + Σ_j Π_{i≤j} a_i`.
        public var perPosition: [Double]
        /// Unconditional probability that positions 0...j were all accepted (what the metrics-store's
        /// `acceptance` query reports per position).
        public var perPositionUnconditional: [Double]
        /// One row per K = 1 ... kMax, averaged over every round start with K tokens left in the output.
        public var perK: [PerK]

        public init(perPosition: [Double], perPositionUnconditional: [Double], perK: [PerK]) {
            self.perPosition = perPosition
            self.perPositionUnconditional = perPositionUnconditional
            self.perK = perK
        }

        enum CodingKeys: String, CodingKey {
            case perPosition = "per_position"
            case perPositionUnconditional = "per_position_unconditional"
            case perK = "per_k"
        }

        /// Expected tokens emitted per round with draft length `k` from the position curve (the last measured
        /// position's acceptance is carried beyond the curve).
        public func expectedTokens(draftLength k: Int) -> Double {
            SpeculationMath.expectedTokensPerRound(positionAcceptance: perPosition, draftLength: k)
        }
    }

    public struct PerK: Codable, Sendable, Hashable {
        public var k: Int
        /// Round starts averaged (output positions with at least K tokens after them).
        public var rounds: Int
        /// Mean accepted drafts per round.
        public var acceptedPerRound: Double
        /// `1 + acceptedPerRound`: accepted drafts plus the verifier's correction/bonus token.
        public var tokensPerRound: Double
        /// `acceptedPerRound / k`.
        public var acceptanceRate: Double

        public init(k: Int, rounds: Int, acceptedPerRound: Double) {
            self.k = k
            self.rounds = rounds
            self.acceptedPerRound = acceptedPerRound
            self.tokensPerRound = 1 + acceptedPerRound
            self.acceptanceRate = k > 0 ? acceptedPerRound / Double(k) : 0
        }

        enum CodingKeys: String, CodingKey {
            case k, rounds
            case acceptedPerRound = "accepted_per_round"
            case tokensPerRound = "tokens_per_round"
            case acceptanceRate = "acceptance_rate"
        }
    }

    public var schema: String
    /// The draft variant as loaded (catalog name or file name), its dominant weight type and file size.
    public var draftModel: String
    public var draftQuantization: String
    public var draftBytes: Int?
    public var targetModel: String
    public var targetQuantization: String
    /// Prompt set, prompts used, tokens generated per prompt, largest K scored.
    public var promptSet: String
    public var prompts: Int
    public var maxTokens: Int
    public var kMax: Int
    /// Target tokens scored (all prompts' outputs).
    public var positions: Int
    /// Greedy drafting: draft position j is accepted when the draft's argmax equals the target's token.
    public var greedy: Acceptance
    /// Temperature of `sampled` (and nothing else: KL and perplexity are at temperature 1).
    public var temperature: Double
    /// Sampled drafting under the lossless rule: position acceptance `Σ_x min(p(x), q(x))` at `temperature`.
    public var sampled: Acceptance
    /// Mean over positions of `D(target || draft)` at temperature 1, nats.
    public var klDivergence: Double
    /// Largest per-position KL seen, nats.
    public var klMax: Double
    /// The draft's perplexity on the target's outputs, and the target's own (its floor).
    public var draftPerplexity: Double
    public var targetPerplexity: Double
    /// Draft decode speed on the machine that ran the profile (batch 1, greedy, after a prompt).
    public var draftTokensPerSecond: Double
    /// What was measured where: host, date, build, threads.
    public var source: String

    public init(draftModel: String, draftQuantization: String, draftBytes: Int?, targetModel: String,
                targetQuantization: String, promptSet: String, prompts: Int, maxTokens: Int, kMax: Int,
                positions: Int, greedy: Acceptance, temperature: Double, sampled: Acceptance, klDivergence: Double,
                klMax: Double, draftPerplexity: Double, targetPerplexity: Double, draftTokensPerSecond: Double,
                source: String) {
        self.schema = Self.currentSchema
        self.draftModel = draftModel
        self.draftQuantization = draftQuantization
        self.draftBytes = draftBytes
        self.targetModel = targetModel
        self.targetQuantization = targetQuantization
        self.promptSet = promptSet
        self.prompts = prompts
        self.maxTokens = maxTokens
        self.kMax = kMax
        self.positions = positions
        self.greedy = greedy
        self.temperature = temperature
        self.sampled = sampled
        self.klDivergence = klDivergence
        self.klMax = klMax
        self.draftPerplexity = draftPerplexity
        self.targetPerplexity = targetPerplexity
        self.draftTokensPerSecond = draftTokensPerSecond
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case schema, greedy, sampled, temperature, positions, prompts, source
        case draftModel = "draft_model"
        case draftQuantization = "draft_quantization"
        case draftBytes = "draft_bytes"
        case targetModel = "target_model"
        case targetQuantization = "target_quantization"
        case promptSet = "prompt_set"
        case maxTokens = "max_tokens"
        case kMax = "k_max"
        case klDivergence = "kl_divergence"
        case klMax = "kl_max"
        case draftPerplexity = "draft_perplexity"
        case targetPerplexity = "target_perplexity"
        case draftTokensPerSecond = "draft_tokens_per_second"
    }

    /// Checks what a reader relies on; the message names the field.
    public func validate() throws(AlignmentProfileError) {
        guard schema == Self.currentSchema else {
            throw AlignmentProfileError("schema is '\(schema)', expected '\(Self.currentSchema)'")
        }
        guard !draftModel.isEmpty, !targetModel.isEmpty else { throw AlignmentProfileError("draft_model/target_model empty") }
        guard kMax >= 1, greedy.perPosition.count == kMax, sampled.perPosition.count == kMax else {
            throw AlignmentProfileError("per_position must have k_max (\(kMax)) entries")
        }
        let all = greedy.perPosition + sampled.perPosition
        guard all.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else {
            throw AlignmentProfileError("per_position acceptance must be in [0, 1]")
        }
        guard draftTokensPerSecond.isFinite, draftTokensPerSecond > 0 else {
            throw AlignmentProfileError("draft_tokens_per_second must be positive")
        }
    }

    /// A file holds one profile or a list of them (`tandem profile --pair` with several drafts writes a list).
    public static func load(path: String) throws -> [AlignmentProfile] {
        let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw AlignmentProfileError("cannot read \(url.path): \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        let profiles: [AlignmentProfile]
        if let list = try? decoder.decode([AlignmentProfile].self, from: data) {
            profiles = list
        } else {
            do { profiles = [try decoder.decode(AlignmentProfile.self, from: data)] } catch {
                throw AlignmentProfileError("\(url.path) is not an alignment profile: \(error)")
            }
        }
        guard !profiles.isEmpty else { throw AlignmentProfileError("\(url.path) holds no profiles") }
        for p in profiles {
            do { try p.validate() } catch { throw AlignmentProfileError("\(url.path): \(error.description)") }
        }
        return profiles
    }

    /// Writes profiles as a JSON list (sorted keys, so files diff well).
    public static func write(_ profiles: [AlignmentProfile], path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(profiles)
        data.append(0x0A)
        try data.write(to: URL(fileURLWithPath: (path as NSString).expandingTildeInPath), options: .atomic)
    }
}

public struct AlignmentProfileError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = "alignment profile: " + description }
}

/// Accumulates per-token acceptance scores into per-position and per-K acceptance.
///
/// A round starting at output position `i` drafts positions `i, i+1, ...`. Scored along the target's own
/// continuation, draft j of that round is accepted with probability `Π_{l≤j} s[i+l]` where `s[t]` is the
/// score of output position t: for greedy drafting the indicator "draft argmax = target token" (once the
/// first j drafts matched, the draft's context *is* the target's, so the teacher-forced argmax is exactly
/// what it would draft); for sampled drafting `Σ_x min(p, q)` at that position, the lossless rule's
/// acceptance probability (an approximation past the first position: an accepted sampled draft need not
/// be the target's greedy token, so later contexts can differ).
public struct AcceptanceAccumulator: Sendable {
    public let kMax: Int
    private var accepted: [Double]
    private var reached: [Double]
    private var starts: [Int]
    private var perKAccepted: [Double]
    private var perKRounds: [Int]

    public init(kMax: Int) {
        self.kMax = kMax
        accepted = Array(repeating: 0, count: kMax)
        reached = Array(repeating: 0, count: kMax)
        starts = Array(repeating: 0, count: kMax)
        perKAccepted = Array(repeating: 0, count: kMax)
        perKRounds = Array(repeating: 0, count: kMax)
    }

    /// Adds one output sequence's scores (`scores[t]` in [0, 1] for output position t).
    public mutating func add(scores s: [Double]) {
        let n = s.count
        for i in 0..<n {
            var survive = 1.0
            var cumulative = 0.0
            for j in 0..<min(kMax, n - i) {
                reached[j] += survive
                survive *= s[i + j]
                accepted[j] += survive
                starts[j] += 1
                cumulative += survive
                // A K-token round from i exists when i + K <= n.
                perKAccepted[j] += cumulative
                perKRounds[j] += 1
            }
        }
    }

    public var result: AlignmentProfile.Acceptance {
        let conditional = (0..<kMax).map { j in reached[j] > 0 ? min(max(accepted[j] / reached[j], 0), 1) : 0 }
        let unconditional = (0..<kMax).map { j in starts[j] > 0 ? accepted[j] / Double(starts[j]) : 0 }
        let perK = (0..<kMax).map { j in
            AlignmentProfile.PerK(k: j + 1, rounds: perKRounds[j],
                                  acceptedPerRound: perKRounds[j] > 0 ? perKAccepted[j] / Double(perKRounds[j]) : 0)
        }
        return AlignmentProfile.Acceptance(perPosition: conditional, perPositionUnconditional: unconditional, perK: perK)
    }
}
