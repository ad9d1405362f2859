import ArgumentParser
import Foundation
import Logging
import TandemBus
import TandemService
import TandemSpeculative
import TandemWire

/// `estimator`: WISP's verification-time estimator as a service (docs/design.md §9).
///
/// Subscribes to `batch` events from the metrics-store's XPUB, fits one least-squares batch-time model
/// per target model (``BatchTimeEstimator``), and answers `estimate` queries on a ROUTER. It starts
/// empty: the metrics-store keeps only latency percentiles per model, not the per-batch features a fit
/// needs, so there is nothing to warm-start from; until a model has data it answers with the prior and
/// `samples = 0`. Replicas are independent (each fits from the same event stream).
///
/// Prints `READY estimator=<bound endpoint>` once bound.
@main
struct EstimatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimator",
        abstract: "Tandem verification-time estimator: per-model least-squares batch time from batch events.")

    @OptionGroup var common: CommonOptions

    @Option(help: "ROUTER bind endpoint; tcp://127.0.0.1:* picks a free port [TANDEM_ESTIMATOR_BIND, default tcp://127.0.0.1:5570].")
    var bind: String?

    @Option(help: "Per-observation discount of past batches in (0, 1]; 1 = plain least squares [TANDEM_ESTIMATOR_FORGETTING, default 0.999].")
    var forgetting: Double?

    @Option(help: "Recent predictions the reported (prequential) error averages over [TANDEM_ESTIMATOR_ERROR_WINDOW, default 256].")
    var errorWindow: Int?

    @OptionGroup var registration: RegistrationOptions

    func run() async throws {
        let bindEndpoint = try BusAddress.resolve(flag: bind, env: "TANDEM_ESTIMATOR_BIND",
                                                  default: DefaultEndpoints.estimator)
        let lambda = try Setting.double(forgetting, env: "TANDEM_ESTIMATOR_FORGETTING", default: 0.999)
        guard lambda > 0, lambda <= 1 else { throw ValidationError("forgetting must be in (0, 1], got \(lambda)") }
        let window = try Setting.int(errorWindow, env: "TANDEM_ESTIMATOR_ERROR_WINDOW", default: 256)
        guard window > 0 else { throw ValidationError("error window must be positive, got \(window)") }
        let estimator = BatchTimeEstimator(configuration: .init(
            model: BatchTimeEstimator.defaultModelConfiguration(forgetting: lambda, errorWindow: window),
            errorWindow: window))

        try await ServiceProcess.run("estimator", logger: "tandem.estimator", common: common,
                                     replica: .estimator) { process in
            let eventsSub = try common.eventsSubEndpoint()
            let server = try EstimatorServer(context: process.context, bind: bindEndpoint, eventsSub: eventsSub,
                                             estimator: estimator, replicaID: common.replicaID(of: .estimator),
                                             logger: process.logger)
            let bound = server.boundEndpoint
            let advertised = common.advertise(bound)
            process.logger.info("estimator running", metadata: [
                "bind": "\(bound)", "advertised": "\(advertised)", "events_sub": "\(eventsSub)",
                "forgetting": "\(lambda)"])
            try await ReplicaMain.run(role: .estimator, process: process, register: registration.register,
                                      advertisedEndpoint: advertised, attributes: ["events_sub": eventsSub],
                                      services: [server], ready: ["estimator": bound])
        }
    }
}
