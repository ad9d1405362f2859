import Foundation
import Logging
import Testing
import TandemBus
import TandemWire
@testable import MetricsStore

/// Ingest-rate measurements (not correctness tests): run with `TANDEM_MSTORE_BENCH=1`.
/// Prints events/s for (1) `EventStore.append` in process and (2) the whole path through the
/// built binary: bus publish → proxy → subscriber → decode → queue → SQLite commit.
@Suite("metrics-store: ingest benchmark", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["TANDEM_MSTORE_BENCH"] == "1"))
struct MetricsStoreBenchTests {
    typealias S = MetricsStoreTestSupport

    static func roundMessages(_ count: Int) -> [WireMessage] {
        (0..<count).map { (i: Int) -> WireMessage in
            let accepted: [Bool] = [true, i % 2 == 0, i % 4 == 0, false]
            let session = "s\(i % 64)"
            let draft = "d\(i % 3)"
            return S.round(session: session, draft: draft, k: 4, accepted: accepted, at: Double(i))
        }
    }

    @Test("EventStore.append throughput")
    func appendThroughput() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let store = try EventStore(path: dir + "/bench.sqlite")
        let events = S.stored(Self.roundMessages(50_000))
        let clock = ContinuousClock()
        for size in [100, 1000, 5000] {
            let start = clock.now
            var offset = 0
            while offset < 20_000 {
                try await store.append(Array(events[offset..<(offset + size)]))
                offset += size
            }
            let seconds = (clock.now - start).milliseconds / 1000
            print("BENCH append: \(Int(20_000 / seconds)) events/s (transactions of \(size))")
        }
        let decodeFrames = Self.roundMessages(20_000).map { WireCodec.encode($0) }
        let start = clock.now
        for frame in decodeFrames { _ = try StoredEvent.decode(frame: frame, receivedAt: 0) }
        print("BENCH decode: \(Int(20_000 / ((clock.now - start).milliseconds / 1000))) frames/s")
        try store.closeBlocking()
    }

    @Test("end-to-end ingest rate through the metrics-store binary")
    func endToEnd() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let server = try await S.Server(db: dir + "/bench.sqlite")
        do {
            let (publisher, _) = try await server.connectedPublisher()
            let total = 30_000
            let frames = Self.roundMessages(total).map { WireCodec.encode($0) }
            let storedBefore = await server.healthCount("stored")
            let clock = ContinuousClock()
            let start = clock.now
            // Paced bursts, so zmq's high-water marks (10k) are not what limits the rate.
            for (i, frame) in frames.enumerated() {
                try publisher.publish(topic: "round", payload: frame)
                if i % 500 == 499 { try await Task.sleep(for: .milliseconds(5)) }
            }
            let published = clock.now - start
            _ = await S.eventually(.seconds(120)) { await server.healthCount("stored") - storedBefore >= total }
            let elapsed = clock.now - start
            let stored = await server.healthCount("stored") - storedBefore
            let rounds = await server.counts()["round"] ?? 0
            print("BENCH e2e: published \(total) in \(Int(published.milliseconds)) ms; "
                  + "stored \(stored) (round rows \(rounds)) in \(Int(elapsed.milliseconds)) ms = "
                  + "\(Int(Double(stored) / (elapsed.milliseconds / 1000))) events/s; health: \(await server.health())")
            await server.stop()
        } catch {
            await server.kill9()
            throw error
        }
    }
}
