import Foundation
import Testing
import TandemBus
import TandemService
import TandemWire
@testable import MetricsStore

/// Helpers for the metrics-store tests (namespaced so other ServiceTests files can have their own).
enum MetricsStoreTestSupport {
    /// A fresh temporary directory (removed by the caller with `removeDirectory`).
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "mstore-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    static func round(session: String = "s1", draft: String = "draft-a", target: String = "target", k: Int,
                      accepted: [Bool], at: Double = 1_000) -> WireMessage {
        let acceptedCount = accepted.prefix { $0 }.count
        return .round(RoundEvent(session: session, drafterID: "drafter-1", verifierID: "verifier-1", draftModel: draft,
                                 targetModel: target, device: "laptop", k: k, drafted: accepted.count,
                                 accepted: acceptedCount, acceptedPerPosition: accepted, draftMs: 3,
                                 verifyMs: 12, at: at))
    }

    static func batch(model: String, wallMs: Double, at: Double = 1_000) -> WireMessage {
        .batch(BatchEvent(verifierID: "verifier-1", model: model, sequences: 2, tokensPerSequence: [5, 3],
                          contextLengths: [100, 40], wallMs: wallMs, predictedMs: wallMs + 1, at: at))
    }

    static func stored(_ messages: [WireMessage]) -> [StoredEvent] {
        messages.map { message in
            guard let event = StoredEvent(message) else { preconditionFailure("not an event: \(message.kind)") }
            return event
        }
    }

    /// Polls `condition` every 25 ms until it holds or `limit` passes.
    static func eventually(_ limit: Duration = .seconds(10),
                           _ condition: @Sendable () async -> Bool) async -> Bool {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return await condition()
    }

    /// A `metrics-store` child process on ephemeral ports, with a test client for it.
    final class Server: Sendable {
        let process: ProductProcess
        let xsub: String
        let xpub: String
        let query: String
        let context: BusContext
        let client: BusEndpoint

        /// Starts the built binary on `db` (ephemeral ports, no gateway registration) and waits
        /// for its READY line.
        init(db: String, extraArguments: [String] = []) async throws {
            let process = try ProductProcess(product: "metrics-store", arguments: [
                "--xsub-bind", "tcp://127.0.0.1:*", "--xpub-bind", "tcp://127.0.0.1:*",
                "--query-bind", "tcp://127.0.0.1:*", "--db", db, "--no-register", "--log-level", "info",
            ] + extraArguments)
            let line: String
            do {
                line = try await process.waitForLine(prefix: "READY ", timeout: .seconds(30))
            } catch {
                await process.kill()
                throw error
            }
            let fields = ReadyLine.parse(line) ?? [:]
            guard let xsub = fields["xsub"], let xpub = fields["xpub"], let query = fields["query"] else {
                await process.kill()
                throw ProductProcess.Timeout(what: "unparseable READY line: \(line)")
            }
            self.process = process
            self.xsub = xsub
            self.xpub = xpub
            self.query = query
            context = try BusContext()
            client = try BusEndpoint.dealer(context: context, connect: query)
        }

        func metrics(_ query: MetricsQuery) async throws -> MetricsResult {
            let reply = try await client.call(.metricsQuery(query), timeout: .seconds(3))
            guard case .metricsResult(let result) = reply else { throw RPCError.unexpectedReply(reply.kind) }
            return result
        }

        func counts() async -> [String: Int] {
            (try? await metrics(MetricsQuery(kind: .eventCounts)).eventCounts) ?? [:]
        }

        func health() async -> [String: String] {
            guard case .healthReply(let reply)? = try? await client.call(.health(HealthQuery()), timeout: .seconds(3))
            else { return [:] }
            return reply.details
        }

        func healthCount(_ key: String) async -> Int { Int(await health()[key] ?? "") ?? -1 }

        /// A publisher connected to the store's XSUB, returned once an event published through it
        /// is known to reach the store (PUB/SUB drops everything sent before the subscription has
        /// propagated). The warm-up publishes `profile` events; `health.received` tells when one
        /// arrived. Returns the publisher and how many warm-up events the store received.
        func connectedPublisher() async throws -> (BusPublisher, Int) {
            let publisher = try BusPublisher(context: context, connect: xsub)
            let before = await healthCount("received")
            let warm = WireCodec.encode(.profile(ProfileEvent(device: "warmup", draftModel: "warmup",
                                                              quantization: "q", draftTokensPerSecond: 1,
                                                              powerWatts: 1, at: 1)))
            let arrived = await eventually(.seconds(15)) {
                try? publisher.publish(topic: "profile", payload: warm)
                try? await Task.sleep(for: .milliseconds(50))
                return await self.healthCount("received") > before
            }
            guard arrived else { throw ProductProcess.Timeout(what: "no event reached the store within 15 s") }
            // Let the last warm-up events in flight arrive before counting them.
            try await Task.sleep(for: .milliseconds(200))
            return (publisher, await healthCount("received") - before)
        }

        /// Graceful stop; returns the exit status (nil if it had to be killed).
        @discardableResult
        func stop() async -> Int32? {
            await context.shutdown()
            return await process.stop(timeout: .seconds(15))
        }

        func kill9() async {
            await process.kill()
            await context.shutdown()
        }
    }
}
