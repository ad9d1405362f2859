import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TandemBus
import TandemService
import TandemWire

/// The estimator's bus side: a ROUTER answering `estimate` and `health`, and a subscription to the
/// metrics-store's `batch` events that feeds the ``BatchTimeEstimator``.
///
/// Split from the command so tests run it in-process on ephemeral ports: ``start()`` installs the
/// handler and starts consuming events, ``stop()`` closes both sockets. As a lifecycle `Service`,
/// ``run()`` does both around the graceful-shutdown signal.
final class EstimatorServer: Service, Sendable {
    let endpoint: BusEndpoint
    let subscriber: BusSubscriber?
    let estimator: BatchTimeEstimator
    let replicaID: ReplicaID
    private let logger: Logger
    private let started = ContinuousClock.now
    private let consumer = Mutex<Task<Void, Never>?>(nil)
    /// Event payloads that did not decode (or were not batch events).
    private let undecodable = Atomic<Int>(0)

    /// - Parameters:
    ///   - bind: the ROUTER endpoint (`tcp://127.0.0.1:*` binds an ephemeral port; see ``boundEndpoint``).
    ///   - eventsSub: the metrics-store XPUB to subscribe to `batch` events on; nil serves estimates only.
    init(context: BusContext, bind: String, eventsSub: String?, estimator: BatchTimeEstimator,
         replicaID: ReplicaID, logger: Logger) throws {
        self.estimator = estimator
        self.replicaID = replicaID
        self.logger = logger
        self.endpoint = try BusEndpoint.router(context: context, bind: bind, logger: logger)
        do {
            self.subscriber = try eventsSub.map {
                try BusSubscriber(context: context, connect: $0, topics: [EventTopic.batch.rawValue], logger: logger)
            }
        } catch {
            let endpoint = self.endpoint
            Task { await endpoint.close() }
            throw error
        }
    }

    /// The endpoint actually bound (ephemeral port resolved).
    var boundEndpoint: String { endpoint.boundEndpoint ?? "" }

    /// Starts answering requests and consuming events.
    func start() throws {
        try endpoint.serve(logger: logger) { [self] envelope, _ in await respond(envelope.message) }
        guard let subscriber else { return }
        let task = Task { [self] in await consume(subscriber) }
        consumer.withLock { $0 = task }
    }

    /// Closes the subscription (after the events already received are applied) and the ROUTER.
    func stop() async {
        if let subscriber { await subscriber.close() }
        await consumer.withLock { $0 }?.value
        await endpoint.close()
    }

    func run() async throws {
        try start()
        try? await gracefulShutdown()
        await stop()
    }

    /// The answer to one request (nil: not handled here; `serve` then answers `unexpected_kind`).
    func respond(_ message: WireMessage) async -> WireMessage? {
        switch message {
        case .estimate(let query):
            do {
                return .estimateReply(try await estimator.estimate(query))
            } catch {
                return .error(error)
            }
        case .health:
            return .healthReply(await health())
        default:
            return nil
        }
    }

    /// Health with what the estimator knows: per model `samples`, prequential error, coefficients.
    func health() async -> HealthReply {
        var details: [String: String] = [
            "endpoint": boundEndpoint,
            "events_used": String(await estimator.acceptedEvents),
            "events_rejected": String(await estimator.rejectedEvents),
            "events_undecodable": String(undecodable.load(ordering: .relaxed)),
        ]
        for (model, s) in await estimator.summaries() {
            details["model.\(model).samples"] = String(s.samples)
            details["model.\(model).rmse_ms"] = String(format: "%.3f", s.rmseMs)
            details["model.\(model).mean_relative_error"] = String(format: "%.4f", s.meanRelativeError)
            details["model.\(model).coefficients"] = s.coefficients.map { String(format: "%.6g", $0) }
                .joined(separator: ",")
            if let reported = s.reportedMeanRelativeError {
                details["model.\(model).reported_mean_relative_error"] = String(format: "%.4f", reported)
            }
        }
        return HealthReply(role: .estimator, replicaID: replicaID, status: "ok",
                           uptimeSeconds: ServiceClock.millis(since: started) / 1000, details: details)
    }

    private func consume(_ subscriber: BusSubscriber) async {
        for await message in subscriber.messages {
            do throws(WireError) {
                let envelope = try WireCodec.decode(message.payload)
                guard case .batch(let event) = envelope.message else {
                    undecodable.add(1, ordering: .relaxed)
                    continue
                }
                if !(await estimator.observe(event)) {
                    logger.debug("ignored inconsistent batch event",
                                 metadata: ["model": "\(event.model)", "verifier": "\(event.verifierID)"])
                }
            } catch {
                undecodable.add(1, ordering: .relaxed)
                WireErrorCounter.record(error)
                logger.warning("undecodable event", metadata: ["topic": "\(message.topic)", "error": "\(error)"])
            }
        }
    }
}
