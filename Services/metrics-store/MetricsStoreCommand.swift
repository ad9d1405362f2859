import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TandemBus
import TandemService
import TandemWire

/// `metrics-store`: the event hub and the metrics database of a Tandem cluster (docs/design.md §2).
///
/// - Runs the event proxy: publishers connect to its XSUB, subscribers to its XPUB.
/// - Subscribes to every event topic itself and stores each event in SQLite (``EventStore``)
///   through an in-memory queue drained in batched transactions (``IngestWriter``).
/// - Answers `metrics_query` and `health` on a ROUTER (``QueryResponder``).
/// - Registers with the gateway and heartbeats (``ControlAgent``), retrying until it is up.
///
/// Once everything is bound it prints one line to stdout, so scripts and tests that bind
/// ephemeral ports (`tcp://127.0.0.1:*`) learn the real endpoints:
/// `READY id=… xsub=tcp://… xpub=tcp://… query=tcp://… db=/path` (``ReadyLine``).
@main
struct MetricsStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics-store",
        abstract: "Tandem event proxy and metrics database (SQLite).")

    @OptionGroup var common: CommonOptions

    @Option(help: "XSUB bind endpoint for event publishers [TANDEM_EVENTS_XSUB_BIND, default tcp://127.0.0.1:5580].")
    var xsubBind: String?

    @Option(help: "XPUB bind endpoint for event subscribers [TANDEM_EVENTS_XPUB_BIND, default tcp://127.0.0.1:5581].")
    var xpubBind: String?

    @Option(help: "ROUTER bind endpoint for metrics queries [TANDEM_METRICS_QUERY_BIND, default tcp://127.0.0.1:5585].")
    var queryBind: String?

    @Option(name: .customLong("db"),
            help: "SQLite database file [TANDEM_DB, default ./tandem-data/metrics.sqlite].")
    var database: String?

    @Option(help: "Longest time an event waits in memory before it is written, ms [TANDEM_METRICS_FLUSH_MS, default 50].")
    var flushIntervalMs: Int?

    @Option(help: "Queued events that trigger a write before the interval ends [TANDEM_METRICS_FLUSH_BATCH, default 1000].")
    var flushBatch: Int?

    @Option(help: "Queue length at which the store starts warning (and again at each doubling) [TANDEM_METRICS_QUEUE_WARN, default 50000].")
    var queueWarn: Int?

    @Option(help: "Longest graceful-shutdown flush, ms [TANDEM_METRICS_SHUTDOWN_MS, default 5000].")
    var shutdownTimeoutMs: Int?

    @OptionGroup var registration: RegistrationOptions

    func run() async throws {
        let xsub = try BusAddress.resolve(flag: xsubBind, env: "TANDEM_EVENTS_XSUB_BIND",
                                          default: DefaultEndpoints.eventsPublish)
        let xpub = try BusAddress.resolve(flag: xpubBind, env: "TANDEM_EVENTS_XPUB_BIND",
                                          default: DefaultEndpoints.eventsSubscribe)
        let queryBindEndpoint = try BusAddress.resolve(flag: queryBind, env: "TANDEM_METRICS_QUERY_BIND",
                                                       default: DefaultEndpoints.metricsQuery)
        let dbPath = Setting.string(database, env: "TANDEM_DB",
                                    default: FileManager.default.currentDirectoryPath + "/tandem-data/metrics.sqlite")
        let interval = try Setting.int(flushIntervalMs, env: "TANDEM_METRICS_FLUSH_MS", default: 50)
        let batch = try Setting.int(flushBatch, env: "TANDEM_METRICS_FLUSH_BATCH", default: 1000)
        let warn = try Setting.int(queueWarn, env: "TANDEM_METRICS_QUEUE_WARN", default: 50_000)
        let shutdownMs = try Setting.int(shutdownTimeoutMs, env: "TANDEM_METRICS_SHUTDOWN_MS", default: 5000)

        try await ServiceProcess.run("metrics-store", logger: "tandem.metrics-store", common: common,
                                     replica: .metricsStore) { process in
            let (context, logger) = (process.context, process.logger)
            let replicaID = common.replicaID(of: .metricsStore)
            let store = try await BlockingWork.run("metrics-store-open") { try EventStore(path: dbPath) }
            let journal = try await store.journalMode()
            logger.info("database open", metadata: ["path": "\(store.path)", "journal": "\(journal)"])

            let proxy = try BusProxy(context: context, frontendBind: xsub, backendBind: xpub, logger: logger)
            let subscriber = try BusSubscriber(context: context, connect: BusAddress.connectable(proxy.backendEndpoint),
                                               topics: EventTopic.allCases.map(\.rawValue), logger: logger)
            let stats = IngestStats()
            let queue = IngestQueue(batchSize: batch, warnThreshold: warn)
            let writer = IngestWriter(queue: queue, store: store, stats: stats,
                                      interval: .milliseconds(max(1, interval)), logger: logger)
            let ingest = IngestService(subscriber: subscriber, queue: queue, writer: writer, stats: stats,
                                       shutdownTimeout: .milliseconds(max(0, shutdownMs)), logger: logger)

            let queryEndpoint = try BusEndpoint.router(context: context, bind: queryBindEndpoint, logger: logger)
            let boundQuery = queryEndpoint.boundEndpoint ?? queryBindEndpoint
            let responder = QueryResponder(
                store: store, ingest: ingest, stats: stats, replicaID: replicaID,
                facts: ["xsub": proxy.frontendEndpoint, "xpub": proxy.backendEndpoint, "query": boundQuery,
                        "db": store.path, "journal": journal],
                started: .now, logger: logger)
            try queryEndpoint.serve(logger: logger) { envelope, _ in await responder.respond(envelope.message) }

            logger.info("metrics-store running",
                        metadata: ["xsub": "\(proxy.frontendEndpoint)", "xpub": "\(proxy.backendEndpoint)",
                                   "query": "\(boundQuery)", "register": "\(registration.register)"])
            // Shut down in reverse order: stop registering and answering queries, then flush the
            // ingest queue into the database, then stop forwarding events.
            try await ReplicaMain.run(
                role: .metricsStore, process: process, register: registration.register,
                advertisedEndpoint: common.advertise(boundQuery),
                attributes: ["xsub": common.advertise(proxy.frontendEndpoint),
                             "xpub": common.advertise(proxy.backendEndpoint)],
                services: [ProxyService(proxy: proxy), ingest, EndpointService(endpoint: queryEndpoint)],
                ready: ["id": replicaID, "xsub": proxy.frontendEndpoint, "xpub": proxy.backendEndpoint,
                        "query": boundQuery, "db": store.path])
        }
    }
}
