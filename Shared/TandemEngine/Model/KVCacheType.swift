/// Element type of a `KVCache`'s keys and values.
///
/// `f16` halves the memory a session holds (and the bytes attention reads per position) at the cost of
/// rounding each cached key and value to half precision; queries, scores and outputs stay `Float`.
/// docs/design.md ("KV cache") and docs/measurements.md give its perplexity and speed against `f32`.
public enum KVCacheType: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32
    case f16

    /// The type engines, services and commands use when none is given (`--kv-type`, `TANDEM_KV_TYPE`):
    /// f16, which on Qwen2.5-Coder-1.5B and SmolLM2 changes perplexity by under 0.3 % and keeps greedy
    /// speculative output identical to the target's own (both sides use the same type), for half the
    /// memory (docs/measurements.md, "KV cache").
    public static let `default`: KVCacheType = .f16

    /// Bytes of one cached value.
    public var elementSize: Int {
        switch self {
        case .f32: return 4
        case .f16: return 2
        }
    }

    public var description: String { rawValue }

    /// Parses a flag or environment value ("f16", "f32"), with a clear error for anything else.
    public init(parsing text: String) throws {
        guard let t = KVCacheType(rawValue: text.lowercased()) else {
            throw KVCacheTypeError(value: text)
        }
        self = t
    }

    /// The type a command runs with: its `--kv-type` flag, else the `TANDEM_KV_TYPE` environment value
    /// (pass it in), else `default`.
    public init(flag: String?, environment: String?) throws {
        if let flag, !flag.isEmpty {
            self = try KVCacheType(parsing: flag)
        } else if let environment, !environment.isEmpty {
            self = try KVCacheType(parsing: environment)
        } else {
            self = .default
        }
    }
}

/// A KV cache type name that is neither `f16` nor `f32`.
public struct KVCacheTypeError: Error, CustomStringConvertible, Sendable {
    public let value: String
    public var description: String { "unknown KV cache type '\(value)' (expected f16 or f32)" }
}
