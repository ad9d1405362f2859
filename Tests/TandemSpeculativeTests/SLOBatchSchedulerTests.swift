import TandemTestSupport
import Testing
import TandemSpeculative

@Suite("SLO batch scheduler")
struct SLOBatchSchedulerTests {
    /// 10 ms + 1 ms per sequence + 2 ms per new token + 1 µs per context token.
    static let model = BatchTimeFunction { s in
        0.010 + 0.001 * Double(s.sequences) + 0.002 * Double(s.newTokens) + 0.000_001 * Double(s.contextTokens)
    }

    @Test("first-come takes arrival order up to the batch size")
    func firstCome() {
        let sched = SLOBatchScheduler(configuration: .init(policy: .firstCome, maxBatchSize: 3))
        let pending = (0..<6).map { i in
            PendingVerify(id: UInt64(i), arrival: Double(6 - i), deadline: Double(i), newTokens: 5, contextTokens: 100)
        }
        let sel = sched.selectBatch(from: pending, now: 10, predictor: Self.model)
        #expect(sel.indices == [5, 4, 3])
        #expect(sel.shape == BatchShape(sequences: 3, newTokens: 15, contextTokens: 300))
        let tokenCapped = SLOBatchScheduler(configuration: .init(policy: .firstCome, maxBatchSize: 8, maxBatchTokens: 12))
        #expect(tokenCapped.selectBatch(from: pending, now: 10, predictor: Self.model).indices == [5, 4])
    }

    @Test("EDF excludes a request that would make an on-time member late")
    func protectsDeadlines() {
        let sched = SLOBatchScheduler(configuration: .init(maxBatchSize: 8))
        let now = 100.0
        let pending = [
            PendingVerify(id: 0, arrival: 99, deadline: now + 0.5, newTokens: 5, contextTokens: 100),   // relaxed
            PendingVerify(id: 1, arrival: 99.5, deadline: now + 0.035, newTokens: 5, contextTokens: 100), // urgent
            PendingVerify(id: 2, arrival: 99.2, deadline: now + 0.2, newTokens: 9, contextTokens: 20_000), // long context
            PendingVerify(id: 3, arrival: 99.9, deadline: now + 0.3, newTokens: 2, contextTokens: 50),
        ]
        let sel = sched.selectBatch(from: pending, now: now, predictor: Self.model)
        #expect(sel.indices.first == 1)            // earliest deadline first
        #expect(!sel.indices.contains(2))          // 20k context tokens would push past the urgent deadline
        #expect(sel.indices.contains(3))           // a later, small request still fits
        #expect(sel.predictedLate.isEmpty)
        for i in sel.indices { #expect(now + sel.predictedSeconds <= pending[i].deadline) }
        #expect(abs(sel.predictedSeconds - Self.model.predictSeconds(sel.shape)) < 1e-12)
    }

    @Test("property: head always served, batch size capped, only already-late members end late")
    func randomInstances() {
        var rng = TestRNG(seed: 12)
        for _ in 0..<500 {
            let n = Int(rng.next() % 20) + 1
            let now = 50.0
            let pending = (0..<n).map { i in
                PendingVerify(id: UInt64(i), arrival: now - Double(rng.next() % 100) / 1000,
                              deadline: now + Double(rng.next() % 120) / 1000 - 0.01,
                              newTokens: Int(rng.next() % 8) + 1, contextTokens: Int(rng.next() % 5000))
            }
            let maxBatch = Int(rng.next() % 6) + 1
            let sel = SLOBatchScheduler(configuration: .init(maxBatchSize: maxBatch))
                .selectBatch(from: pending, now: now, predictor: Self.model)
            #expect(!sel.indices.isEmpty && sel.indices.count <= maxBatch)
            #expect(Set(sel.indices).count == sel.indices.count)
            let minDeadline = pending.map(\.deadline).min()!
            #expect(pending[sel.indices[0]].deadline == minDeadline)
            // Every member that ends late was already late when it joined (prefix of the selection).
            var shape = BatchShape.empty
            for i in sel.indices {
                shape = shape.adding(newTokens: pending[i].newTokens, contextTokens: pending[i].contextTokens)
                if sel.predictedLate.contains(i) {
                    #expect(now + Self.model.predictSeconds(shape) > pending[i].deadline)
                }
            }
        }
    }

    @Test("aging: a request that waited longer than maxWait goes first")
    func aging() {
        let sched = SLOBatchScheduler(configuration: .init(maxBatchSize: 1, maxWaitSeconds: 2))
        let pending = [
            PendingVerify(id: 0, arrival: 9.5, deadline: 10.1, newTokens: 3, contextTokens: 10),
            PendingVerify(id: 1, arrival: 7.0, deadline: 30, newTokens: 3, contextTokens: 10),
        ]
        #expect(sched.selectBatch(from: pending, now: 10, predictor: Self.model).indices == [1])
        let noAging = SLOBatchScheduler(configuration: .init(maxBatchSize: 1))
        #expect(noAging.selectBatch(from: pending, now: 10, predictor: Self.model).indices == [0])
        #expect(noAging.selectBatch(from: [], now: 10, predictor: Self.model).indices.isEmpty)
    }

    @Test("never starves: a saturated queue serves every request")
    func noStarvation() {
        let sched = SLOBatchScheduler(configuration: .init(maxBatchSize: 4, maxWaitSeconds: 1.0))
        var rng = TestRNG(seed: 5)
        var now = 0.0
        var pending: [PendingVerify] = []
        var served = Set<UInt64>()
        var nextID: UInt64 = 0
        var maxWait = 0.0
        for step in 0..<2000 {
            // Arrivals outpace service a little while arrivals last; one very large request sits in the queue.
            if step < 1500 {
                for _ in 0..<Int(rng.next() % 6) {
                    let big = nextID == 10
                    pending.append(PendingVerify(id: nextID, arrival: now, deadline: now + (big ? 5 : 0.15),
                                                 newTokens: big ? 64 : Int(rng.next() % 6) + 1,
                                                 contextTokens: big ? 100_000 : Int(rng.next() % 3000)))
                    nextID += 1
                }
            }
            guard !pending.isEmpty else { break }
            let sel = sched.selectBatch(from: pending, now: now, predictor: Self.model)
            now += sel.predictedSeconds
            for i in sel.indices {
                served.insert(pending[i].id)
                maxWait = max(maxWait, now - pending[i].arrival)
            }
            let removed = Set(sel.indices)
            pending = pending.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        }
        #expect(pending.isEmpty)
        #expect(served.count == Int(nextID))
        #expect(served.contains(10))
    }
}
