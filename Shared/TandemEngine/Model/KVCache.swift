#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The key/value cache of one sequence: for every layer, the rotated keys and the values of every
/// position evaluated so far, as `Float` or half precision (`type`, see `KVCacheType`).
///
/// **Memory grows in blocks.** Creation reserves address space for `capacity` positions (nothing is
/// committed: a session opened for prompt + 2048 tokens that stops after 100 holds 100 positions' worth,
/// not 2048). Positions are committed `blockPositions` at a time as the sequence grows (one `mprotect`
/// per layer per block, done by `ForwardEngine` before a pass writes them, never per token), and
/// `reset()` gives all of them back to the system. `residentBytes` is what the cache holds now, which is
/// what a memory budget (the verifier's `--kv-budget-mb`) must count; `bytesPerPosition` lets a caller
/// size a session before creating it.
///
/// Layout: for each layer, `capacity × kvWidth` keys followed by `capacity × kvWidth` values, each array
/// starting on a page boundary, elements of `type.elementSize` bytes. At 1.5B (28 layers, kvWidth 256) a
/// position is 56 KiB in f32 and 28 KiB in f16.
///
/// `count` is the number of valid positions; `ForwardEngine.forward` appends to it. Speculative decoding
/// rolls back rejected draft positions with `truncate(to:)`: entries past `count` are simply overwritten
/// by the next forward, so rollback is O(1) (and keeps its blocks).
///
/// Not thread-safe: one forward call at a time per cache.
public final class KVCache: @unchecked Sendable {
    /// Positions committed at a time.
    public static let blockPositions = 256

    public let capacity: Int
    public let layerCount: Int
    public let kvWidth: Int
    public let type: KVCacheType
    /// Number of valid positions.
    public private(set) var count: Int = 0
    /// Positions whose memory is committed (a multiple of `blockPositions`, at most `capacity`).
    public private(set) var committedPositions: Int = 0

    /// Base of the reserved region and its size; `arrayStride` is the byte distance between consecutive
    /// key/value arrays (page-rounded).
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let arrayStride: Int
    private let pageSize: Int

    /// Creates an empty cache for `capacity` positions of `config`'s model (address space only).
    public init(config: ModelConfig, capacity: Int, type: KVCacheType = .default) {
        precondition(capacity > 0, "KV cache capacity must be positive")
        self.capacity = capacity
        self.layerCount = config.layerCount
        self.kvWidth = config.kvWidth
        self.type = type
        let page = Int(getpagesize())
        pageSize = page
        let arrayBytes = capacity * config.kvWidth * type.elementSize
        arrayStride = (arrayBytes + page - 1) / page * page
        mappedBytes = max(arrayStride * 2 * config.layerCount, page)
        guard let p = mmap(nil, mappedBytes, PROT_NONE, MAP_PRIVATE | kvMapAnonymous, -1, 0), p != MAP_FAILED else {
            fatalError("KV cache: cannot reserve \(mappedBytes) bytes of address space (errno \(errno))")
        }
        base = p
    }

    deinit { munmap(base, mappedBytes) }

    /// Bytes one position takes (all layers, keys and values).
    public var bytesPerPosition: Int { layerCount * 2 * kvWidth * type.elementSize }

    /// Bytes one position of `config`'s model takes with `type`: sizes a session before its cache exists.
    public static func bytesPerPosition(config: ModelConfig, type: KVCacheType) -> Int {
        config.layerCount * 2 * config.kvWidth * type.elementSize
    }

    /// Bytes committed now (whole blocks of positions): the memory this cache holds.
    public var residentBytes: Int { committedPositions * bytesPerPosition }

    /// Same as `residentBytes` (kept for callers that summed caches' sizes before caches grew in blocks).
    public var byteCount: Int { residentBytes }

    /// Bytes the cache would hold at full capacity (address space reserved, not memory).
    public var reservedBytes: Int { capacity * bytesPerPosition }

    /// Positions that can still be appended.
    public var remaining: Int { capacity - count }

    /// Forgets every position at or after `newCount` (rollback of rejected speculative tokens). The memory
    /// stays committed: the next tokens reuse it.
    public func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate(to: \(newCount)) with count \(count)")
        count = newCount
    }

    /// Forgets everything and returns the committed memory to the system.
    public func reset() {
        count = 0
        decommitAll()
    }

    /// Makes this cache hold the first `prefix` positions of `other` (same model, same element type): lets
    /// many continuations of one sequence start from its prefixes without evaluating them again
    /// (`tandem fleet record` drafts from every prefix of a target output this way).
    public func copyPrefix(of other: KVCache, count prefix: Int) {
        precondition(other.layerCount == layerCount && other.kvWidth == kvWidth, "caches of different models")
        precondition(other.type == type, "caches of different element types (\(other.type), \(type))")
        precondition(prefix >= 0 && prefix <= other.count && prefix <= capacity, "prefix \(prefix) out of range")
        commit(upTo: prefix)
        let bytes = prefix * kvWidth * type.elementSize
        for layer in 0..<layerCount {
            keyBase(layer: layer).copyMemory(from: other.keyBase(layer: layer), byteCount: bytes)
            valueBase(layer: layer).copyMemory(from: other.valueBase(layer: layer), byteCount: bytes)
        }
        count = prefix
    }

    /// Commits memory for positions `0..<positions` (rounded up to whole blocks, at most `capacity`).
    /// Cheap when already committed: the engine calls it once per pass.
    @inline(__always)
    func commit(upTo positions: Int) {
        if positions > committedPositions { grow(to: positions) }
    }

    private func grow(to positions: Int) {
        let target = min(capacity, (positions + Self.blockPositions - 1) / Self.blockPositions * Self.blockPositions)
        let rowBytes = kvWidth * type.elementSize
        // Page-aligned range covering the new positions inside each array (rounding outward only re-marks
        // pages that are already committed).
        let lo = committedPositions * rowBytes / pageSize * pageSize
        let hi = min(arrayStride, (target * rowBytes + pageSize - 1) / pageSize * pageSize)
        if hi > lo {
            for a in 0..<(2 * layerCount) {
                let rc = mprotect(base + a * arrayStride + lo, hi - lo, PROT_READ | PROT_WRITE)
                precondition(rc == 0, "KV cache: cannot commit memory (errno \(errno))")
            }
        }
        committedPositions = target
    }

    /// Replaces the whole region by a fresh reservation: the pages go back to the system at once (on
    /// Linux and macOS alike, unlike `madvise`).
    private func decommitAll() {
        guard committedPositions > 0 else { return }
        let p = mmap(base, mappedBytes, PROT_NONE, MAP_PRIVATE | kvMapAnonymous | MAP_FIXED, -1, 0)
        precondition(p == base, "KV cache: cannot release memory (errno \(errno))")
        committedPositions = 0
    }

    func advance(by n: Int) { count += n }

    @inline(__always)
    func keyBase(layer: Int) -> UnsafeMutableRawPointer { base + (2 * layer) * arrayStride }

    @inline(__always)
    func valueBase(layer: Int) -> UnsafeMutableRawPointer { base + (2 * layer + 1) * arrayStride }

    /// Keys of `layer` (f32 caches only).
    @inline(__always)
    func keys(layer: Int) -> UnsafeMutablePointer<Float> { keyBase(layer: layer).assumingMemoryBound(to: Float.self) }

    /// Values of `layer` (f32 caches only).
    @inline(__always)
    func values(layer: Int) -> UnsafeMutablePointer<Float> { valueBase(layer: layer).assumingMemoryBound(to: Float.self) }

    /// Keys of `layer` as half bits (f16 caches only).
    @inline(__always)
    func halfKeys(layer: Int) -> UnsafeMutablePointer<UInt16> { keyBase(layer: layer).assumingMemoryBound(to: UInt16.self) }

    /// Values of `layer` as half bits (f16 caches only).
    @inline(__always)
    func halfValues(layer: Int) -> UnsafeMutablePointer<UInt16> { valueBase(layer: layer).assumingMemoryBound(to: UInt16.self) }
}

#if canImport(Darwin)
private let kvMapAnonymous = MAP_ANON
#else
private let kvMapAnonymous = MAP_ANONYMOUS
#endif
