import Foundation
import TandemEngine
import TandemKernels

/// Writes GGUF v3 files: header, metadata key/values, tensor infos, then each tensor's data
/// padded to the alignment.
///
/// Tensor data is streamed (`append`) in the order the infos were declared, so a model never has to
/// be held in memory; the writer checks that every tensor gets exactly its declared byte count.
/// The file is written to `<path>.partial` and renamed on `finish()`, so a reader (a drafter picking
/// up a variant) never sees a half-written model.
public final class GGUFWriter {
    /// One tensor to be written.
    public struct Tensor: Sendable {
        public var name: String
        /// ggml order: `dimensions[0]` is the row length.
        public var dimensions: [Int]
        public var type: GGMLType
        public init(name: String, dimensions: [Int], type: GGMLType) {
            self.name = name
            self.dimensions = dimensions
            self.type = type
        }
        public var elementCount: Int { dimensions.reduce(1, *) }
        public var byteCount: Int { type.byteCount(elements: elementCount) }
    }

    public let path: String
    public let alignment: Int
    private let tensors: [Tensor]
    private let handle: FileHandle
    private let partialPath: String
    private var nextTensor = 0
    private var writtenInTensor = 0
    /// Bytes written so far (header included).
    public private(set) var bytesWritten = 0

    /// Creates the file and writes the header, metadata and tensor infos.
    /// - Parameter metadata: key/values in the order they should appear (GGUF keeps order).
    public init(path: String, metadata: [(String, GGUFValue)], tensors: [Tensor], alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw GGUFError(.badMetadata, "alignment \(alignment) is not a power of two")
        }
        for t in tensors where t.dimensions.isEmpty || t.dimensions[0] % t.type.blockSize != 0 {
            throw GGUFError(.badDimensions,
                            "tensor '\(t.name)' row length \(t.dimensions.first ?? 0) is not a multiple of the \(t.type.name) block size")
        }
        self.path = path
        self.alignment = alignment
        self.tensors = tensors
        self.partialPath = path + ".partial"
        guard FileManager.default.createFile(atPath: partialPath, contents: nil) else {
            throw GGUFError(.io, "cannot create '\(partialPath)'")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: partialPath))
        var h = ByteWriter()
        h.u32(0x4655_4747)  // "GGUF"
        h.u32(3)
        h.u64(UInt64(tensors.count))
        h.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            h.string(key)
            h.value(value)
        }
        var offset = 0
        for t in tensors {
            h.string(t.name)
            h.u32(UInt32(t.dimensions.count))
            for d in t.dimensions { h.u64(UInt64(d)) }
            h.u32(t.type.rawValue)
            h.u64(UInt64(offset))
            offset += Self.padded(t.byteCount, alignment)
        }
        h.bytes.append(contentsOf: [UInt8](repeating: 0, count: Self.padded(h.bytes.count, alignment) - h.bytes.count))
        try write(h.bytes)
    }

    /// `n` rounded up to a multiple of `alignment`.
    public static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Appends bytes of the current tensor; when its declared size is reached, pads and moves on.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            guard nextTensor < tensors.count else {
                throw GGUFError(.badDimensions, "more tensor data written than the \(tensors.count) declared tensors hold")
            }
            let need = tensors[nextTensor].byteCount - writtenInTensor
            let n = min(need, rest.count)
            try write(UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            writtenInTensor += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            if writtenInTensor == tensors[nextTensor].byteCount { try endTensor() }
        }
        // A zero-byte tensor cannot exist (dimensions are ≥ 1), so no empty-tensor bookkeeping is needed.
    }

    /// Checks that all tensors were written, closes the file and moves it into place.
    public func finish() throws {
        guard nextTensor == tensors.count else {
            throw GGUFError(.truncated, "only \(nextTensor) of \(tensors.count) tensors were written to \(path)")
        }
        try handle.synchronize()
        try handle.close()
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: partialPath, toPath: path)
    }

    /// Closes and deletes the partial file (after an error).
    public func abandon() {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: partialPath)
    }

    private func endTensor() throws {
        let size = tensors[nextTensor].byteCount
        let pad = Self.padded(size, alignment) - size
        if pad > 0 { try write([UInt8](repeating: 0, count: pad)) }
        nextTensor += 1
        writtenInTensor = 0
    }

    private func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count,
                                          deallocator: .none))
        bytesWritten += bytes.count
    }
}

/// Little-endian encoder for GGUF header fields and metadata values.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func pod<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func u32(_ v: UInt32) { pod(v) }
    mutating func u64(_ v: UInt64) { pod(v) }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// GGUF value type code of a metadata value.
    static func typeCode(_ v: GGUFValue) -> UInt32 {
        switch v {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }

    /// Type code, then payload.
    mutating func value(_ v: GGUFValue) {
        u32(Self.typeCode(v))
        payload(v)
    }

    mutating func payload(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): pod(x)
        case .int8(let x): pod(x)
        case .uint16(let x): pod(x)
        case .int16(let x): pod(x)
        case .uint32(let x): pod(x)
        case .int32(let x): pod(x)
        case .float32(let x): pod(x.bitPattern)
        case .bool(let x): pod(UInt8(x ? 1 : 0))
        case .string(let s): string(s)
        case .uint64(let x): pod(x)
        case .int64(let x): pod(x)
        case .float64(let x): pod(x.bitPattern)
        case .array(let a): array(a)
        }
    }

    /// Element type, count, elements. Integer and float arrays keep the element width they had in
    /// the source file (the reader records it), so a round trip does not change the file's types.
    mutating func array(_ a: GGUFArray) {
        switch a {
        case .strings(let s):
            u32(8)
            u64(UInt64(s.count))
            for x in s { string(x) }
        case .bools(let b):
            u32(7)
            u64(UInt64(b.count))
            for x in b { pod(UInt8(x ? 1 : 0)) }
        case .floats(let f, let et):
            u32(et)
            u64(UInt64(f.count))
            for x in f {
                if et == 12 { pod(x.bitPattern) } else { pod(Float(x).bitPattern) }
            }
        case .integers(let v, let et):
            u32(et)
            u64(UInt64(v.count))
            for x in v {
                switch et {
                case 0: pod(UInt8(truncatingIfNeeded: x))
                case 1: pod(Int8(truncatingIfNeeded: x))
                case 2: pod(UInt16(truncatingIfNeeded: x))
                case 3: pod(Int16(truncatingIfNeeded: x))
                case 4: pod(UInt32(truncatingIfNeeded: x))
                case 5: pod(Int32(truncatingIfNeeded: x))
                case 10: pod(UInt64(bitPattern: x))
                default: pod(x)
                }
            }
        case .arrays(let inner):
            u32(9)
            u64(UInt64(inner.count))
            for x in inner { array(x) }
        }
    }
}
