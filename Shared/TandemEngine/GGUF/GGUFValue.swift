/// One metadata value from a GGUF file's key/value section.
///
/// Use the typed accessors (`int`, `double`, `string`, `bool`, `strings`, `ints`, `floats`) rather than
/// matching cases: GGUF writers are inconsistent about integer widths (a context length may be `u32` in
/// one file and `u64` or `i32` in another), and the accessors convert between them.
public enum GGUFValue: Sendable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)
    case array(GGUFArray)

    /// The value as an `Int` if it is any integer type that fits (or a bool, as 0/1).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    /// The value as a `Double` if it is a float or integer.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    /// The value as a `Float` if it is a float or integer.
    public var float: Float? { double.map(Float.init) }

    /// The value if it is a string.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value if it is a bool (integers 0/1 are accepted too).
    public var bool: Bool? {
        switch self {
        case .bool(let b): return b
        default:
            if let i = int, i == 0 || i == 1 { return i == 1 }
            return nil
        }
    }

    /// The array, if the value is one.
    public var array: GGUFArray? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The elements if the value is an array of strings (e.g. `tokenizer.ggml.tokens`).
    public var strings: [String]? { array?.strings }

    /// The elements if the value is an array of integers (e.g. `tokenizer.ggml.token_type`).
    public var ints: [Int]? { array?.ints }

    /// The elements if the value is an array of numbers (e.g. `tokenizer.ggml.scores`).
    public var floats: [Float]? { array?.floats }
}

/// A homogeneous metadata array. Large arrays (vocabularies of 150k strings) are stored unboxed.
public enum GGUFArray: Sendable {
    case strings([String])
    /// Any integer element type, widened; `elementType` records the type in the file.
    case integers([Int64], elementType: UInt32)
    /// `float32` or `float64` elements, as `Double`.
    case floats([Double], elementType: UInt32)
    case bools([Bool])
    /// An array of arrays (rare; allowed by the format).
    case arrays([GGUFArray])

    public var count: Int {
        switch self {
        case .strings(let a): return a.count
        case .integers(let a, _): return a.count
        case .floats(let a, _): return a.count
        case .bools(let a): return a.count
        case .arrays(let a): return a.count
        }
    }

    public var strings: [String]? {
        if case .strings(let a) = self { return a }
        return nil
    }

    public var ints: [Int]? {
        switch self {
        case .integers(let a, _): return a.map { Int($0) }
        case .bools(let a): return a.map { $0 ? 1 : 0 }
        default: return nil
        }
    }

    public var floats: [Float]? {
        switch self {
        case .floats(let a, _): return a.map { Float($0) }
        case .integers(let a, _): return a.map { Float($0) }
        default: return nil
        }
    }
}
