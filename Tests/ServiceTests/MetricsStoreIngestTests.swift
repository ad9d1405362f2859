import Foundation
import GRDB
import Logging
import Synchronization
import Testing
import TandemWire
@testable import MetricsStore

/// The ingest queue and the batching writer, in process.
@Suite("metrics-store: ingest queue and writer")
struct MetricsStoreIngestTests {
    typealias S = MetricsStoreTestSupport

    static func events(_ count: Int, from start: Int = 0) -> [StoredEvent] {
        S.stored((start..<(start + count)).map { S.batch(model: "m", wallMs: Double($0), at: Double($0)) })
    }

    @Test("the writer commits everything queued, in transactions of at most maxTransaction events")
    func writerBatches() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let store = try EventStore(path: dir + "/m.sqlite")
        let queue = IngestQueue(batchSize: 1000, warnThreshold: 1_000_000)
        let stats = IngestStats()
        let writer = IngestWriter(queue: queue, store: store, stats: stats, interval: .milliseconds(50),
                                  maxTransaction: 400, logger: Logger(label: "test"))
        let task = Task { await writer.run() }
        for event in Self.events(2500) { queue.push(event) }
        let stored = await S.eventually(.seconds(20)) { stats.stored.load(ordering: .relaxed) == 2500 }
        #expect(stored)
        #expect(try await store.totalEvents() == 2500)
        // 2500 events cannot fit in fewer than 7 transactions of at most 400.
        #expect(stats.transactions.load(ordering: .relaxed) >= 7)
        // A trickle is written within about one interval, without reaching the batch size.
        queue.push(Self.events(1, from: 9999)[0])
        #expect(await S.eventually(.seconds(5)) { stats.stored.load(ordering: .relaxed) == 2501 })
        queue.close()
        #expect(await IngestService.wait(for: task, timeout: .seconds(10)))
        try store.closeBlocking()
    }

    @Test("events arriving while another connection holds the write lock are queued, then all stored")
    func busyDatabaseDropsNothing() async throws {
        let dir = try S.temporaryDirectory()
        defer { S.removeDirectory(dir) }
        let path = dir + "/m.sqlite"
        let store = try EventStore(path: path)
        let queue = IngestQueue(batchSize: 50, warnThreshold: 1_000_000)
        let stats = IngestStats()
        let writer = IngestWriter(queue: queue, store: store, stats: stats, interval: .milliseconds(20),
                                  logger: Logger(label: "test"))
        let task = Task { await writer.run() }

        // Another connection takes the write lock for 1.5 s.
        let locker = try DatabaseQueue(path: path)
        let locked = Atomic<Bool>(false)
        let lockThread = Thread {
            try? locker.inTransaction(.immediate) { _ in
                locked.store(true, ordering: .releasing)
                Thread.sleep(forTimeInterval: 1.5)
                return .commit
            }
        }
        lockThread.start()
        #expect(await S.eventually(.seconds(5)) { locked.load(ordering: .acquiring) })
        for event in Self.events(300) { queue.push(event) }
        try await Task.sleep(for: .milliseconds(500))
        // Still locked: nothing committed, nothing lost.
        #expect(stats.stored.load(ordering: .relaxed) == 0)
        #expect(queue.count + writer.pendingInWriter == 300)
        for event in Self.events(200, from: 300) { queue.push(event) }
        #expect(await S.eventually(.seconds(20)) { stats.stored.load(ordering: .relaxed) == 500 })
        #expect(try await store.totalEvents() == 500)
        #expect(try await store.batchLatency(since: nil).first?.count == 500)
        queue.close()
        #expect(await IngestService.wait(for: task, timeout: .seconds(10)))
        try locker.close()
        try store.closeBlocking()
    }

    @Test("the queue reports its growth at the warning threshold and each doubling, afresh once drained")
    func queueWarnings() {
        let queue = IngestQueue(batchSize: 1_000, warnThreshold: 4)
        let event = Self.events(1)[0]
        let warnings = (1...20).compactMap { _ in queue.push(event) }
        #expect(warnings == [4, 8, 16])
        #expect(queue.takeAll().count == 20)
        queue.noteDrained()
        #expect((1...5).compactMap { _ in queue.push(event) } == [4])
        #expect(queue.highWater == 20)
    }

    @Test("undecodable frames are rejected with a typed error; non-event messages are not stored")
    func decoding() throws {
        #expect(throws: WireError.self) { try StoredEvent.decode(frame: [1, 2, 3], receivedAt: 0) }
        let health = WireCodec.encode(.health(HealthQuery()))
        #expect(try StoredEvent.decode(frame: health, receivedAt: 0) == nil)
        let frame = WireCodec.encode(S.batch(model: "m", wallMs: 3))
        let event = try #require(try StoredEvent.decode(frame: frame, receivedAt: 5))
        #expect(event.topic == .batch && event.replica == "verifier-1" && event.receivedAt == 5)
        #expect(event.json.hasPrefix("{") && event.json.contains("\"kind\":\"batch\""))
    }
}
