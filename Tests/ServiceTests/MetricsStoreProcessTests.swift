import Foundation
import Testing
import TandemBus
import TandemService
import TandemWire
#if canImport(Glibc)
import Glibc
#endif

/// The built `metrics-store` binary as a separate process: events published by this (another)
/// process land in SQLite and come back from queries; committed events survive kill -9;
/// SIGTERM flushes what is still queued. Needs the product built first
/// (`swift build --scratch-path <yours> --product metrics-store`).
@Suite("metrics-store: separate process", .serialized, .timeLimit(.minutes(3)))
struct MetricsStoreProcessTests {
    typealias S = MetricsStoreTestSupport

    @Test("events published by another process are stored and returned by queries; bad input is refused")
    func eventsFromAnotherProcess() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let server = try await S.Server(db: dir + "/metrics.sqlite")
        do {
            let (publisher, warmups) = try await server.connectedPublisher()
            let rounds: [WireMessage] = (0..<12).map { i in
                // Alternating rounds: 3 of 4 accepted, then 1 of 4.
                S.round(session: "s\(i % 3)", k: 4,
                        accepted: i % 2 == 0 ? [true, true, true, false] : [true, false, false, false],
                        at: 1_000 + Double(i))
            }
            let batches: [WireMessage] = [4, 8, 2, 6].map { S.batch(model: "target", wallMs: $0) }
            for message in rounds + batches {
                try publisher.publish(topic: message.kind.rawValue, payload: WireCodec.encode(message))
            }
            // A frame that is not a TandemWire envelope: counted and dropped, the store keeps running.
            try publisher.publish(topic: "round", payload: Array("not an envelope".utf8))

            let landed = await S.eventually(.seconds(20)) {
                let counts = await server.counts()
                return counts["round"] == 12 && counts["batch"] == 4
            }
            let counts = await server.counts()
            #expect(landed, "counts: \(counts); stderr: \(server.process.logTail())")
            #expect(await server.counts()["profile"] == warmups)

            let acceptance = try await server.metrics(MetricsQuery(kind: .acceptance)).acceptance
            #expect(acceptance.count == 1)
            let row = try #require(acceptance.first)
            // 12 rounds × 4 drafted = 48; accepted 6 × 3 + 6 × 1 = 24.
            #expect(row.rounds == 12 && row.drafted == 48 && row.accepted == 24)
            #expect(row.acceptanceRate == 0.5 && row.meanAcceptanceLength == 3)
            #expect(row.perPosition == [1, 0.5, 0.5, 0])

            let latency = try await server.metrics(MetricsQuery(kind: .batchLatency)).latency
            #expect(latency == [LatencyRow(key: "target", count: 4, meanMs: 5, p50Ms: 4, p90Ms: 8, p99Ms: 8)])

            #expect(await S.eventually { await server.healthCount("decode_errors") == 1 })

            // A request that is not an envelope gets an error reply, not a crash or silence.
            let raw = try await server.client.request(Array("garbage".utf8), timeout: .seconds(3))
            guard case .error(let error) = try WireCodec.decode(raw).message else {
                Issue.record("expected an error reply")
                return
            }
            #expect(error.code == .badMessage)
            // A well-formed request of a kind the store does not serve.
            await #expect(throws: RPCError.self) {
                _ = try await server.client.call(.estimate(EstimateQuery(model: "m", batches: [])), timeout: .seconds(3))
            }
            #expect(server.process.isRunning)
            #expect(await server.stop() == 0, "stderr: \(server.process.logTail())")
        } catch {
            await server.kill9()
            throw error
        }
    }

    @Test("kill -9 after a commit loses none of the committed events")
    func killNineKeepsCommittedEvents() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let db = dir + "/metrics.sqlite"
        let total = 300
        let first = try await S.Server(db: db)
        let warmups: Int
        do {
            let (publisher, w) = try await first.connectedPublisher()
            warmups = w
            for i in 0..<total {
                let message = S.round(session: "s\(i)", k: 2, accepted: [true, i % 2 == 0], at: Double(i))
                try publisher.publish(topic: "round", payload: WireCodec.encode(message))
                if i % 50 == 49 { try await Task.sleep(for: .milliseconds(5)) }
            }
            let committed = await S.eventually(.seconds(20)) { await first.counts()["round"] == total }
            let counts = await first.counts()
            #expect(committed, "counts: \(counts); stderr: \(first.process.logTail())")
            await first.kill9()
        } catch {
            await first.kill9()
            throw error
        }

        let second = try await S.Server(db: db)
        do {
            let counts = await second.counts()
            #expect(counts["round"] == total && counts["profile"] == warmups, "counts after restart: \(counts)")
            let row = try #require(try await second.metrics(MetricsQuery(kind: .acceptance)).acceptance.first)
            #expect(row.rounds == total && row.drafted == 2 * total && row.accepted == total + total / 2)
            #expect(await second.stop() == 0)
        } catch {
            await second.kill9()
            throw error
        }
    }

    @Test("SIGTERM flushes events still queued in memory before exiting")
    func gracefulShutdownFlushes() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let db = dir + "/metrics.sqlite"
        let total = 100
        // The writer would wait 10 minutes or 1M events: only the shutdown flush commits anything.
        let first = try await S.Server(db: db, extraArguments: ["--flush-interval-ms", "600000",
                                                                 "--flush-batch", "1000000"])
        let warmups: Int
        do {
            let (publisher, w) = try await first.connectedPublisher()
            warmups = w
            for i in 0..<total {
                try publisher.publish(topic: "batch", payload: WireCodec.encode(S.batch(model: "m", wallMs: Double(i))))
            }
            let received = await S.eventually(.seconds(20)) {
                await first.healthCount("received") == total + warmups
            }
            #expect(received)
            // `received` is counted before an event enters the inbox, and `queued` sums three stages
            // read one after the other: wait for it to settle rather than read it once.
            let queued = await S.eventually(.seconds(20)) {
                await first.healthCount("queued") == total + warmups
            }
            let queuedNow = await first.healthCount("queued")
            #expect(queued, "queued \(queuedNow), expected \(total + warmups)")
            #expect(await first.healthCount("stored") == 0)
            #expect(await first.stop() == 0, "stderr: \(first.process.logTail())")
        } catch {
            await first.kill9()
            throw error
        }
        let second = try await S.Server(db: db)
        let counts = await second.counts()
        #expect(counts["batch"] == total && counts["profile"] == warmups, "counts after restart: \(counts)")
        #expect(await second.stop() == 0)
    }
}
