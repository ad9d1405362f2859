/// Which new positions of a request need logits.
public enum LogitsSelection: Sendable, Equatable {
    /// Every new position (verification of K draft tokens + 1, perplexity).
    case all
    /// Only the last new position (decode, end of a prefill).
    case last
    /// None (prefill of a prefix whose next-token distribution is not needed).
    case none
}

/// One sequence's share of a `ForwardEngine.forward` call: new tokens appended at the cache's end.
///
/// The tokens are evaluated at positions `cache.count ..< cache.count + tokens.count`; after the call the
/// cache holds them. Each cache may appear at most once per call.
public struct ForwardRequest {
    public var cache: KVCache
    public var tokens: [Int32]
    public var logits: LogitsSelection

    public init(cache: KVCache, tokens: [Int32], logits: LogitsSelection = .all) {
        self.cache = cache
        self.tokens = tokens
        self.logits = logits
    }
}

/// Errors from `ForwardEngine.forward`. Nothing is appended to any cache when one is thrown.
public struct ForwardError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "forward error: \(message)" }
}

/// The logits of one `forward` call, as views into the engine's output buffer.
///
/// Valid only until the next call on the same engine (the buffer is reused to avoid per-token allocation):
/// copy with `Array(result.logits(...))` to keep them.
public struct ForwardResult {
    let base: UnsafePointer<Float>
    let rowStart: UnsafePointer<Int>
    let rowCount: UnsafePointer<Int>
    /// Number of requests in the call.
    public let requestCount: Int
    /// Vocabulary size (length of every logits row).
    public let vocabularySize: Int

    /// Number of logits rows returned for request `request` (its token count for `.all`, 1 for `.last`, 0 for `.none`).
    public func rowCount(request: Int) -> Int {
        precondition(request >= 0 && request < requestCount)
        return rowCount[request]
    }

    /// Logits for row `row` of request `request`. With `.all`, row `i` predicts the token after the
    /// request's `i`-th new token; with `.last`, row 0 is the last position.
    public func logits(request: Int, row: Int = 0) -> UnsafeBufferPointer<Float> {
        precondition(request >= 0 && request < requestCount)
        precondition(row >= 0 && row < rowCount[request], "request \(request) has \(rowCount[request]) logits rows")
        return UnsafeBufferPointer(start: base + (rowStart[request] + row) * vocabularySize, count: vocabularySize)
    }

    /// The logits of the last returned row of `request`.
    public func lastLogits(request: Int) -> UnsafeBufferPointer<Float> {
        logits(request: request, row: rowCount(request: request) - 1)
    }
}
