import ArgumentParser
import Logging
import TandemBus
import TandemService
import TandemTelemetry
import TandemWire

/// `verifier`: runs the target model, keeps per-session KV caches, batches verification requests
/// from many drafters into one forward pass and applies the lossless acceptance rule.
@main
struct VerifierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verifier", abstract: "Tandem verifier: batched lossless verification with the target model.")

    @OptionGroup var common: CommonOptions

    @Option(help: "ROUTER bind endpoint for verify requests [TANDEM_VERIFY_BIND].")
    var bind: String?

    @Option(help: "Target model: catalog name or GGUF path [TANDEM_TARGET_MODEL].")
    var model: String?

    func run() async throws {
        TelemetryBootstrap.bootstrap(label: "verifier", level: common.resolvedLogLevel())
        let logger = Logger(label: "tandem.verifier")
        let context = try BusContext()
        let verify = try BusEndpoint.router(
            context: context,
            bind: try BusAddress.resolve(flag: bind, env: "TANDEM_VERIFY_BIND", default: DefaultEndpoints.verify),
            logger: logger)
        let advertised = AdvertisedHost.advertise(verify.boundEndpoint ?? "", host: common.resolvedAdvertiseHost())
        try verify.serve(logger: logger) { envelope, _ in
            switch envelope.message {
            case .health:
                return .healthReply(HealthReply(role: .verifier, replicaID: common.resolvedReplicaID(role: "verifier"),
                                                uptimeSeconds: 0))
            default:
                return nil
            }
        }
        let modelName = Setting.optionalString(model, env: "TANDEM_TARGET_MODEL")
        try await ReplicaMain.run(role: .verifier, common: common, context: context, logger: logger,
                                  advertisedEndpoint: advertised, model: modelName)
    }
}
