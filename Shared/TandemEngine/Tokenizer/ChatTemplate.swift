/// One message of a chat conversation.
public struct ChatMessage: Sendable, Hashable, Codable {
    /// `system`, `user`, `assistant` (other roles are rendered verbatim).
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// The ChatML prompt format used by Qwen2.5 and SmolLM2:
/// `<|im_start|>role\ncontent<|im_end|>\n` per message, then `<|im_start|>assistant\n` to prompt a reply.
///
/// Rather than running the Jinja template stored in the model, Tandem renders ChatML directly and reads
/// from the stored template only what differs between models: the system prompt inserted when the
/// conversation does not start with one (Qwen: "You are Qwen, created by Alibaba Cloud. ...";
/// SmolLM2: "You are a helpful AI assistant named SmolLM, ..."). Encode the result with
/// `parseSpecial: true` so the markers become control tokens.
public struct ChatTemplate: Sendable, Hashable {
    /// System prompt inserted before the first message when it is not a system message (nil: none).
    public var defaultSystemPrompt: String?

    public init(defaultSystemPrompt: String? = nil) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Builds the template from a model's `tokenizer.chat_template` source.
    ///
    /// Throws if the template is not ChatML. A missing template gives plain ChatML without a default
    /// system prompt.
    public init(templateSource: String?) throws {
        guard let source = templateSource else {
            self.init(defaultSystemPrompt: nil)
            return
        }
        guard source.contains("<|im_start|>") else {
            throw TokenizerError("chat template is not ChatML (no <|im_start|>); only ChatML models are supported")
        }
        self.init(defaultSystemPrompt: ChatTemplate.extractDefaultSystemPrompt(source))
    }

    /// Qwen2.5's template default.
    public static let qwen25 = ChatTemplate(
        defaultSystemPrompt: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    /// SmolLM2's template default.
    public static let smolLM2 = ChatTemplate(
        defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")

    /// Renders the conversation as a prompt string.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var out = ""
        if let defaultSystemPrompt, messages.first?.role != "system" {
            append(ChatMessage.system(defaultSystemPrompt), to: &out)
        }
        for message in messages { append(message, to: &out) }
        if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        return out
    }

    private func append(_ message: ChatMessage, to out: inout String) {
        out += "<|im_start|>"
        out += message.role
        out += "\n"
        out += message.content
        out += "<|im_end|>\n"
    }

    /// Finds the literal default system turn in a ChatML Jinja template: the text between
    /// `<|im_start|>system` + newline and `<|im_end|>` inside one string literal (so that the
    /// `'<|im_start|>system\n' + messages[0]['content']` branch is not mistaken for it).
    static func extractDefaultSystemPrompt(_ source: String) -> String? {
        let marker = "<|im_start|>system"
        var searchFrom = source.startIndex
        while let found = source[searchFrom...].firstRange(of: marker) {
            searchFrom = found.upperBound
            var rest = source[found.upperBound...]
            // The newline is either a real newline or a Jinja escape `\n` in the template source.
            if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix("\n") {
                rest = rest.dropFirst(1)
            } else {
                continue
            }
            guard let end = rest.firstRange(of: "<|im_end|>") else { continue }
            let body = rest[..<end.lowerBound]
            // Must be one literal: no closing quote or concatenation in between.
            if body.isEmpty || body.contains("'") || body.contains("\"") || body.contains("{{") || body.contains("+") {
                continue
            }
            return body.split(separator: "\\n", omittingEmptySubsequences: false).joined(separator: "\n")
        }
        return nil
    }
}
