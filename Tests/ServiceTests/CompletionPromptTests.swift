import Foundation
@testable import Gateway
import TandemEngine
import TandemModels
import Testing

/// `/v1/completions` reads special-token text in a prompt as the special tokens, like llama-server and vLLM.
struct CompletionPromptTests {
    static let smolPath = cachedModel(ModelCatalog.smolLM2.fileName)
    static let chatML = "<|im_start|>user\nhi<|im_end|>\n"
    /// Whether python3 can import the reference tokenizer's packages (`gguf`, `tokenizers`).
    static let referenceAvailable: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import gguf, tokenizers"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    @Test(.enabled(if: smolPath != nil, "SmolLM2-135M GGUF absent (make test-models)"))
    func chatMLWrittenAsTextBecomesControlTokens() async throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: try #require(Self.smolPath)))
        let ids = try CompletionPrompt.tokens(.text(Self.chatML), tokenizer: tokenizer)
        // <|im_start|> user \n hi <|im_end|> \n: what llama.cpp's tokenizer gives (was 18 ids as plain text).
        #expect(ids == [1, 4093, 198, 6004, 2, 198])
        #expect(ids.count == 6)
        #expect(ids.first == tokenizer.tokenID("<|im_start|>") && ids[4] == tokenizer.tokenID("<|im_end|>"))
        // A chat request renders the same text and gets the same tokens.
        let chat = tokenizer.encode(ChatTemplate().render(messages: [.user("hi")], addGenerationPrompt: false),
                                    parseSpecial: true)
        #expect(chat == ids)
        // Plain text is unchanged.
        #expect(try CompletionPrompt.tokens(.text("Hello world!"), tokenizer: tokenizer) == [19556, 905, 17])
    }

    /// The same ids from an independent tokenizer (Hugging Face `tokenizers`) built from the GGUF.
    @Test(.enabled(if: smolPath != nil && referenceAvailable,
                   "needs SmolLM2-135M (make test-models) and python3 with gguf + tokenizers"))
    func matchesTheReferenceTokenizer() async throws {
        let path = try #require(Self.smolPath)
        let script = referenceDirectory.appendingPathComponent("tokenizer_reference.py").path
        let (status, output) = try await runProcess(["python3", script, "--gguf", path, "--text", Self.chatML,
                                                     "--parse-special"])
        try #require(status == 0, "Tests/Reference/tokenizer_reference.py failed")
        let reference = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
        let expected = try #require(reference["ids"] as? [Int]).map { Int32($0) }
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: path))
        #expect(try CompletionPrompt.tokens(.text(Self.chatML), tokenizer: tokenizer) == expected)
    }

    @Test(.enabled(if: smolPath != nil, "SmolLM2-135M GGUF absent (make test-models)"))
    func badPromptsAreInvalidRequests() throws {
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: try #require(Self.smolPath)))
        for prompt: PromptInput in [.text(""), .tokens([]), .tokens([-1]), .tokens([Int32(tokenizer.vocabularySize)])] {
            #expect(throws: GatewayError.self) { try CompletionPrompt.tokens(prompt, tokenizer: tokenizer) }
        }
        #expect(try CompletionPrompt.tokens(.tokens([5, 6]), tokenizer: tokenizer) == [5, 6])
    }
}
