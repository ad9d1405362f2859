/// Bounds-checked parser for the GGUF v2/v3 layout (little-endian).
///
/// Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count, metadata key/values,
/// tensor infos (name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset), padding to `general.alignment`,
/// then the data section. Every read checks the remaining length first.
struct GGUFParser {
    struct Result {
        var version: Int
        var metadata: [String: GGUFValue]
        var metadataKeys: [String]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    /// Upper bound on any single tensor dimension and element count: far above real models,
    /// low enough that sizes cannot overflow `Int`.
    static let maxDimension = 1 << 40
    static let maxElements = 1 << 42
    static let maxDims = 4
    /// Nesting limit for arrays of arrays.
    static let maxArrayDepth = 4

    let base: UnsafeRawPointer
    let size: Int
    let path: String
    var pos = 0

    init(base: UnsafeRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        self.path = path
    }

    private var remaining: Int { size - pos }

    private func truncated(_ what: String) -> GGUFError {
        GGUFError(.truncated, "file ends at byte \(size) while reading \(what) at offset \(pos) (\(path))")
    }

    private mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || n > remaining { throw truncated(what()) }
    }

    private mutating func readPOD<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = T(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: T.self))
        pos += MemoryLayout<T>.size
        return v
    }

    private mutating func u8(_ w: @autoclosure () -> String) throws -> UInt8 { try readPOD(UInt8.self, w()) }
    private mutating func u32(_ w: @autoclosure () -> String) throws -> UInt32 { try readPOD(UInt32.self, w()) }
    private mutating func u64(_ w: @autoclosure () -> String) throws -> UInt64 { try readPOD(UInt64.self, w()) }

    /// Reads a u64 count and checks that `count * minBytesEach` more bytes could exist.
    private mutating func count(_ what: @autoclosure () -> String, minBytesEach: Int) throws -> Int {
        let raw = try u64(what())
        guard raw <= UInt64(Int.max / max(minBytesEach, 1)) else {
            throw GGUFError(.implausibleCount, "\(what()) is \(raw), impossible for a \(size)-byte file (\(path))")
        }
        let n = Int(raw)
        if n * minBytesEach > remaining {
            throw GGUFError(.implausibleCount,
                            "\(what()) is \(n) but only \(remaining) bytes remain at offset \(pos) (\(path))")
        }
        return n
    }

    private mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let lenRaw = try u64("length of \(what())")
        guard lenRaw <= UInt64(remaining) else {
            throw GGUFError(.truncated,
                            "\(what()) has length \(lenRaw) but only \(remaining) bytes remain at offset \(pos) (\(path))")
        }
        let n = Int(lenRaw)
        let s = String(decoding: UnsafeRawBufferPointer(start: base + pos, count: n), as: UTF8.self)
        pos += n
        return s
    }

    private static func minSize(ofValueType t: UInt32) -> Int? {
        switch t {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        case 8: return 8  // u64 length
        case 9: return 12  // u32 type + u64 count
        default: return nil
        }
    }

    private mutating func value(type t: UInt32, key: String, depth: Int) throws -> GGUFValue {
        let what = "value of '\(key)'"
        switch t {
        case 0: return .uint8(try u8(what))
        case 1: return .int8(Int8(bitPattern: try u8(what)))
        case 2: return .uint16(try readPOD(UInt16.self, what))
        case 3: return .int16(try readPOD(Int16.self, what))
        case 4: return .uint32(try u32(what))
        case 5: return .int32(try readPOD(Int32.self, what))
        case 6: return .float32(Float(bitPattern: try u32(what)))
        case 7:
            let b = try u8(what)
            guard b <= 1 else { throw GGUFError(.badMetadata, "bool '\(key)' has value \(b) (\(path))") }
            return .bool(b == 1)
        case 8: return .string(try string(what))
        case 9: return .array(try array(key: key, depth: depth))
        case 10: return .uint64(try u64(what))
        case 11: return .int64(try readPOD(Int64.self, what))
        case 12: return .float64(Double(bitPattern: try u64(what)))
        default:
            throw GGUFError(.badMetadata, "metadata '\(key)' has unknown value type \(t) (\(path))")
        }
    }

    private mutating func array(key: String, depth: Int) throws -> GGUFArray {
        guard depth < Self.maxArrayDepth else {
            throw GGUFError(.badMetadata, "metadata '\(key)' nests arrays deeper than \(Self.maxArrayDepth) (\(path))")
        }
        let et = try u32("array element type of '\(key)'")
        guard let minEach = Self.minSize(ofValueType: et) else {
            throw GGUFError(.badMetadata, "metadata array '\(key)' has unknown element type \(et) (\(path))")
        }
        let n = try count("element count of array '\(key)'", minBytesEach: minEach)
        switch et {
        case 8:
            var out: [String] = []
            out.reserveCapacity(n)
            for i in 0..<n { out.append(try string("element \(i) of '\(key)'")) }
            return .strings(out)
        case 9:
            var out: [GGUFArray] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try array(key: key, depth: depth + 1)) }
            return .arrays(out)
        case 7:
            var out: [Bool] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                let b = try u8("element \(i) of '\(key)'")
                guard b <= 1 else { throw GGUFError(.badMetadata, "bool array '\(key)' has value \(b) (\(path))") }
                out.append(b == 1)
            }
            return .bools(out)
        case 6, 12:
            var out = [Double](repeating: 0, count: n)
            for i in 0..<n {
                out[i] = et == 6 ? Double(Float(bitPattern: try u32("'\(key)'"))) : Double(bitPattern: try u64("'\(key)'"))
            }
            return .floats(out, elementType: et)
        default:
            var out = [Int64](repeating: 0, count: n)
            // Sizes were checked by `count`; read directly.
            for i in 0..<n {
                switch et {
                case 0: out[i] = Int64(try u8("'\(key)'"))
                case 1: out[i] = Int64(Int8(bitPattern: try u8("'\(key)'")))
                case 2: out[i] = Int64(try readPOD(UInt16.self, "'\(key)'"))
                case 3: out[i] = Int64(try readPOD(Int16.self, "'\(key)'"))
                case 4: out[i] = Int64(try u32("'\(key)'"))
                case 5: out[i] = Int64(try readPOD(Int32.self, "'\(key)'"))
                case 10: out[i] = Int64(bitPattern: try u64("'\(key)'"))
                default: out[i] = try readPOD(Int64.self, "'\(key)'")
                }
            }
            return .integers(out, elementType: et)
        }
    }

    mutating func parse() throws -> Result {
        guard size >= 4 else { throw truncated("magic") }
        let magic = try u32("magic")
        guard magic == 0x4655_4747 else {  // "GGUF" little-endian
            let bytes = withUnsafeBytes(of: magic.littleEndian) { Array($0) }
            let shown = bytes.map { (32...126).contains($0) ? String(UnicodeScalar($0)) : "\\x\(String($0, radix: 16))" }
                .joined()
            throw GGUFError(.badMagic, "'\(path)' is not a GGUF file: magic is \"\(shown)\", expected \"GGUF\"")
        }
        let version = try u32("version")
        guard version == 2 || version == 3 else {
            throw GGUFError(.unsupportedVersion, "GGUF version \(version) is not supported (need 2 or 3) (\(path))")
        }
        // Tensor infos are at least 8 (name len) + 4 + 8 + 4 + 8 bytes; metadata KVs at least 8 + 4 + 1.
        let nTensors = try count("tensor count", minBytesEach: 32)
        let nKV = try count("metadata count", minBytesEach: 13)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(nKV)
        for i in 0..<nKV {
            let key = try string("key of metadata entry \(i)")
            let t = try u32("value type of '\(key)'")
            let v = try value(type: t, key: key, depth: 0)
            if metadata.updateValue(v, forKey: key) == nil { keys.append(key) }
        }

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let ai = a.int, ai > 0, ai <= 1 << 20, ai & (ai - 1) == 0 else {
                throw GGUFError(.badMetadata, "general.alignment must be a power of two, got \(a) (\(path))")
            }
            alignment = ai
        }

        struct Raw { var name: String; var dims: [Int]; var type: GGUFTensorType; var offset: Int; var bytes: Int }
        var raws: [Raw] = []
        raws.reserveCapacity(nTensors)
        var seen = Set<String>()
        for i in 0..<nTensors {
            let name = try string("name of tensor \(i)")
            guard seen.insert(name).inserted else {
                throw GGUFError(.duplicateTensor, "tensor '\(name)' appears twice (\(path))")
            }
            let nd = try u32("dimension count of tensor '\(name)'")
            guard nd >= 1, nd <= UInt32(Self.maxDims) else {
                throw GGUFError(.badDimensions, "tensor '\(name)' has \(nd) dimensions (1...\(Self.maxDims) allowed) (\(path))")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nd) {
                let raw = try u64("dimension \(d) of tensor '\(name)'")
                guard raw >= 1, raw <= UInt64(Self.maxDimension) else {
                    throw GGUFError(.badDimensions, "tensor '\(name)' dimension \(d) is \(raw) (\(path))")
                }
                let (m, overflow) = elements.multipliedReportingOverflow(by: Int(raw))
                guard !overflow, m <= Self.maxElements else {
                    throw GGUFError(.badDimensions, "tensor '\(name)' has too many elements (dimension \(d) = \(raw)) (\(path))")
                }
                elements = m
                dims.append(Int(raw))
            }
            let rawType = try u32("type of tensor '\(name)'")
            guard let type = GGUFTensorType(rawValue: rawType) else {
                throw GGUFError(.unsupportedType, "tensor '\(name)' has unsupported ggml type \(rawType) (\(path))")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw GGUFError(.badDimensions,
                                "tensor '\(name)' row length \(dims[0]) is not a multiple of the \(type) block size \(type.blockSize) (\(path))")
            }
            let offRaw = try u64("data offset of tensor '\(name)'")
            guard offRaw <= UInt64(Int.max / 2) else {
                throw GGUFError(.badOffset, "tensor '\(name)' data offset \(offRaw) is past the end of the file (\(path))")
            }
            let off = Int(offRaw)
            guard off % alignment == 0 else {
                throw GGUFError(.badOffset, "tensor '\(name)' data offset \(off) is not aligned to \(alignment) (\(path))")
            }
            let bytes = elements / type.blockSize * type.bytesPerBlock
            raws.append(Raw(name: name, dims: dims, type: type, offset: off, bytes: bytes))
        }

        let dataOffset = (pos + alignment - 1) / alignment * alignment
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(raws.count)
        for r in raws {
            let start = dataOffset + r.offset
            guard start <= size, r.bytes <= size - start else {
                throw GGUFError(.badOffset,
                                "tensor '\(r.name)' data [\(start), \(start + r.bytes)) lies outside the \(size)-byte file (\(path))")
            }
            tensors.append(GGUFTensorInfo(name: r.name, dimensions: r.dims, type: r.type, fileOffset: start, byteCount: r.bytes))
        }
        return Result(version: Int(version), metadata: metadata, metadataKeys: keys, tensors: tensors,
                      alignment: alignment, dataOffset: dataOffset)
    }
}
