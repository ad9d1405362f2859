import Foundation
import TandemWire

// OpenAI-compatible request and response bodies (the subset Tandem serves, plus its extensions).
// Keys are snake_case on the wire (the coders convert).

/// A string or an array of strings (`stop`), or of content parts (`content`).
enum StringOrArray: Decodable, Sendable {
    case one(String)
    case many([String])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self = .one(s)
        } else if let parts = try? c.decode([ContentPart].self) {
            self = .many(parts.compactMap(\.text))
        } else {
            self = .many(try c.decode([String].self))
        }
    }

    var values: [String] {
        switch self {
        case .one(let s): [s]
        case .many(let a): a
        }
    }

    struct ContentPart: Decodable {
        var type: String?
        var text: String?
    }
}

/// `prompt` of /v1/completions: text, a batch of one text, or token ids.
enum PromptInput: Decodable, Sendable {
    case text(String)
    case tokens([Int32])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self = .text(s)
        } else if let ids = try? c.decode([Int32].self) {
            self = .tokens(ids)
        } else if let batch = try? c.decode([String].self) {
            guard batch.count == 1 else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "only one prompt per request is supported")
            }
            self = .text(batch[0])
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "prompt must be a string or an array of token ids")
        }
    }
}

struct ChatMessageIn: Decodable, Sendable {
    var role: String
    var content: StringOrArray?
}

struct StreamOptions: Decodable, Sendable {
    var includeUsage: Bool?
}

/// Sampling and Tandem fields shared by both endpoints.
struct SamplingFields: Decodable, Sendable {
    var model: String?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var minP: Double?
    var repetitionPenalty: Double?
    var seed: Int64?
    var stop: StringOrArray?
    var n: Int?
    var stream: Bool?
    var streamOptions: StreamOptions?
    /// Tandem extension: a ``ServingMode`` spelling (`coupled`, the default; `exact`; `centralized`, no
    /// drafting). Parsed after decoding, so an unknown one is a 400 naming `tandem_mode`.
    var tandemMode: String?
    /// Tandem extension: fixed draft length K.
    var k: Int?
    /// Tandem extension: the edge device that drafts this request (also header `X-Tandem-Device`).
    var tandemDevice: String?
    var sloTtftMs: Double?
    var sloTpotMs: Double?
}

struct ChatCompletionRequest: Decodable, Sendable {
    var messages: [ChatMessageIn]
    var fields: SamplingFields

    init(from decoder: any Decoder) throws {
        enum Keys: String, CodingKey { case messages }
        messages = try decoder.container(keyedBy: Keys.self).decode([ChatMessageIn].self, forKey: .messages)
        fields = try SamplingFields(from: decoder)
    }
}

struct CompletionRequest: Decodable, Sendable {
    var prompt: PromptInput
    var fields: SamplingFields

    init(from decoder: any Decoder) throws {
        enum Keys: String, CodingKey { case prompt }
        prompt = try decoder.container(keyedBy: Keys.self).decode(PromptInput.self, forKey: .prompt)
        fields = try SamplingFields(from: decoder)
    }
}

struct Usage: Encodable, Sendable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int
}

/// Tandem's extension fields on every response.
struct TandemStats: Encodable, Sendable {
    var drafted: Int
    var accepted: Int
    var acceptanceRate: Double?
    var rounds: Int
    var meanAcceptanceLength: Double?
    var mode: ServingMode
    var verifier: String
    var drafter: String
    var ttftMs: Double?
    var tpotMs: Double?
    /// Device drafting time, and the part of it spent on rejected drafts (ms).
    var draftMs: Double
    var wastedDraftMs: Double
    /// Rounds without a draft (the verifier decoded alone).
    var plainRounds: Int
    /// Tokens the verifier proposed by prompt lookup (n-gram) in decode steps, and accepted (docs/design.md §8).
    var lookupProposed: Int
    var lookupAccepted: Int
    /// Rounds whose next draft was drafted ahead during verification, and those confirmed (docs/design.md §7.4).
    var aheadDrafts: Int
    var aheadHits: Int
    var device: String?

    init(_ s: SessionSummary) {
        drafted = s.stats.drafted
        accepted = s.stats.accepted
        acceptanceRate = s.stats.drafted > 0 ? Double(s.stats.accepted) / Double(s.stats.drafted) : nil
        rounds = s.stats.rounds
        meanAcceptanceLength = s.stats.rounds > 0 ? 1 + Double(s.stats.accepted) / Double(s.stats.rounds) : nil
        mode = s.mode
        verifier = s.verifier
        drafter = s.drafter
        ttftMs = s.ttftMs
        tpotMs = s.tpotMs
        draftMs = s.stats.draftMs
        wastedDraftMs = s.stats.wastedDraftMs
        plainRounds = s.stats.plainRounds
        lookupProposed = s.stats.lookupProposed
        lookupAccepted = s.stats.lookupAccepted
        aheadDrafts = s.stats.aheadDrafts
        aheadHits = s.stats.aheadHits
        device = s.device
    }
}

struct ChatMessageOut: Encodable, Sendable {
    var role: String?
    var content: String?
}

struct ChatChoice: Encodable, Sendable {
    var index: Int
    var message: ChatMessageOut?
    var delta: ChatMessageOut?
    var text: String?
    var finishReason: String?
    var logprobs: String?
}

/// Both endpoints' responses and stream chunks (fields that are nil are omitted).
struct CompletionResponse: Encodable, Sendable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [ChatChoice]
    var usage: Usage?
    var tandem: TandemStats?
}

struct ModelList: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "tandem"
    }
    var object = "list"
    var data: [Model]
}

/// `{"error": {"message", "type", "param", "code"}}`. `param` and `code` are always present (null when
/// unset), as OpenAI sends them: clients written against OpenAI read them without checking for the key.
struct OpenAIErrorBody: Encodable, Sendable {
    struct Detail: Encodable, Sendable {
        var message: String
        var type: String
        var param: String?
        var code: String?

        func encode(to encoder: any Encoder) throws {
            enum Keys: String, CodingKey { case message, type, param, code }
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
    }
    var error: Detail
}

enum OpenAICoding {
    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    static func encode<T: Encodable>(_ value: T) -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.withoutEscapingSlashes]
        return (try? e.encode(value)) ?? Data("{}".utf8)
    }
}
