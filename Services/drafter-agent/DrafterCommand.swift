import ArgumentParser
import Logging
import TandemBus
import TandemService
import TandemTelemetry
import TandemWire

/// `drafter-agent`: an edge device. Runs a draft model, drafts K tokens per round for each of its
/// sessions, sends them to the session's verifier and reports committed tokens to the gateway.
@main
struct DrafterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drafter-agent", abstract: "Tandem drafter: drafts tokens with a small model on an edge device.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Draft model: catalog name or GGUF path [TANDEM_DRAFT_MODEL].")
    var model: String?

    @Option(help: "Device profile name [TANDEM_DEVICE].")
    var device: String?

    @Option(help: "Device power while drafting, watts [TANDEM_DEVICE_POWER_WATTS].")
    var powerWatts: Double?

    @Option(help: "Compute throttle, 0 < t <= 1 (1 = full speed) [TANDEM_DEVICE_THROTTLE].")
    var throttle: Double?

    func run() async throws {
        TelemetryBootstrap.bootstrap(label: "drafter-agent", level: common.resolvedLogLevel())
        let logger = Logger(label: "tandem.drafter")
        let context = try BusContext()
        let profile = DeviceProfile(
            name: Setting.string(device, env: "TANDEM_DEVICE", default: "local"),
            powerWatts: try Setting.double(powerWatts, env: "TANDEM_DEVICE_POWER_WATTS", default: 15),
            computeThrottle: try Setting.double(throttle, env: "TANDEM_DEVICE_THROTTLE", default: 1))
        guard profile.computeThrottle > 0, profile.computeThrottle <= 1 else {
            throw ValidationError("throttle must be in (0, 1]")
        }
        try await ReplicaMain.run(role: .drafter, common: common, context: context, logger: logger,
                                  model: Setting.optionalString(model, env: "TANDEM_DRAFT_MODEL"), device: profile)
    }
}
