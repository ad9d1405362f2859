#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A GGUF model file, memory-mapped read-only and fully validated on open.
///
/// Opening parses the header, every metadata key/value and every tensor description, and checks that each
/// tensor's data is aligned and lies inside the file; a malformed or truncated file throws a `GGUFError`
/// naming the problem instead of crashing later. Tensor data is never copied: `tensorData(_:)` returns a
/// pointer into the mapping, which lives as long as this object, so weights can stay quantized in the page
/// cache and be shared between processes.
///
/// ```swift
/// let file = try GGUFFile(path: path)
/// let layers = file.metadata["qwen2.block_count"]?.int
/// let vocab = file.metadata["tokenizer.ggml.tokens"]?.strings
/// ```
public final class GGUFFile: @unchecked Sendable {
    // @unchecked: all stored properties are immutable after init; the mapping is read-only.

    /// Path the file was opened from.
    public let path: String
    /// Format version (2 or 3).
    public let version: Int
    /// Metadata key/values, by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order (useful for dumps).
    public let metadataKeys: [String]
    /// Tensor descriptions in file order.
    public let tensors: [GGUFTensorInfo]
    /// Data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Offset of the tensor data section from the start of the file.
    public let dataOffset: Int
    /// Size of the mapped file in bytes.
    public let fileSize: Int

    private let tensorIndex: [String: Int]
    private let base: UnsafeRawPointer
    /// Whether `base` came from mmap (true) or was allocated (in-memory parsing, for tests).
    private let mapped: Bool

    /// Memory-maps and parses the file at `path`.
    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw GGUFError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw GGUFError(.io, "cannot stat '\(path)': \(String(cString: strerror(errno)))")
        }
        let size = Int(st.st_size)
        guard size > 0 else { throw GGUFError(.truncated, "'\(path)' is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw GGUFError(.io, "cannot mmap '\(path)': \(String(cString: strerror(errno)))")
        }
        do {
            try self.init(path: path, base: UnsafeRawPointer(p), size: size, mapped: true)
        } catch {
            munmap(p, size)
            throw error
        }
    }

    /// Parses a GGUF image held in memory (copied). Intended for tests and tools; models use `init(path:)`.
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        let size = max(bytes.count, 1)
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { p.copyMemory(from: s, byteCount: bytes.count) }
        }
        do {
            try self.init(path: name, base: UnsafeRawPointer(p), size: bytes.count, mapped: false)
        } catch {
            p.deallocate()
            throw error
        }
    }

    private init(path: String, base: UnsafeRawPointer, size: Int, mapped: Bool) throws {
        self.path = path
        self.base = base
        self.fileSize = size
        self.mapped = mapped
        var parser = GGUFParser(base: base, size: size, path: path)
        let parsed = try parser.parse()
        self.version = parsed.version
        self.metadata = parsed.metadata
        self.metadataKeys = parsed.metadataKeys
        self.tensors = parsed.tensors
        self.alignment = parsed.alignment
        self.dataOffset = parsed.dataOffset
        var index: [String: Int] = [:]
        for (i, t) in parsed.tensors.enumerated() { index[t.name] = i }
        self.tensorIndex = index
    }

    deinit {
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), fileSize)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// The description of the tensor named `name`, if present.
    public func tensor(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The description of the tensor named `name`, or a `.missing` error.
    public func requireTensor(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensor(name) else { throw GGUFError(.missing, "tensor '\(name)' not found in \(path)") }
        return t
    }

    /// A pointer to the tensor's bytes inside the mapping (valid while this `GGUFFile` is alive).
    public func tensorData(_ info: GGUFTensorInfo) -> UnsafeRawPointer {
        base + info.fileOffset
    }

    /// Tells the kernel that `count` bytes at `pointer` (inside the mapping) are not needed soon, so
    /// their pages leave this process's resident set. The mapping is private and never written,
    /// so the bytes stay valid: a later access reads them from the file again. Used after a
    /// tensor has been copied into a packed layout. No-op for in-memory files.
    public func releasePages(_ pointer: UnsafeRawPointer, count: Int) {
        guard mapped, count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = max(Int(bitPattern: base), (Int(bitPattern: pointer) / page) * page)
        let end = min(Int(bitPattern: base) + fileSize, Int(bitPattern: pointer) + count)
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, Int32(MADV_DONTNEED))
    }

    /// The raw bytes of the whole file (valid while this `GGUFFile` is alive).
    public var rawBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: fileSize) }

    /// Architecture name from `general.architecture` (e.g. `qwen2`, `llama`).
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// Shortcut for `metadata[key]`.
    public subscript(key: String) -> GGUFValue? { metadata[key] }
}
