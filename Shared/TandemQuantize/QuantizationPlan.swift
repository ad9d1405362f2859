import Foundation
import TandemKernels

/// Which ggml type each tensor of a model is written as: a default, per-layer overrides and
/// per-tensor overrides (most specific wins: tensor, then layer, then default).
///
/// A plan is the contract between a planner (QPART chooses per-layer bit widths for a device) and
/// `tandem quantize`, so it is a small JSON file rather than flags:
///
/// ```json
/// {"default": "Q4_K", "layers": {"0": "Q8_0"}, "tensors": {"blk.0.ffn_down.weight": "Q6_K"}}
/// ```
///
/// `"default": "source"` keeps every tensor the plan does not name as it is in the source file (no
/// requantisation), which is what a per-layer plan (`tandem plan`) wants: only the layers it lowers change.
public struct QuantizationPlan: Sendable, Equatable {
    /// The type of every tensor no layer or tensor entry names; nil keeps the source's type.
    public var defaultType: GGMLType?
    /// Block index (`blk.<n>.`) → type.
    public var layers: [Int: GGMLType]
    /// Exact tensor name → type.
    public var tensors: [String: GGMLType]

    public init(defaultType: GGMLType?, layers: [Int: GGMLType] = [:], tensors: [String: GGMLType] = [:]) {
        self.defaultType = defaultType
        self.layers = layers
        self.tensors = tensors
    }

    /// Types a plan may name: what `Quantizer` writes (F32 included, for keeping a matrix unquantised).
    public static var allowedTypes: [GGMLType] { Quantizer.supportedTypes }

    /// Parses a ggml type name (`Q4_K`, `q8_0`, `F16`) that the quantiser can write.
    public static func type(named name: String) throws -> GGMLType {
        guard let t = allowedTypes.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) else {
            throw PlanError("unknown or unsupported type '\(name)'; use one of \(allowedTypes.map(\.name).joined(separator: ", "))")
        }
        return t
    }

    /// The `"default"` value that keeps source types.
    public static let keepSource = "source"

    /// Reads a plan file. `fallbackDefault` is used when the file has no `"default"` (the `--type` flag);
    /// with neither, the plan is rejected rather than guessing a type.
    public static func load(path: String, fallbackDefault: GGMLType?) throws -> QuantizationPlan {
        let data = try Data(contentsOf: URL(fileURLWithPath: (path as NSString).expandingTildeInPath))
        return try parse(data, fallbackDefault: fallbackDefault)
    }

    /// Parses plan JSON (see the type's documentation). Unknown top-level keys are rejected so that
    /// a typo (`"layer"`) does not silently produce a uniform model.
    public static func parse(_ data: Data, fallbackDefault: GGMLType?) throws -> QuantizationPlan {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw PlanError("a plan must be a JSON object")
        }
        let unknown = Set(root.keys).subtracting(["default", "layers", "tensors", "comment"])
        guard unknown.isEmpty else {
            throw PlanError("unknown plan keys \(unknown.sorted()); allowed: default, layers, tensors, comment")
        }
        var defaultType = fallbackDefault
        var keep = false
        if let d = root["default"] {
            guard let s = d as? String else { throw PlanError("\"default\" must be a type name string or \"source\"") }
            if s.caseInsensitiveCompare(keepSource) == .orderedSame { keep = true } else { defaultType = try type(named: s) }
        }
        guard keep || defaultType != nil else {
            throw PlanError("the plan has no \"default\" and no --type was given (\"default\": \"source\" keeps source types)")
        }
        var plan = QuantizationPlan(defaultType: keep ? nil : defaultType)
        if let l = root["layers"] {
            guard let dict = l as? [String: Any] else { throw PlanError("\"layers\" must be an object {\"<n>\": \"TYPE\"}") }
            for (k, v) in dict {
                guard let n = Int(k), n >= 0 else { throw PlanError("layer key '\(k)' is not a block number") }
                guard let s = v as? String else { throw PlanError("layer \(k): type must be a string") }
                plan.layers[n] = try type(named: s)
            }
        }
        if let t = root["tensors"] {
            guard let dict = t as? [String: Any] else { throw PlanError("\"tensors\" must be an object {\"name\": \"TYPE\"}") }
            for (k, v) in dict {
                guard let s = v as? String else { throw PlanError("tensor \(k): type must be a string") }
                plan.tensors[k] = try type(named: s)
            }
        }
        return plan
    }

    /// What a tensor of `columns` columns asked to be `type` is written as: llama.cpp's block-size
    /// fallbacks until the row length fits the block (nil when no fallback fits).
    public static func effectiveType(_ type: GGMLType, columns: Int) -> GGMLType? {
        var want = type
        while columns % want.blockSize != 0 {
            guard let f = want.blockFallback else { return nil }
            want = f
        }
        return want
    }

    /// The block index of a tensor named `blk.<n>.…`, if any.
    public static func layer(of tensorName: String) -> Int? {
        guard tensorName.hasPrefix("blk.") else { return nil }
        let rest = tensorName.dropFirst(4)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        return Int(rest[..<dot])
    }

    /// The type a plan asks for (before block-size fallbacks; nil = keep the source's), and whether it
    /// came from an explicit tensor entry (which beats `--keep-output-type` / `--keep-embedding-type`).
    public func requestedType(for tensorName: String) -> (type: GGMLType?, explicit: Bool) {
        if let t = tensors[tensorName] { return (t, true) }
        if let n = Self.layer(of: tensorName), let t = layers[n] { return (t, false) }
        return (defaultType, false)
    }

    /// Serialises the plan (sorted keys; what `load` reads).
    public func jsonData() throws -> Data {
        var root: [String: Any] = ["default": defaultType?.name ?? Self.keepSource]
        if !layers.isEmpty { root["layers"] = Dictionary(uniqueKeysWithValues: layers.map { ("\($0.key)", $0.value.name) }) }
        if !tensors.isEmpty { root["tensors"] = tensors.mapValues(\.name) }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }
}

/// A plan file or type name is invalid.
public struct PlanError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension GGMLType {
    /// What llama.cpp writes instead when a row length is not a multiple of this type's block size:
    /// K-quants fall back to the 32-element format of similar size (Q4_K → Q5_0, Q5_K → Q5_1,
    /// Q6_K → Q8_0, as `llama-quantize` does); 32-element formats fall back to F16.
    public var blockFallback: GGMLType? {
        switch self {
        case .q4_K: return .q5_0
        case .q5_K: return .q5_1
        case .q6_K: return .q8_0
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return .f16
        case .f16, .bf16: return .f32
        default: return nil
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`) for a model that is mostly this type.
    /// K-quant files get the "_S" variant, the one whose matrices are uniformly that type.
    public var llamaFileType: Int? {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q4_K: return 14  // MOSTLY_Q4_K_S
        case .q5_K: return 16  // MOSTLY_Q5_K_S
        case .q6_K: return 18
        case .bf16: return 32
        default: return nil
        }
    }
}
