import Foundation

/// Counter-based random numbers: every draw is a pure function of `(seed, position, stream, index)`.
///
/// Tandem never keeps a random *stream* per session: a stream would make the output depend on how many draws
/// happened before (retries, batching, which replica ran the step). Hashing the coordinates instead makes a
/// re-executed or failed-over step draw exactly the same numbers.
///
/// Construction: `key = mix(mix(seed ^ streamTag) + position * φ)`, then draw `index` is
/// `mix(key + (index + 1) * φ)` — i.e. the SplitMix64 sequence seeded by the per-(seed, stream, position) key,
/// which passes BigCrush; `mix` is the SplitMix64/Stafford-13 finalizer.
public struct PositionRandom: Sendable, Hashable {
    /// Independent families of draws. Different purposes must never share a stream (e.g. the residual draw
    /// must be independent of the noise the draft token was chosen with).
    public enum Stream: UInt64, Sendable, CaseIterable {
        /// Gumbel / exponential noise per (position, token) used by every sampler (drafter and target).
        case sample = 0x243F_6A88_85A3_08D3
        /// Uniform per position for the `exact` accept test.
        case accept = 0x1319_8A2E_0370_7344
        /// Uniform per position for sampling the `exact` residual distribution.
        case residual = 0xA409_3822_299F_31D0
        /// Free for callers (tests, tie-breaking in other components).
        case auxiliary = 0x082E_FA98_EC4E_6C89
    }

    public let seed: UInt64

    @inlinable public init(seed: UInt64) { self.seed = seed }

    @usableFromInline static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// SplitMix64 finalizer: a bijective avalanche mix of 64 bits.
    @inlinable @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The per-(stream, position) key from which all of that position's draws are derived.
    @inlinable @inline(__always)
    public func key(position: Int, stream: Stream) -> Key {
        let s = Self.mix(seed ^ stream.rawValue)
        return Key(raw: Self.mix(s &+ UInt64(bitPattern: Int64(position)) &* Self.golden))
    }

    /// 64 random bits.
    @inlinable public func bits(position: Int, stream: Stream, index: UInt64 = 0) -> UInt64 {
        key(position: position, stream: stream).bits(index)
    }

    /// Uniform in the open interval (0, 1), 53-bit resolution.
    @inlinable public func uniform(position: Int, stream: Stream, index: UInt64 = 0) -> Double {
        key(position: position, stream: stream).uniform(index)
    }

    /// Standard Gumbel noise `-log(-log u)` for `token` at `position` (stream ``Stream/sample``).
    @inlinable public func gumbel(position: Int, token: Int32) -> Double {
        key(position: position, stream: .sample).gumbel(UInt64(UInt32(bitPattern: token)))
    }

    /// The draws of one (seed, stream, position): cheap per-index evaluation inside vocabulary loops.
    public struct Key: Sendable, Hashable {
        public let raw: UInt64
        @inlinable public init(raw: UInt64) { self.raw = raw }

        @inlinable @inline(__always)
        public func bits(_ index: UInt64) -> UInt64 {
            PositionRandom.mix(raw &+ (index &+ 1) &* PositionRandom.golden)
        }

        /// Uniform in (0, 1): never exactly 0 or 1, so logs below are always finite.
        @inlinable @inline(__always)
        public func uniform(_ index: UInt64) -> Double {
            (Double(bits(index) >> 11) + 0.5) * 0x1p-53
        }

        /// Standard exponential `-log u`; strictly positive and finite.
        @inlinable @inline(__always)
        public func exponential(_ index: UInt64) -> Double {
            -log(uniform(index))
        }

        /// Standard Gumbel `-log(-log u)`.
        @inlinable @inline(__always)
        public func gumbel(_ index: UInt64) -> Double {
            -log(exponential(index))
        }
    }
}
