import TandemEngine

/// How `/v1/completions` turns its `prompt` into token ids.
enum CompletionPrompt {
    /// The prompt's tokens.
    ///
    /// Text is encoded with special-token parsing: a client that applies the chat template itself
    /// writes `<|im_start|>` and `<|im_end|>` as text and means the control tokens, which is how
    /// llama-server and vLLM read a completion prompt (`<|im_start|>user\nhi<|im_end|>\n` is 6 tokens
    /// on SmolLM2, not the 18 of its spelling). The client owns the whole prompt here, so there is no
    /// other party whose text could inject control tokens. Token ids must lie in the vocabulary.
    static func tokens(_ prompt: PromptInput, tokenizer: Tokenizer) throws(GatewayError) -> [Int32] {
        let tokens: [Int32]
        switch prompt {
        case .text(let text):
            tokens = tokenizer.encode(text, parseSpecial: true)
        case .tokens(let ids):
            let vocab = Int32(tokenizer.vocabularySize)
            guard ids.allSatisfy({ $0 >= 0 && $0 < vocab }) else {
                throw .invalid("token ids must be in 0..<\(vocab)", param: "prompt")
            }
            tokens = ids
        }
        guard !tokens.isEmpty else { throw .invalid("prompt must not be empty", param: "prompt") }
        return tokens
    }
}
