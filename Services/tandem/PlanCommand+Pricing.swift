import Foundation
import Logging
import TandemEngine
import TandemKernels
import TandemQuantize
import TandemService
import TandemSpeculative
import TandemWire

/// What one layer matrix costs the device per drafted token at each type, and the source draft's
/// time per token: the prices `tandem plan` optimises with.
struct PlanPricing: Sendable {
    /// How the figures were obtained, for the output and the report.
    var kind: String
    var description: String
    var baseMsPerToken: Double
    /// ms per batch-1 product, by the type written and the matrix role (`LayerMatvecProbe.roles`).
    var table: [GGMLType: [String: Double]]

    func ms(_ type: GGMLType, _ role: String) -> Double? { table[type]?[role] }
}

extension PlanCommand {
    /// Prices from, in order of preference: the device profile's measured per-type layer times; this
    /// machine, measured now (no profile); a profile without per-type times, priced in proportion to bytes.
    static func pricing(profile: EdgeDeviceProfile?, model: LanguageModel, types: [GGMLType], threads: Int,
                        speedPrompt: [Int32], logger: Logger) async throws -> PlanPricing {
        if let profile, let measured = profile.layerMatvecMs {
            var table: [GGMLType: [String: Double]] = [:]
            for (name, row) in measured {
                if let t = try? QuantizationPlan.type(named: name) { table[t] = row }
            }
            let missing = types.filter { table[$0] == nil }
            guard missing.isEmpty else {
                throw PlanError("profile \(profile.name) has no layer times for \(missing.map(\.name).joined(separator: ", ")) "
                                + "(re-run tandem profile with --matvec-types including them)")
            }
            return PlanPricing(kind: "per-type layer times measured on the device",
                               description: "\(profile.name) (\(profile.source))",
                               baseMsPerToken: 1000 / profile.decodeTokensPerSecond, table: table)
        }
        if let profile {
            // Bytes-proportional: the profile's decode time spread over the bytes a decode step reads.
            let file = model.gguf
            let hasOutput = file.tensors.contains { $0.name == "output.weight" }
            let bytes = file.tensors.filter { $0.dimensions.count >= 2 && ($0.name != "token_embd.weight" || !hasOutput) }
                .reduce(0) { $0 + $1.byteCount }
            let msPerByte = (1000 / profile.decodeTokensPerSecond) / Double(max(bytes, 1))
            let shapes = LayerMatvecProbe.roles.compactMap { r in LayerMatvecProbe.tensor(in: file, layer: 0, r.tensor).map { (r.role, $0.elementCount) } }
            var table: [GGMLType: [String: Double]] = [:]
            for t in types {
                for (role, elements) in shapes { table[t, default: [:]][role] = Double(t.byteCount(elements: elements)) * msPerByte }
            }
            return PlanPricing(kind: "ASSUMED bytes-proportional (the profile has no per-type layer times)",
                               description: "\(profile.name) (\(profile.source))",
                               baseMsPerToken: 1000 / profile.decodeTokensPerSecond, table: table)
        }
        let table = try await BlockingWork.run("plan-matvec") {
            try LayerMatvecProbe.measure(model: model, types: types, threads: threads)
        }
        let engine = ForwardEngine(model: model, threads: threads, logger: logger)
        let tps = try await BlockingWork.run("plan-speed") {
            try AlignmentProfiler.decodeTokensPerSecond(engine, prompt: speedPrompt, tokens: 64)
        }
        #if DEBUG
        let build = "debug build (kernels optimized)"
        #else
        let build = "release build"
        #endif
        return PlanPricing(kind: "per-type layer times measured on this machine",
                           description: "this machine, \(threads) threads, \(build), measured now "
                               + String(format: "(source draft %.1f tok/s)", tps),
                           baseMsPerToken: 1000 / tps, table: table)
    }
}
