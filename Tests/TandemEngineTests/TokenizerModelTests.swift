import Foundation
import TandemEngine
import Testing

/// Tokenizer and chat template behaviour on the real model vocabularies.
struct TokenizerModelTests {
    @Test(.enabled(if: TokenizerFixtures.hasSmol, "SmolLM2-135M GGUF absent (tandem models fetch smollm2-135m-instruct)"))
    func smolLM2Metadata() throws {
        let t = try #require(TokenizerFixtures.smol)
        #expect(t.vocabularySize == 49152)
        #expect(t.preTokenizer == .smollm)
        #expect(t.tokenID("<|im_start|>") == 1)
        #expect(t.tokenID("<|im_end|>") == 2)
        #expect(t.eosID == 2)
        #expect(!t.addBOSByDefault)
        #expect(t.isEndOfGeneration(2))
        #expect(t.isEndOfGeneration(0))  // <|endoftext|>
        #expect(!t.isEndOfGeneration(1))
        // Known encodings (from the reference tokenizer).
        #expect(t.encode("Hello world!") == [19556, 905, 17])
    }

    @Test(.enabled(if: TokenizerFixtures.hasQwen, "Qwen2.5-Coder-0.5B GGUF absent (tandem models fetch qwen2.5-coder-0.5b-instruct)"))
    func qwenMetadata() throws {
        let t = try #require(TokenizerFixtures.qwen)
        #expect(t.vocabularySize == 151_936)
        #expect(t.preTokenizer == .qwen2)
        #expect(t.tokenID("<|im_start|>") == 151_644)
        #expect(t.tokenID("<|im_end|>") == 151_645)
        #expect(t.eosID == 151_645)
        #expect(t.isEndOfGeneration(151_645))
        #expect(t.isEndOfGeneration(151_643))  // <|endoftext|>
        #expect(!t.isEndOfGeneration(151_644))
        #expect(t.encode("<|im_start|>user\nHello world! It's 2024 日本語 😀<|im_end|>", parseSpecial: true)
            == [151644, 872, 198, 9707, 1879, 0, 1084, 594, 220, 17, 15, 17, 19, 75402, 21894, 102819, 90316, 151645])
    }

    @Test(.enabled(if: TokenizerFixtures.hasSmol || TokenizerFixtures.hasQwen, "no tokenizer model file present"))
    func roundTrips() throws {
        let texts = TokenizerFixtures.corpus + TokenizerFixtures.fuzzCorpus(count: 300, seed: 3)
        for t in [TokenizerFixtures.smol, TokenizerFixtures.qwen].compactMap({ $0 }) {
            for text in texts {
                #expect(t.decode(t.encode(text)) == text)
                #expect(t.decode(t.encode(text, parseSpecial: true), includeSpecial: true) == text)
            }
        }
    }

    @Test(.enabled(if: TokenizerFixtures.hasQwen, "Qwen2.5-Coder-0.5B GGUF absent"))
    func chatPromptTokens() throws {
        let file = try GGUFFile(path: TokenizerFixtures.qwenPath)
        let t = try Tokenizer(gguf: file)
        let template = try ChatTemplate(gguf: file)
        #expect(template == ChatTemplate.qwen25)
        let prompt = template.render(messages: [.user("Write hello world in Swift.")])
        let ids = t.encode(prompt, parseSpecial: true)
        let start = try #require(t.tokenID("<|im_start|>")), end = try #require(t.tokenID("<|im_end|>"))
        #expect(ids.first == start)
        #expect(ids.filter { $0 == start }.count == 3)  // system, user, assistant
        #expect(ids.filter { $0 == end }.count == 2)
        #expect(Array(ids.suffix(3)) == t.encode("<|im_start|>assistant\n", parseSpecial: true))
        // Without parseSpecial, user text that spells a control token stays plain text.
        #expect(!t.encode("<|im_end|>").contains(end))
    }

    @Test(.enabled(if: TokenizerFixtures.hasSmol, "SmolLM2-135M GGUF absent"))
    func smolLM2TemplateDefault() throws {
        let template = try ChatTemplate(gguf: GGUFFile(path: TokenizerFixtures.smolPath))
        #expect(template == ChatTemplate.smolLM2)
    }

    /// Encoding speed on a large mixed text (prose, code, CJK). The engine is compiled with -O even in
    /// debug builds, so this is representative of release.
    @Test(.enabled(if: TokenizerFixtures.hasQwen, "Qwen2.5-Coder-0.5B GGUF absent"))
    func encodingSpeed() throws {
        let t = try #require(TokenizerFixtures.qwen)
        var text = ""
        var i = 0
        while text.utf8.count < 1_000_000 {
            text += TokenizerFixtures.corpus[i % TokenizerFixtures.corpus.count]
            text += " variable_\(i) = compute(\(i * 7919 % 1000), \"item \(i)\")\n"
            text += "The quick brown fox number \(i) jumps over the lazy dog; café naïve 日本語.\n"
            i += 1
        }
        let clock = ContinuousClock()
        var tokens: [Int32] = []
        let elapsed = clock.measure { tokens = t.encode(text) }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let rate = Double(tokens.count) / seconds
        print(String(format: "tokenizer speed: %d tokens from %d bytes in %.3f s = %.0f tokens/s",
                     tokens.count, text.utf8.count, seconds, rate))
        #expect(t.decode(tokens) == text)

        // A 4k-token prompt must encode well within a request's budget.
        let prompt = String(decoding: Array(text.utf8.prefix(16_000)), as: UTF8.self)
        let promptTime = clock.measure { _ = t.encode(prompt) }
        print("tokenizer: \(t.encode(prompt).count)-token prompt encoded in \(promptTime)")
        #expect(promptTime < .milliseconds(500))
    }
}

struct TokenizerChatTemplateTests {
    @Test func rendersChatML() {
        let template = ChatTemplate(defaultSystemPrompt: nil)
        let out = template.render(
            messages: [.system("Be brief."), .user("Hi"), .assistant("Hello!"), .user("2+2?")],
            addGenerationPrompt: true)
        #expect(out == """
            <|im_start|>system
            Be brief.<|im_end|>
            <|im_start|>user
            Hi<|im_end|>
            <|im_start|>assistant
            Hello!<|im_end|>
            <|im_start|>user
            2+2?<|im_end|>
            <|im_start|>assistant

            """)
    }

    @Test func insertsDefaultSystemPromptOnlyWhenMissing() {
        let qwen = ChatTemplate.qwen25
        #expect(qwen.render(messages: [.user("Hi")], addGenerationPrompt: false) == """
            <|im_start|>system
            You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
            <|im_start|>user
            Hi<|im_end|>

            """)
        #expect(qwen.render(messages: [.system("S"), .user("Hi")], addGenerationPrompt: false)
            == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        #expect(qwen.render(messages: [], addGenerationPrompt: true).hasSuffix("<|im_start|>assistant\n"))
    }

    @Test func extractsDefaultsFromTemplateSources() throws {
        // Qwen-style: escaped newlines, the default in its own literal after the concatenating branch.
        let qwenSource = #"""
            {%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
            {%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}
            """#
        #expect(try ChatTemplate(templateSource: qwenSource) == .qwen25)
        // SmolLM2-style: real newlines inside the literal.
        let smolSource = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
        #expect(try ChatTemplate(templateSource: smolSource) == .smolLM2)
        // ChatML without a default system prompt.
        let plain = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}"
        #expect(try ChatTemplate(templateSource: plain).defaultSystemPrompt == nil)
        #expect(try ChatTemplate(templateSource: nil).defaultSystemPrompt == nil)
        #expect(throws: TokenizerError.self) { try ChatTemplate(templateSource: "[INST] {{ m }} [/INST]") }
    }
}
