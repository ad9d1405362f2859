import TandemEngine
import TandemSpeculative

/// A prompt-lookup proposal added to one decode step of a batch: the matched n-gram length and the
/// number of proposed tokens (they follow the step's last committed token in its forward request).
struct LookupProposal {
    var ngram: Int
    var count: Int
}

extension VerifierCore {
    /// Adds prompt-lookup (n-gram) proposals to the batch's decode steps (K = 0 requests: a drafter's K = 0
    /// round or a session this verifier drives alone) before the forward pass (compute thread).
    ///
    /// For each such step, in batch order: the session's context is searched for its last n-gram
    /// (``PromptLookupDrafter``), and the number of tokens to propose is chosen from the verifier's batch
    /// time model and the session's lookup acceptance so far (``PromptLookupDrafter/proposalLength``): extra
    /// positions slow the whole batch, so they are proposed only where the expected accepted tokens pay for
    /// them. Proposals never take a step past its `decodeSteps` or the session's capacity.
    ///
    /// Returns one entry per `items` element (nil: no proposal); `requests[i]`'s tokens get the proposal.
    func proposeLookups(_ requests: inout [ForwardRequest], sessions items: [VerifierSession],
                        decodeSteps: [Int?], isDecodeStep: [Bool], contexts: [Int]) -> [LookupProposal?] {
        var proposals = [LookupProposal?](repeating: nil, count: items.count)
        guard configuration.maxLookupTokens > 0, let lookupConfig = configuration.promptLookup,
              isDecodeStep.contains(true) else { return proposals }
        let drafter = PromptLookupDrafter(configuration: lookupConfig)
        var shape = BatchShape(sequences: requests.count, newTokens: requests.reduce(0) { $0 + $1.tokens.count },
                               contextTokens: contexts.reduce(0, +))
        // Tokens the batch yields without proposals (one per verified sequence), plus what proposals add.
        var expectedTokens = Double(items.count)
        // The batch's time: the linear model's prediction, never below what such batches measured lately
        // (a fit on few, similar batches can predict nonsense); each extra position adds the model's
        // per-token coefficient, the marginal price of one more position in a sequence already in the batch.
        let model = timeModel
        let perPosition = max(0, model.coefficients[2])
        let measured = recentDecodeBatchSeconds
        for (i, session) in items.enumerated() where isDecodeStep[i] {
            let position = session.committed.count
            // A step of a multi-step decode stops at its step count; a single step (nil) at the lookup cap.
            let stepRoom = decodeSteps[i].map { $0 - 1 } ?? configuration.maxLookupTokens
            let available = min(configuration.maxLookupTokens, stepRoom, session.capacity - position - 1)
            guard available > 0,
                  let match = session.committed.withUnsafeBufferPointer({ drafter.match(in: $0, maxTokens: available) })
            else { continue }
            let alpha = session.lookup.acceptance(ngram: match.ngram)
            let baseSeconds = max(model.predictSeconds(shape), measured)
            let k = configuration.lookupIgnoresCost ? match.continuation.count : PromptLookupDrafter.proposalLength(
                available: match.continuation.count, acceptance: alpha, batchTokens: expectedTokens,
                batchSeconds: { extra in baseSeconds + perPosition * Double(extra) })
            guard k > 0 else { continue }
            let from = match.continuation.lowerBound
            requests[i].tokens.append(contentsOf: session.committed[from..<from + k])
            shape.newTokens += k
            expectedTokens += SpeculationMath.expectedAcceptedDrafts(acceptance: alpha, draftLength: k)
            proposals[i] = LookupProposal(ngram: match.ngram, count: k)
        }
        return proposals
    }
}
