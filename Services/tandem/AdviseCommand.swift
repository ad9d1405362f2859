import ArgumentParser
import Foundation
import TandemEngine
import TandemSpeculative
import TandemWire

/// `tandem advise`: the config-advisor's joint (draft variant, K) choice for one device profile and one
/// objective, computed locally from alignment profiles (docs/alignment.md), with the table of every
/// candidate and its predicted goodput, verifier time per token and device energy per token.
///
/// The service answers the same question for drafters that send their profile (ConfigAdvisorPolicy+Joint);
/// this command shows the whole table the service ranks, so a choice can be checked by eye.
struct AdviseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "advise",
        abstract: "Choose (draft variant, K) for a device profile and objective from alignment profiles.")

    @Option(help: "Device profile: a JSON file (tandem profile --out) or a name in compose/profiles/.")
    var device: String

    @Option(help: "Objective: goodput (tokens/s), cost (verifier time per token) or energy (device joules per token).")
    var objective: String = "goodput"

    @Option(help: "Alignment profile JSON (tandem profile --pair --out), repeatable; each file may hold several variants.")
    var alignment: [String] = []

    @Option(help: "Use the sampled acceptance curve (Σ min(p, q)) instead of the greedy one.")
    var acceptance: String = "greedy"

    @Option(name: .customLong("verify-fixed-ms"),
            help: "Verifier batch time: fixed part, ms (default: the advisor's prior for Qwen2.5-Coder-1.5B here).")
    var verifyFixedMs = 10.5

    @Option(name: .customLong("verify-per-token-ms"), help: "Verifier batch time: per verified position (K+1), ms.")
    var verifyPerTokenMs = 19.5

    @Option(name: .customLong("idle-power-fraction"),
            help: "Device power while waiting for the verifier, as a fraction of drafting power (0: drafting energy only).")
    var idlePowerFraction = 0.0

    @Option(name: .customLong("min-k"), help: "Smallest K considered.")
    var minK = 1

    @Option(name: .customLong("max-k"), help: "Largest K considered (default: the alignment profiles' k_max).")
    var maxK: Int?

    func validate() throws {
        guard JointConfigEvaluator.Objective(rawValue: objective) != nil else {
            throw ValidationError("--objective must be goodput, cost or energy (got '\(objective)')")
        }
        guard acceptance == "greedy" || acceptance == "sampled" else {
            throw ValidationError("--acceptance must be greedy or sampled")
        }
        guard !alignment.isEmpty else { throw ValidationError("give at least one --alignment FILE (tandem profile --pair --out FILE)") }
        guard verifyFixedMs >= 0, verifyPerTokenMs >= 0, verifyFixedMs + verifyPerTokenMs > 0 else {
            throw ValidationError("verifier times must be non-negative and not both zero")
        }
        guard idlePowerFraction >= 0, minK >= 1, (maxK ?? minK) >= minK else {
            throw ValidationError("need --idle-power-fraction >= 0 and 1 <= --min-k <= --max-k")
        }
    }

    func run() throws {
        let profile = try EdgeDeviceProfile.load(path: Self.resolveDevice(device))
        var profiles: [AlignmentProfile] = []
        for file in alignment { profiles += try AlignmentProfile.load(path: file) }
        print(try report(profile: profile, alignment: profiles))
    }

    /// The printed report (tests call it).
    func report(profile: EdgeDeviceProfile, alignment profiles: [AlignmentProfile]) throws -> String {
        let targets = Set(profiles.map { JointConfigEvaluator.modelKey($0.targetModel) })
        guard targets.count == 1 else {
            throw ValidationError("the alignment profiles are for different targets (\(targets.sorted().joined(separator: ", ")))")
        }
        let device = JointConfigEvaluator.Device(name: profile.name, draftModel: profile.draftModel, draftMs: profile.draftMs,
                                                 decodeTokensPerSecond: profile.decodeTokensPerSecond,
                                                 rttSeconds: profile.network.rttMs / 1000,
                                                 joulesPerToken: profile.joulesPerToken, powerWatts: profile.powerWatts)
        let variants = JointConfigEvaluator.variants(from: profiles, device: device, sampled: acceptance == "sampled")
        let goal = JointConfigEvaluator.Objective(rawValue: objective)!
        let upper = maxK ?? (profiles.map(\.kMax).max() ?? 8)
        let verify = VerifyTimeModel(fixedSeconds: verifyFixedMs / 1000, perTokenSeconds: verifyPerTokenMs / 1000)
        let result: JointConfigEvaluator.Result
        do {
            result = try JointConfigEvaluator.evaluate(device: device, variants: variants, verify: verify, objective: goal,
                                                       kRange: minK...max(minK, upper),
                                                       idlePowerFraction: idlePowerFraction)
        } catch {
            throw ValidationError(error.description)
        }
        var lines: [String] = []
        lines.append("device \(profile.name): \(profile.draftModel) at \(String(format: "%.1f", profile.decodeTokensPerSecond)) tok/s, "
            + "rtt \(String(format: "%.1f", profile.network.rttMs)) ms, "
            + (profile.joulesPerToken.map { String(format: "%.4f J/token", $0) }
               ?? (profile.powerWatts.map { String(format: "%.1f W (no joules_per_token: power / tok/s used)", $0) }
                   ?? "no energy figure (energy column n/a)")))
        lines.append("target \(profiles[0].targetModel); verifier batch time \(verifyFixedMs) ms + \(verifyPerTokenMs) ms x (K+1); "
            + "acceptance: \(acceptance); objective: \(objective)")
        for (i, v) in variants.enumerated() {
            lines.append("  [\(i)] \(v.name) (\(v.quantization)): time x\(String(format: "%.3f", v.timeScale)) (\(v.timeScaleSource)); "
                + "acceptance \(v.acceptanceSource) " + v.acceptance.map { String(format: "%.2f", $0) }.joined(separator: " "))
        }
        lines.append("  variant  K  tokens/round  round ms  goodput tok/s  verifier ms/token  device mJ/token")
        for (i, c) in result.candidates.enumerated() {
            let energy = c.joulesPerToken.map { String(format: "%15.2f", $0 * 1000) } ?? String(repeating: " ", count: 12) + "n/a"
            lines.append(String(format: "  %@ [%d] %2d  %12.3f  %8.2f  %13.2f  %17.2f  %@",
                                i == result.best ? "*" : " ", c.variant, c.k, c.expectedTokens, c.roundSeconds * 1000,
                                c.goodput, c.verifierSecondsPerToken * 1000, energy))
        }
        let best = result.choice
        let v = variants[best.variant]
        let value: String = switch goal {
        case .goodput: String(format: "%.2f tokens/s", best.goodput)
        case .cost: String(format: "%.2f verifier ms per token", best.verifierSecondsPerToken * 1000)
        case .energy: String(format: "%.2f mJ per token", (best.joulesPerToken ?? 0) * 1000)
        }
        lines.append("choice for \(objective): \(v.name) (\(v.quantization)), K = \(best.k): \(value)")
        return lines.joined(separator: "\n")
    }

    /// A path as given, else `compose/profiles/<name>.json` under the current directory.
    static func resolveDevice(_ name: String) throws -> String {
        let expanded = (name as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) { return expanded }
        let candidate = "compose/profiles/\(name).json"
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        throw ValidationError("device profile '\(name)' is neither a file nor compose/profiles/\(name).json")
    }
}
