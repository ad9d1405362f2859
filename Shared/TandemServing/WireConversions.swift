import TandemEngine
import TandemSpeculative
import TandemWire

// Conversions between the wire schema (no engine dependency) and the engine's own types.

extension SamplingParams {
    public init(_ wire: WireSampling) {
        self.init(temperature: wire.temperature, topK: wire.topK, topP: wire.topP, minP: wire.minP,
                  repetitionPenalty: wire.repetitionPenalty, seed: wire.seed)
    }
}

extension WireSampling {
    public init(_ params: SamplingParams) {
        self.init(temperature: params.temperature, topK: params.topK, topP: params.topP, minP: params.minP,
                  repetitionPenalty: params.repetitionPenalty, seed: params.seed)
    }
}

extension SparseDistribution {
    public init(_ wire: WireDistribution) { self.init(tokens: wire.tokens, probs: wire.probs) }
}

extension WireDistribution {
    public init(_ distribution: SparseDistribution) {
        self.init(tokens: distribution.tokens, probs: distribution.probs)
    }
}

extension SpeculationMode {
    public init(_ wire: VerificationMode) {
        switch wire {
        case .exact: self = .exact
        case .coupled: self = .coupled
        }
    }
}
