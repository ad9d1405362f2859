import CoreMetrics
import Foundation
@testable import Gateway
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Synchronization
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing

/// The real gateway in this process, driven through its real router: `buildApplication` around a
/// `Gateway` (control ROUTER on loopback, registry, session manager) with a byte-level vocabulary
/// (`GatewaySessionTests.Vocabulary`), and fake replicas that register over the control socket like
/// real ones and answer the session messages. A fake drafter reports a fixed reply as token reports
/// (a few tokens per round, with draft statistics), so a completion goes end to end through
/// `SessionManager` and the `ControlServer` report path; nothing is a separate process.
final class InProcessGateway: Sendable {
    static let modelName = "tiny-bytes"
    /// What every fake drafter generates (one byte-level token per byte).
    static let reply = "Hello, world!"

    let context: BusContext
    let gateway: Gateway
    /// The registry `/metrics` serves; the session manager's counters were made against it.
    let metrics: PrometheusCollectorRegistry
    let vocabulary: GatewaySessionTests.Vocabulary
    /// What the fake replicas were sent.
    let sent = Recorder()
    private let replicas = Mutex<[BusEndpoint]>([])

    /// - Parameters:
    ///   - contextLength: the served model's context (small, so "prompt too long" is cheap to provoke).
    ///   - maxBodyBytes: the request body limit (413 above it).
    ///   - model: a GGUF file to take the frontend from, as the gateway command does (default: the
    ///     byte-level vocabulary, served as ``modelName``; fake drafters report in that vocabulary).
    ///   - extraTokens: multi-byte tokens added to the byte-level vocabulary.
    ///   - modelShelf: the model store the gateway ships to drafters (nil: no model endpoint).
    init(model: String? = nil, apiKey: String? = nil, deviceKeys: [String: String] = [:], contextLength: Int = 256, maxBodyBytes: Int = 4 << 20,
         maxSessions: Int = 4, httpIdleTimeout: Duration = .seconds(60), extraTokens: [String] = [], modelShelf: ModelShelf.Settings? = nil) throws {
        let logger = Logger(label: "test.gateway")
        context = try BusContext()
        let vocabulary = try GatewaySessionTests.Vocabulary(extraTokens.map { Array($0.utf8) })
        self.vocabulary = vocabulary
        var frontend = try model.map { try Frontend(model: $0, logger: logger) }
            ?? Frontend(modelName: Self.modelName, tokenizer: vocabulary.tokenizer,
                        chatTemplate: try ChatTemplate(templateSource: nil), contextLength: contextLength)
        frontend.apiKey = apiKey
        frontend.deviceKeys = deviceKeys
        frontend.maxBodyBytes = maxBodyBytes
        var settings = Gateway.Settings()
        settings.maxSessions = maxSessions
        settings.httpIdleTimeout = httpIdleTimeout
        settings.modelShelf = modelShelf
        // Fake replicas do not heartbeat: the real sweep runs, with a policy that never expires them in a test.
        settings.policy = Registry.Policy(heartbeatIntervalMs: 600_000, missedHeartbeatsAllowed: 3)
        let metrics = PrometheusCollectorRegistry()
        self.metrics = metrics
        // The session manager makes its counters at init: against this test's registry, not the process's.
        let context = self.context
        gateway = try withMetricsFactory(PrometheusMetricsFactory(registry: metrics)) {
            try Gateway(context: context, settings: settings, frontend: frontend, events: nil, metrics: metrics,
                        logger: logger)
        }
    }

    /// The application `GatewayCommand` would run, tested through the router (no port, no process) or,
    /// with `.live`, served on a loopback port in this process (`client.port`) for clients that need a
    /// socket; the gateway's sweep runs as the application's service for the duration of `test`.
    func test(_ setup: TestingSetup = .router,
              _ test: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        do {
            try await buildApplication(gateway: gateway).test(setup, test)
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    private func stop() async {
        for replica in replicas.withLock({ $0 }) { await replica.close() }
        await context.shutdown()
    }

    // MARK: Fake replicas

    /// A verifier that opens every session at once.
    func addVerifier(_ id: String) async throws {
        try await addReplica(id, role: .verifier) { _, message in
            guard case .sessionOpen(let open) = message else { return nil }
            self.sent.opens.withLock { $0.append(open) }
            return .sessionOpened(SessionOpened(session: open.session, cachedTokens: 0, prefillMs: 0))
        }
    }

    /// A drafter (hosting `devices`, if given) that acknowledges every session start and then reports
    /// `reply` (default: ``reply``, a token per byte) up to the session's `max_tokens`, 4 tokens per
    /// round (3 of 4 drafted tokens accepted), finishing with `length` when cut by `max_tokens` and
    /// `stop` otherwise. It ignores stop strings: where they end the text is the gateway's decision.
    func addDrafter(_ id: String, devices: [String]? = nil, reply: [Int32]? = nil) async throws {
        let tokens = reply ?? Array(Self.reply.utf8).map { vocabulary.id([$0]) }
        try await addReplica(id, role: .drafter, devices: devices) { replica, message in
            guard case .sessionStart(let start) = message else { return nil }
            self.sent.starts.withLock { $0.append(start) }
            let out = Array(tokens.prefix(start.maxTokens))
            let finish: FinishReason = tokens.count >= start.maxTokens ? .length : .stop
            Task {
                var offset = 0
                var stats = RoundStats()
                while offset < out.count {
                    let round = Array(out[offset..<min(offset + 4, out.count)])
                    stats.rounds += 1
                    stats.drafted += 4
                    stats.accepted += 3
                    let last = offset + round.count == out.count
                    try? await replica.post(.tokens(TokenReport(session: start.session, offset: offset, tokens: round,
                                                                finish: last ? finish : nil, stats: stats)))
                    offset += round.count
                }
            }
            return .ack(Ack())
        }
    }

    /// A DEALER with the replica's identity that registers through the gateway's control socket (as
    /// `ControlAgent` does), records session closes and answers other messages with `handle` (tests script
    /// replicas with it: a real verifier core behind it, a drafter that refuses or never reports).
    @discardableResult
    func addReplica(_ id: String, role: Role, devices: [String]? = nil,
                            handle: @escaping @Sendable (BusEndpoint, WireMessage) async -> WireMessage?) async throws -> BusEndpoint {
        guard let control = gateway.control.endpoint.boundEndpoint else { throw BusError.invalidEndpoint("control not bound") }
        let replica = try BusEndpoint.dealer(context: context, connect: control, identity: PeerID(id))
        replicas.withLock { $0.append(replica) }
        let sent = self.sent
        try replica.serve(logger: Logger(label: "test.replica")) { envelope, _ in
            if case .sessionClose = envelope.message { sent.closes.withLock { $0.append(id) } }
            return await handle(replica, envelope.message)
        }
        let reply = try await replica.call(
            .register(Registration(role: role, replicaID: id, endpoint: "tcp://127.0.0.1:1", model: Self.modelName,
                                   pid: 1, version: "test", devices: devices)),
            timeout: .seconds(10))
        guard case .registered = reply else { throw BusError.invalidEndpoint("register answered \(reply.kind)") }
        return replica
    }

    final class Recorder: Sendable {
        /// Replica ids told to close a session, in the order the messages arrived.
        let closes = Mutex<[String]>([])
        let starts = Mutex<[SessionStart]>([])
        let opens = Mutex<[SessionOpen]>([])
    }

    /// Waits (up to 5 s) until every replica in `ids` was told to close a session.
    func waitForCloses(_ ids: Set<String>) async throws -> Set<String> {
        let deadline = ContinuousClock.now + .seconds(5)
        while !ids.isSubset(of: Set(sent.closes.withLock { $0 })), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return Set(sent.closes.withLock { $0 })
    }
}

// MARK: Requests and responses

extension TestClientProtocol {
    func post(_ uri: String, _ json: [String: Any], headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: headers,
                          body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
    }

    func post(_ uri: String, raw: [UInt8]) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, body: ByteBuffer(bytes: raw))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] }
    /// The data payloads of a server-sent event stream, in order (including `[DONE]`).
    var events: [String] {
        text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }
}
