/// What a request can ask for: the one spelling of the serving mode. The HTTP field `tandem_mode`,
/// the gateway's `--default-mode` / `TANDEM_DEFAULT_MODE`, the response's `tandem.mode` and the
/// benchmarks all use these raw values; the accepted spellings and the error text live here.
///
/// A serving mode reaches the drafter and verifier as the acceptance rule it implies
/// (``verification``) plus, for `centralized`, a draft length of 0 (``draftLength(requested:)``).
public enum ServingMode: String, Codable, Sendable, CaseIterable, Hashable {
    /// Speculative decoding with shared Gumbel noise: output identical to target-only sampling (the default).
    case coupled
    /// Speculative decoding with rejection sampling: highest acceptance; the output depends on the drafts.
    case exact
    /// No drafting: the verifier decodes every token itself, batched with the others (`coupled` with K = 0).
    case centralized

    /// The mode a request gets when it names none and the gateway sets no other default.
    public static let standard = ServingMode.coupled

    /// The accepted spellings, for help and error texts: "coupled, exact or centralized".
    public static let choices: String = {
        let names = allCases.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }()

    /// The mode spelled `text` (exactly one of the raw values), nil for anything else.
    public init?(parsing text: String) {
        self.init(rawValue: text)
    }

    /// The error text when `what` (a field or flag name) holds no serving mode:
    /// "tandem_mode must be coupled, exact or centralized".
    public static func invalid(_ what: String) -> String {
        "\(what) must be \(choices)"
    }

    /// The acceptance rule the verifier applies.
    public var verification: VerificationMode {
        switch self {
        case .coupled, .centralized: .coupled
        case .exact: .exact
        }
    }

    /// The draft length a session runs with, given the one the request asked for (nil: the drafter's
    /// controller decides): `centralized` always drafts nothing.
    public func draftLength(requested: Int?) -> Int? {
        self == .centralized ? 0 : requested
    }
}

/// The lossless acceptance rule of a session's rounds, as drafter and verifier receive it (``SessionStart``,
/// ``SessionOpen``): a request's ``ServingMode/verification``. The engine's own copy of the rule is
/// `SpeculationMode` (TandemSpeculative, which knows no wire; the rules are documented there), converted
/// in TandemServing's WireConversions.swift.
public enum VerificationMode: String, Codable, Sendable, CaseIterable, Hashable {
    /// Rejection sampling against the draft distribution: highest acceptance; output depends on the draft.
    case exact
    /// Shared Gumbel noise: output identical to target-only sampling with the same seed.
    case coupled
}
