import Foundation
import TandemWire

/// What the real draft model proposes at every prefix of the target model's own output, recorded once
/// (`tandem fleet record`) so that emulated edge devices can replay it exactly (docs/fleet.md).
///
/// Why replay is exact: in greedy and `coupled` modes the committed sequence of a session is always a
/// prefix of the target-only output (verification is lossless and deterministic given the seed), so
/// every prefix a real drafter ever drafts from is one of the recorded prefixes, and the engine is
/// batch-invariant, so the draft model's tokens there do not depend on how the prefix was fed.
/// The speculation controller still decides how many of the `kMax` recorded drafts to send, from the
/// recorded confidences, exactly as it does on a real device.
public struct FleetTrace: Codable, Sendable {
    public static let currentSchema = "tandem.fleet-trace/1"

    public struct Message: Codable, Sendable, Hashable {
        public var role: String
        public var content: String
        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    /// One prompt: its chat messages and tokens, the target-only output, and the drafts.
    public struct Entry: Codable, Sendable {
        public var id: String
        public var messages: [Message]
        public var promptTokens: [Int32]
        /// The target model's output alone (what every lossless session produces), end-of-generation included.
        public var output: [Int32]
        /// `drafts[i]`: the draft model's next `kMax` tokens after `prompt + output[0..<i]`.
        public var drafts: [[Int32]]
        /// The drafter's confidence in each of those tokens (what the controller's early stop reads).
        public var confidences: [[Float]]

        public init(id: String, messages: [Message], promptTokens: [Int32], output: [Int32], drafts: [[Int32]],
                    confidences: [[Float]]) {
            self.id = id
            self.messages = messages
            self.promptTokens = promptTokens
            self.output = output
            self.drafts = drafts
            self.confidences = confidences
        }

        enum CodingKeys: String, CodingKey {
            case id, messages, output, drafts, confidences
            case promptTokens = "prompt_tokens"
        }
    }

    public var schema: String
    public var draftModel: String
    public var targetModel: String
    public var promptSet: String
    public var maxTokens: Int
    public var kMax: Int
    /// Sampling the trace was recorded with (temperature 0 = greedy); sessions must use the same.
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var seed: UInt64
    /// Token ids that end a generation (so an emulated drafter needs no tokenizer).
    public var endOfGeneration: [Int32]
    public var contextLength: Int
    public var recordedAt: String
    public var recordSeconds: Double
    public var entries: [Entry]

    public init(draftModel: String, targetModel: String, promptSet: String, maxTokens: Int, kMax: Int,
                temperature: Float, topK: Int, topP: Float, seed: UInt64, endOfGeneration: [Int32], contextLength: Int,
                recordedAt: String, recordSeconds: Double, entries: [Entry]) {
        self.schema = Self.currentSchema
        self.draftModel = draftModel
        self.targetModel = targetModel
        self.promptSet = promptSet
        self.maxTokens = maxTokens
        self.kMax = kMax
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.endOfGeneration = endOfGeneration
        self.contextLength = contextLength
        self.recordedAt = recordedAt
        self.recordSeconds = recordSeconds
        self.entries = entries
    }

    enum CodingKeys: String, CodingKey {
        case schema, temperature, seed, entries
        case draftModel = "draft_model", targetModel = "target_model", promptSet = "prompt_set"
        case maxTokens = "max_tokens", kMax = "k_max", topK = "top_k", topP = "top_p"
        case endOfGeneration = "end_of_generation", contextLength = "context_length"
        case recordedAt = "recorded_at", recordSeconds = "record_seconds"
    }

    public static func load(path: String) throws -> FleetTrace {
        let trace = try JSONFile.decode(FleetTrace.self, path: path, what: "fleet trace", error: TraceError.init)
        try trace.validate()
        return trace
    }

    public func write(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Checks the shape a replay relies on (one draft row per output prefix, `kMax` drafts each).
    public func validate() throws {
        guard schema == Self.currentSchema else { throw TraceError("schema '\(schema)', expected '\(Self.currentSchema)'") }
        guard kMax >= 1 else { throw TraceError("k_max must be at least 1") }
        for e in entries {
            guard !e.promptTokens.isEmpty, e.drafts.count == e.output.count, e.confidences.count == e.output.count,
                  zip(e.drafts, e.confidences).allSatisfy({ $0.count == kMax && $1.count == kMax }) else {
                throw TraceError("entry \(e.id): drafts/confidences do not match the output (\(e.output.count) tokens, k_max \(kMax))")
            }
        }
    }

    public struct TraceError: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = "fleet trace: " + description }
    }
}

/// Finds the recorded drafts for a session's committed sequence.
public struct FleetTraceIndex: Sendable {
    public let trace: FleetTrace
    private let byPrompt: [[Int32]: Int]

    public init(_ trace: FleetTrace) {
        self.trace = trace
        var index: [[Int32]: Int] = [:]
        for (i, e) in trace.entries.enumerated() { index[e.promptTokens] = i }
        byPrompt = index
    }

    /// The entry recorded for this prompt, if any.
    public func entry(prompt: [Int32]) -> FleetTrace.Entry? {
        byPrompt[prompt].map { trace.entries[$0] }
    }

    /// Whether a session's sampling is the one the trace was recorded with (else its drafts differ).
    public func matches(temperature: Float, topK: Int, topP: Float, seed: UInt64) -> Bool {
        if trace.temperature == 0 { return temperature == 0 }
        return temperature == trace.temperature && topK == trace.topK && topP == trace.topP && seed == trace.seed
    }

    /// The drafts after `prompt + generated`, when `generated` is a recorded prefix of the target output.
    public func drafts(entry: FleetTrace.Entry, generated: ArraySlice<Int32>) -> (tokens: [Int32], confidences: [Float])? {
        let i = generated.count
        guard i < entry.output.count, entry.output[0..<i].elementsEqual(generated) else { return nil }
        return (entry.drafts[i], entry.confidences[i])
    }
}
