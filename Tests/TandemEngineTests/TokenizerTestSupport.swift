import Foundation
import TandemEngine
import TandemModels

/// Model files and the Python reference tokenizer for the tokenizer tests.
enum TokenizerFixtures {
    static var modelDirectory: String {
        if let d = ProcessInfo.processInfo.environment["TANDEM_MODELS"], !d.isEmpty { return d }
        return NSHomeDirectory() + "/.cache/tandem/models"
    }

    static let smolPath = modelDirectory + "/" + ModelCatalog.smolLM2.fileName
    static let qwenPath = modelDirectory + "/" + ModelCatalog.qwen25Coder05B.fileName

    static var hasSmol: Bool { FileManager.default.fileExists(atPath: smolPath) }
    static var hasQwen: Bool { FileManager.default.fileExists(atPath: qwenPath) }

    /// Loaded once per test process (building a 150k-token tokenizer takes a moment).
    static let smol: Tokenizer? = hasSmol ? (try? Tokenizer(gguf: GGUFFile(path: smolPath))) : nil
    static let qwen: Tokenizer? = hasQwen ? (try? Tokenizer(gguf: GGUFFile(path: qwenPath))) : nil

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var referenceScript: URL {
        repositoryRoot.appendingPathComponent("Tests/Reference/tokenizer_reference.py")
    }

    /// Whether `python3` can import the reference tokenizer's dependencies (`gguf`, `tokenizers`).
    static let referenceAvailable: Bool = {
        let status = try? runProcess(["python3", "-c", "import gguf, tokenizers"])
        if status != 0 {
            print("NOTE: python3 with `gguf` and `tokenizers` is unavailable; reference tokenizer comparisons are skipped")
        }
        return status == 0
    }()

    @discardableResult
    static func runProcess(_ arguments: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0, let text = String(data: data, encoding: .utf8), !text.isEmpty {
            print("process \(arguments.prefix(2)) failed: \(text.suffix(2000))")
        }
        return p.terminationStatus
    }

    struct ReferenceBatch: Decodable {
        var ids: [[Int32]]
        var decoded: [String]
    }

    struct ReferenceResult: Decodable {
        var pre: String
        var batches: [ReferenceBatch]
    }

    /// Encodes batches of texts (each with its own `parseSpecial`) with the Python reference tokenizer
    /// built from the same GGUF file, in one run (loading a 150k vocabulary in Python is slow).
    static func reference(gguf: String, batches: [(texts: [String], parseSpecial: Bool)]) throws -> ReferenceResult {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-ref-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.json"), output = dir.appendingPathComponent("out.json")
        let request: [String: Any] = [
            "batches": batches.map { ["texts": $0.texts, "parse_special": $0.parseSpecial] as [String: Any] }
        ]
        try JSONSerialization.data(withJSONObject: request).write(to: input)
        let status = try runProcess(["python3", referenceScript.path, "--gguf", gguf, "--input", input.path,
                                     "--output", output.path])
        guard status == 0 else { throw TokenizerError("reference tokenizer exited with \(status)") }
        return try JSONDecoder().decode(ReferenceResult.self, from: Data(contentsOf: output))
    }

    /// Texts covering the pre-tokenizer's corner cases.
    static let corpus: [String] = [
        "Hello world!",
        "It's a dog's life; they'll say we've been I'M DONE 'LL 'S 'Re",
        "  leading spaces and trailing spaces   ",
        "tabs\tand\t\tmore\ttabs \t mixed",
        "line one\nline two\r\nline three\n\n\n  indented\n\t\ttabbed\n",
        "numbers 1 12 123 1234 12345 3.14159 -42 1e10 0x1F ²³ Ⅻ ١٢٣",
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
        "func main() {\n\tlet x = [1, 2, 3].map { $0 * 2 }\n\tprint(\"\\(x)\") // done\n}\n",
        "<html><body class=\"a-b\">Tom &amp; Jerry's</body></html>",
        "日本語のテキストと中文文本，还有한국어 텍스트。",
        "Emoji: 😀👍🏽👨‍👩‍👧‍👦 🇫🇷 ❤️ done",
        "Ünïcödé àccents: naïve café résumé Ελληνικά Русский текст",
        "combining: e\u{301} a\u{308} n\u{303}",
        "nbsp:\u{00A0}x ideographic:\u{3000}y zwsp:\u{200B}z ls:\u{2028}end",
        "punctuation!!! ??? ... --- *** ((( ))) {{{ }}} ;;; ::",
        "mixed123abc456 abc_def-ghi.jkl/mno\\pqr",
        "    ",
        " ",
        "\n",
        "a",
        "",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|> and <tool_call>{\"name\": \"f\"}</tool_call>",
        String(repeating: " ", count: 200) + "x" + String(repeating: "\n", count: 70),
        String(repeating: "ab", count: 150),
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "QmFzZTY0RW5jb2RlZFN0cmluZ1dpdGhOb1NwYWNlc0F0QWxsQW5kUXVpdGVMb25nVG9FeGVyY2lzZUJQRQ==",
        "\u{0}\u{1}\u{7F} control chars \u{1B}[0m",
    ]

    /// Random strings mixing the character families the pre-tokenizers distinguish.
    static func fuzzCorpus(count: Int, seed: UInt64) -> [String] {
        let pools: [[String]] = [
            ["a", "b", "Z", "q", "é", "ß", "Ω", "ж", "语", "文", "ア", "한", "ع", "क"],
            ["0", "1", "7", "9", "²", "½", "Ⅻ", "٣"],
            [" ", " ", " ", "\t", "\n", "\r\n", "\r", "\u{00A0}", "\u{3000}", "\u{2028}"],
            ["'", "'s", "'ll", "'RE", "'d", "'t", "'x"],
            [".", ",", "!", "?", "(", ")", "{", "}", "-", "_", "+", "=", "\"", "/", "\\", "#", "@", "$", "`"],
            ["😀", "👍🏽", "🇫🇷", "\u{301}", "\u{200B}", "\u{FE0F}", "🧑‍💻"],
        ]
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        return (0..<count).map { _ in
            let length = Int(next() % 40) + 1
            var s = ""
            for _ in 0..<length {
                let pool = pools[Int(next() % UInt64(pools.count))]
                let repeats = next() % 4 == 0 ? Int(next() % 4) + 1 : 1
                let piece = pool[Int(next() % UInt64(pool.count))]
                for _ in 0..<repeats { s += piece }
            }
            return s
        }
    }
}
