import Foundation
import TandemEngine
import TandemSpeculative

/// Records one ``FleetTrace/Entry``: the target model's own output for a prompt, then the draft model's
/// next `kMax` tokens at every prefix of it.
///
/// The target output is produced exactly as `tandem generate` and the verifier do (same sampler, same
/// positions). The drafts are produced exactly as a drafter-agent does (``SpeculativeDrafter``, same
/// positions and parameters), but many prefixes at once: the draft model evaluates `prompt + output`
/// once, each group of prefixes copies its KV prefix from there, and the group drafts in batched
/// forwards (one row per prefix). The engine is batch-invariant, so this gives the same tokens as
/// drafting each prefix alone. Runs on the caller's thread (blocking); one recording at a time (the
/// engines are not used concurrently), hence `@unchecked Sendable`.
public struct FleetTraceRecorder: @unchecked Sendable {
    public let draft: ForwardEngine
    public let target: ForwardEngine
    public let params: SamplingParams
    public let kMax: Int
    public let maxTokens: Int
    /// Prefixes drafted together in one batched forward.
    public var groupSize = 16
    /// Longest single forward while evaluating a prompt (bounds the attention scratch).
    public var chunk = 256

    public init(draft: ForwardEngine, target: ForwardEngine, params: SamplingParams, kMax: Int, maxTokens: Int) {
        self.draft = draft
        self.target = target
        self.params = params
        self.kMax = kMax
        self.maxTokens = maxTokens
    }

    public func record(id: String, messages: [FleetTrace.Message], promptTokens: [Int32],
                       isEndOfGeneration: (Int32) -> Bool) throws -> FleetTrace.Entry {
        let output = try targetOutput(promptTokens, isEndOfGeneration: isEndOfGeneration)
        let (drafts, confidences) = try draftsAtEveryPrefix(promptTokens, output: output)
        return FleetTrace.Entry(id: id, messages: messages, promptTokens: promptTokens, output: output,
                                drafts: drafts, confidences: confidences)
    }

    /// Target-only generation (what every lossless session of this prompt emits).
    func targetOutput(_ prompt: [Int32], isEndOfGeneration: (Int32) -> Bool) throws -> [Int32] {
        let capacity = min(target.model.config.contextLength, prompt.count + maxTokens)
        let cache = target.makeCache(capacity: capacity)
        var logits = try feed(target, cache: cache, tokens: prompt)
        let sampler = Sampler(vocabSize: target.model.config.vocabularySize)
        var committed = prompt
        var output: [Int32] = []
        while output.count < maxTokens {
            let next = logits.withUnsafeBufferPointer {
                sampler.sample(logits: $0, params: params, position: committed.count,
                               recentTokens: params.hasRepetitionPenalty ? committed : [])
            }
            output.append(next)
            committed.append(next)
            if isEndOfGeneration(next) || cache.remaining == 0 { break }
            logits = Array(try target.decode(cache: cache, token: next))
        }
        return output
    }

    /// `kMax` draft tokens after `prompt + output[0..<i]` for every `i` in `0..<output.count`.
    func draftsAtEveryPrefix(_ prompt: [Int32], output: [Int32]) throws -> ([[Int32]], [[Float]]) {
        let sequence = prompt + output
        let capacity = min(draft.model.config.contextLength, sequence.count + kMax + 1)
        // The master cache holds everything but the last token; prefix i needs sequence[0..<P+i-1].
        let master = draft.makeCache(capacity: capacity)
        _ = try feed(draft, cache: master, tokens: Array(sequence.dropLast()), logits: false)
        let drafter = SpeculativeDrafter(vocabSize: draft.model.config.vocabularySize)
        let group = max(1, groupSize)
        let caches = (0..<min(group, output.count)).map { _ in draft.makeCache(capacity: capacity) }
        var drafts = [[Int32]](repeating: [], count: output.count)
        var confidences = [[Float]](repeating: [], count: output.count)
        var start = 0
        while start < output.count {
            let prefixes = Array(start..<min(output.count, start + group))
            var next: [Int32] = []
            for (g, i) in prefixes.enumerated() {
                caches[g].copyPrefix(of: master, count: prompt.count + i - 1)
                next.append(sequence[prompt.count + i - 1])
            }
            for j in 0..<kMax {
                let result = try draft.forward(prefixes.indices.map {
                    ForwardRequest(cache: caches[$0], tokens: [next[$0]], logits: .last)
                })
                for (g, i) in prefixes.enumerated() {
                    let position = prompt.count + i + j
                    let recent = params.hasRepetitionPenalty ? Array(sequence[0..<(prompt.count + i)]) + drafts[i] : []
                    let step = drafter.draft(logits: result.lastLogits(request: g), params: params, position: position,
                                             recentTokens: recent)
                    drafts[i].append(step.token)
                    confidences[i].append(step.confidence)
                    next[g] = step.token
                }
            }
            start += group
        }
        return (drafts, confidences)
    }

    /// Evaluates `tokens` into `cache` in chunks; returns the last position's logits when asked.
    private func feed(_ engine: ForwardEngine, cache: KVCache, tokens: [Int32], logits: Bool = true) throws -> [Float] {
        var start = 0
        var last: [Float] = []
        while start < tokens.count {
            let end = min(tokens.count, start + chunk)
            let final = end == tokens.count
            let r = try engine.forward([ForwardRequest(cache: cache, tokens: Array(tokens[start..<end]),
                                                       logits: final && logits ? .last : .none)])
            if final && logits { last = Array(r.lastLogits(request: 0)) }
            start = end
        }
        return last
    }
}
