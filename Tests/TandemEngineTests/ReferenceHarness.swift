import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs the independent numpy reference (Tests/Reference/*.py) for the engine's correctness tests.
///
/// Python runs as a child process whose exit is awaited through `terminationHandler`, so no test thread
/// blocks while it works. Generated synthetic models and reference logits are cached under
/// `$TMPDIR/tandem-reference-<hash of the scripts>` and reused by later test runs (a change to any script
/// changes the directory), so only the first run pays for generating them.
enum ReferenceHarness {
    /// Tests/Reference, found from this file's location in the repository.
    static let scriptsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Reference")

    static let scriptNames = ["reference_forward.py", "make_synthetic.py", "kquant_pack.py", "gguf_vocab.py"]

    /// `python3` on `PATH`, if any.
    static let python: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/python3"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// True when python3 can import `gguf` and `numpy` (checked once).
    static func isAvailable() async -> Bool {
        await ReferenceStore.shared.pythonReady()
    }

    /// The SmolLM2-135M file: `$TANDEM_MODELS` (a directory, or the .gguf itself), else ~/.cache/tandem/models.
    static let smolLMPath = modelPath("SmolLM2-135M-Instruct.Q4_1.gguf")
    static let qwenDraftPath = modelPath("Qwen2.5-Coder-0.5B-Instruct.gguf")
    static let qwenTargetPath = modelPath("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf")

    /// `name` in `$TANDEM_MODELS` (a directory; or the file itself when it ends with `name`), else in
    /// ~/.cache/tandem/models; nil when absent.
    static func modelPath(_ name: String) -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["TANDEM_MODELS"], !env.isEmpty {
            candidates.append(env.hasSuffix(".gguf") ? env : "\(env)/\(name)")
        }
        candidates.append(NSString(string: "~/.cache/tandem/models/\(name)").expandingTildeInPath)
        return candidates.first { $0.hasSuffix(name) && FileManager.default.fileExists(atPath: $0) }
    }

    /// Cache directory for generated files, keyed by the content of the reference scripts.
    static let cacheDirectory: URL = {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64
        for name in scriptNames {
            let data = (try? Data(contentsOf: scriptsDirectory.appendingPathComponent(name))) ?? Data()
            for byte in data + Array(name.utf8) {
                hash ^= UInt64(byte)
                hash &*= 0x100_0000_01b3
            }
        }
        let hex = String(hash, radix: 16)
        return FileManager.default.temporaryDirectory.appendingPathComponent("tandem-reference-\(hex)")
    }()

    struct ProcessOutput: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct ScriptError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `python3 <script> <arguments>` from Tests/Reference and returns its output.
    static func runPython(_ arguments: [String]) async throws -> ProcessOutput {
        guard let python else { throw ScriptError(description: "python3 not found on PATH") }
        return try await run(python, arguments)
    }

    /// Runs a script and throws (with its stderr) unless it exits 0.
    static func runScript(_ script: String, _ arguments: [String]) async throws -> String {
        let path = scriptsDirectory.appendingPathComponent(script).path
        let out = try await runPython([path] + arguments)
        guard out.status == 0 else {
            throw ScriptError(description: "\(script) \(arguments.joined(separator: " ")) exited \(out.status): \(out.stderr.suffix(2000))")
        }
        return out.stdout
    }

    static func run(_ executable: String, _ arguments: [String]) async throws -> ProcessOutput {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("tandem-proc-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
        _ = fm.createFile(atPath: outURL.path, contents: nil)
        _ = fm.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { p in continuation.resume(returning: p.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let stdout = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        let stderr = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        return ProcessOutput(status: status, stdout: stdout, stderr: stderr)
    }
}

/// Reference logits of one token sequence: `rows` positions × `vocabularySize`, row-major.
struct ReferenceLogits: Sendable {
    var tokens: [Int32]
    var vocabularySize: Int
    var values: [Float]

    var rows: Int { values.count / vocabularySize }

    func row(_ r: Int) -> ArraySlice<Float> {
        values[(r * vocabularySize)..<((r + 1) * vocabularySize)]
    }

    static func read(path: String, tokens: [Int32], vocabularySize: Int) throws -> ReferenceLogits {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count == tokens.count * vocabularySize * 4 else {
            throw ReferenceHarness.ScriptError(
                description: "\(path): \(data.count) bytes, expected \(tokens.count) x \(vocabularySize) float32")
        }
        var values = [Float](repeating: 0, count: tokens.count * vocabularySize)
        values.withUnsafeMutableBytes { dst in
            data.withUnsafeBytes { src in dst.copyMemory(from: src) }
        }
        for i in values.indices { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
        return ReferenceLogits(tokens: tokens, vocabularySize: vocabularySize, values: values)
    }
}

/// One reference job: a model file and a token sequence, logits for every position.
///
/// `int8Activations` asks for the reference variant that rounds every quantized matmul's input to int8
/// the way the engine's integer kernels do (per 32 values, or per 256 for K-quants; scale amax/127,
/// round to nearest even). Comparing against it isolates the engine's arithmetic from that deliberate
/// rounding, which alone moves SmolLM2's logits by a few percent of their range.
struct ReferenceJob: Hashable, Sendable {
    var model: String
    var tokens: [Int32]
    var int8Activations = false

    /// Cache key: model path and size, token ids.
    var key: String {
        let size = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? -1
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let bytes = Array("\(model)#\(size)#\(int8Activations)".utf8) + tokens.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Process-wide memo of the expensive steps (python check, model generation, reference runs).
actor ReferenceStore {
    static let shared = ReferenceStore()

    private var pythonCheck: Task<Bool, Never>?
    private var synthetic: Task<[String: String], Error>?

    func pythonReady() async -> Bool {
        if let pythonCheck { return await pythonCheck.value }
        let task = Task<Bool, Never> {
            guard ReferenceHarness.python != nil else { return false }
            let out = try? await ReferenceHarness.runPython(["-c", "import gguf, numpy"])
            return out?.status == 0
        }
        pythonCheck = task
        return await task.value
    }

    /// Generates every synthetic model once (into the cache directory) and returns
    /// "<arch>-<type>" / "<arch>-draft-<type>" -> path.
    func syntheticModels() async throws -> [String: String] {
        if let synthetic { return try await synthetic.value }
        let task = Task<[String: String], Error> {
            let fm = FileManager.default
            let dir = ReferenceHarness.cacheDirectory.appendingPathComponent("synthetic")
            let manifest = dir.appendingPathComponent("manifest.json")
            if !fm.fileExists(atPath: manifest.path) {
                let staging = ReferenceHarness.cacheDirectory.appendingPathComponent("staging-\(UUID().uuidString)")
                try fm.createDirectory(at: staging, withIntermediateDirectories: true)
                let stdout = try await ReferenceHarness.runScript("make_synthetic.py", ["--out-dir", staging.path, "--draft"])
                try Data(stdout.utf8).write(to: staging.appendingPathComponent("manifest.json"))
                // Publish atomically; if another test process won the race, use its copy.
                if (try? fm.moveItem(at: staging, to: dir)) == nil { try? fm.removeItem(at: staging) }
            }
            struct Entry: Decodable { var path: String; var arch: String; var type: String; var role: String }
            let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: manifest))
            var map: [String: String] = [:]
            for e in entries {
                // Paths in the manifest point into the staging directory: rebase onto `dir`.
                let file = dir.appendingPathComponent(URL(fileURLWithPath: e.path).lastPathComponent).path
                map[e.role == "draft" ? "\(e.arch)-draft-\(e.type)" : "\(e.arch)-\(e.type)"] = file
            }
            return map
        }
        synthetic = task
        return try await task.value
    }

    /// Reference logits (every position) for each job; runs python once for all jobs not yet cached.
    func logits(_ jobs: [ReferenceJob]) async throws -> [ReferenceJob: ReferenceLogits] {
        let fm = FileManager.default
        let dir = ReferenceHarness.cacheDirectory.appendingPathComponent("logits")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        func binPath(_ job: ReferenceJob) -> String { dir.appendingPathComponent("\(job.key).f32").path }
        func metaPath(_ job: ReferenceJob) -> String { dir.appendingPathComponent("\(job.key).json").path }

        let missing = jobs.filter { !fm.fileExists(atPath: metaPath($0)) }
        if !missing.isEmpty {
            struct Spec: Encodable { var model: String; var tokens: [Int32]; var out_bin: String; var q8_activations: Bool }
            // Unique staging names: several test processes may fill the same cache at once.
            let suffix = ".\(UUID().uuidString).tmp"
            let staging = missing.map {
                Spec(model: $0.model, tokens: $0.tokens, out_bin: binPath($0) + suffix, q8_activations: $0.int8Activations)
            }
            let specURL = dir.appendingPathComponent("batch-\(UUID().uuidString).json")
            try JSONEncoder().encode(staging).write(to: specURL)
            defer { try? fm.removeItem(at: specURL) }
            let stdout = try await ReferenceHarness.runScript("reference_forward.py", ["--batch", specURL.path])
            struct Report: Decodable { var jobs: [Job] }
            struct Job: Decodable { var n_vocab: Int }
            let report = try JSONDecoder().decode(Report.self, from: Data(stdout.utf8))
            guard report.jobs.count == missing.count else {
                throw ReferenceHarness.ScriptError(description: "reference_forward.py returned \(report.jobs.count) of \(missing.count) jobs")
            }
            for (job, result) in zip(missing, report.jobs) {
                // rename(2) replaces atomically; the metadata file (written last, atomically) marks completion.
                guard rename(binPath(job) + suffix, binPath(job)) == 0 else {
                    throw ReferenceHarness.ScriptError(description: "cannot publish \(binPath(job)): errno \(errno)")
                }
                try Data("{\"n_vocab\": \(result.n_vocab)}".utf8).write(to: URL(fileURLWithPath: metaPath(job)), options: .atomic)
            }
        }
        var out: [ReferenceJob: ReferenceLogits] = [:]
        struct Meta: Decodable { var n_vocab: Int }
        for job in jobs {
            let meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: URL(fileURLWithPath: metaPath(job))))
            out[job] = try ReferenceLogits.read(path: binPath(job), tokens: job.tokens, vocabularySize: meta.n_vocab)
        }
        return out
    }
}
