import ArgumentParser

/// `--register/--no-register`, for the replicas that are also useful without a cluster (estimator,
/// config-advisor, metrics-store): one declaration, so the flag and its help read the same in each.
/// Drafters and verifiers always register: without the gateway nobody can reach them.
public struct RegistrationOptions: ParsableArguments, Sendable {
    @Flag(inversion: .prefixedNo, help: "Register with the gateway and heartbeat (off for standalone use and tests).")
    public var register = true

    public init() {}
}
