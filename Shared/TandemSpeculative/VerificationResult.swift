/// The outcome of verifying one round of draft tokens.
///
/// `tokens` is what the session appends: the accepted draft prefix followed by exactly one token from the
/// target (the correction at the first rejection, or the bonus token when every draft was accepted).
public struct VerificationResult: Sendable, Hashable {
    /// Number of draft tokens accepted (a prefix of the draft).
    public var acceptedCount: Int
    /// Accepted drafts + one correction/bonus token; always `acceptedCount + 1` long after verification.
    public var tokens: [Int32]
    /// One flag per draft position: `true` for accepted positions; the first rejected position and every
    /// position after it (never evaluated) are `false`.
    public var acceptFlags: [Bool]

    public init(acceptedCount: Int = 0, tokens: [Int32] = [], acceptFlags: [Bool] = []) {
        self.acceptedCount = acceptedCount
        self.tokens = tokens
        self.acceptFlags = acceptFlags
    }

    /// Number of draft tokens that were checked against (accepted + rejected-or-skipped).
    public var draftCount: Int { acceptFlags.count }
    /// Whether every draft token was accepted (the last token is then a bonus token).
    public var allAccepted: Bool { acceptedCount == acceptFlags.count }
    /// The target's own token that ends the round (correction or bonus).
    public var nextToken: Int32 { tokens[tokens.count - 1] }

    /// Empties the result keeping its storage, so a verifier can reuse one value per worker.
    public mutating func reset(draftCount: Int) {
        acceptedCount = 0
        tokens.removeAll(keepingCapacity: true)
        acceptFlags.removeAll(keepingCapacity: true)
        acceptFlags.reserveCapacity(draftCount)
        tokens.reserveCapacity(draftCount + 1)
    }
}
