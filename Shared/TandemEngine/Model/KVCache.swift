/// The key/value cache of one sequence: for every layer, the rotated keys and the values of every
/// position evaluated so far.
///
/// Storage is allocated once at creation for `capacity` positions (no allocation while decoding).
/// Layout: for each layer, `capacity × kvWidth` keys followed by `capacity × kvWidth` values, `Float`.
/// (f32 rather than f16: attention reads it directly with no conversion; at 1.5B it is 56 KiB per
/// position, so a 4096-position cache is 224 MiB.)
///
/// `count` is the number of valid positions; `ForwardEngine.forward` appends to it. Speculative decoding
/// rolls back rejected draft positions with `truncate(to:)`: entries past `count` are simply overwritten
/// by the next forward, so rollback is O(1).
///
/// Not thread-safe: one forward call at a time per cache.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let layerCount: Int
    public let kvWidth: Int
    /// Number of valid positions.
    public private(set) var count: Int = 0
    let storage: UnsafeMutablePointer<Float>

    /// Creates an empty cache for `capacity` positions of `config`'s model.
    public init(config: ModelConfig, capacity: Int) {
        precondition(capacity > 0, "KV cache capacity must be positive")
        self.capacity = capacity
        self.layerCount = config.layerCount
        self.kvWidth = config.kvWidth
        let n = config.layerCount * 2 * capacity * config.kvWidth
        storage = .allocate(capacity: n)
        storage.initialize(repeating: 0, count: n)
    }

    deinit { storage.deallocate() }

    /// Bytes of storage held by this cache.
    public var byteCount: Int { layerCount * 2 * capacity * kvWidth * MemoryLayout<Float>.size }

    /// Positions that can still be appended.
    public var remaining: Int { capacity - count }

    /// Forgets every position at or after `newCount` (rollback of rejected speculative tokens).
    public func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate(to: \(newCount)) with count \(count)")
        count = newCount
    }

    /// Forgets everything.
    public func reset() { count = 0 }

    /// Makes this cache hold the first `prefix` positions of `other` (same model): lets many
    /// continuations of one sequence start from its prefixes without evaluating them again
    /// (`tandem fleet record` drafts from every prefix of a target output this way).
    public func copyPrefix(of other: KVCache, count prefix: Int) {
        precondition(other.layerCount == layerCount && other.kvWidth == kvWidth, "caches of different models")
        precondition(prefix >= 0 && prefix <= other.count && prefix <= capacity, "prefix \(prefix) out of range")
        for layer in 0..<layerCount {
            keys(layer: layer).update(from: other.keys(layer: layer), count: prefix * kvWidth)
            values(layer: layer).update(from: other.values(layer: layer), count: prefix * kvWidth)
        }
        count = prefix
    }

    func advance(by n: Int) { count += n }

    @inline(__always)
    func keys(layer: Int) -> UnsafeMutablePointer<Float> { storage + layer * 2 * capacity * kvWidth }

    @inline(__always)
    func values(layer: Int) -> UnsafeMutablePointer<Float> { storage + (layer * 2 + 1) * capacity * kvWidth }
}
