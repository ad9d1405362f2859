/// Offline evaluation loops over one sequence: prefill in bounded chunks, greedy continuation, and
/// teacher-forced scoring. The alignment profiler and the per-layer plan's sensitivity probe both measure
/// models this way, so they read the same rows by the same path.
extension ForwardEngine {
    /// Feeds `tokens` into `cache` in forwards of at most `chunk` tokens (bounding the attention scratch)
    /// and returns the most likely next token after the last one.
    public func prefill(_ tokens: [Int32], cache: KVCache, chunk: Int = 256) throws -> Int32 {
        guard !tokens.isEmpty else { throw ForwardError("empty prompt") }
        var start = 0
        var next: Int32 = 0
        while start < tokens.count {
            let end = min(tokens.count, start + chunk)
            let r = try forward([ForwardRequest(cache: cache, tokens: Array(tokens[start..<end]),
                                                logits: end == tokens.count ? .last : .none)])
            if end == tokens.count { next = Sampler.argmax(logits: r.lastLogits(request: 0)) }
            start = end
        }
        return next
    }

    /// The model's greedy continuation of `prompt`: at most `maxTokens`, stopping after an end-of-generation
    /// token or when the context is full.
    public func greedyContinuation(of prompt: [Int32], maxTokens: Int, chunk: Int = 256,
                                   isEndOfGeneration: (Int32) -> Bool) throws -> [Int32] {
        let capacity = min(model.config.contextLength, prompt.count + maxTokens)
        guard capacity > prompt.count else { throw ForwardError("the prompt fills the model's context") }
        let cache = makeCache(capacity: capacity)
        var next = try prefill(prompt, cache: cache, chunk: chunk)
        var output: [Int32] = []
        while true {
            output.append(next)
            if output.count >= maxTokens || isEndOfGeneration(next) || cache.remaining == 0 { break }
            next = Sampler.argmax(logits: try decode(cache: cache, token: next))
        }
        return output
    }

    /// Evaluates `tokens` teacher-forced: `body(i, row)` gets the logits predicting `tokens[scoredFrom + i]`,
    /// for every position from `scoredFrom` (at least 1) to the end, in order.
    public func teacherForcedRows(_ tokens: [Int32], scoredFrom: Int, chunk: Int = 256,
                                  body: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        guard scoredFrom >= 1, scoredFrom <= tokens.count else {
            throw ForwardError("scored positions must start within the sequence, after its first token")
        }
        guard scoredFrom < tokens.count else { return }
        let cache = makeCache(capacity: tokens.count)
        let context = Array(tokens[0..<(scoredFrom - 1)])
        var start = 0
        while start < context.count {
            let end = min(context.count, start + chunk)
            _ = try forward([ForwardRequest(cache: cache, tokens: Array(context[start..<end]), logits: .none)])
            start = end
        }
        let fed = Array(tokens[(scoredFrom - 1)..<(tokens.count - 1)])
        start = 0
        while start < fed.count {
            let end = min(fed.count, start + chunk)
            let r = try forward([ForwardRequest(cache: cache, tokens: Array(fed[start..<end]), logits: .all)])
            for row in 0..<(end - start) { try body(start + row, r.logits(request: 0, row: row)) }
            start = end
        }
    }
}
