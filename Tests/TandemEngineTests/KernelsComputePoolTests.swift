import Foundation
import Synchronization
import Testing
@testable import TandemKernels

@Suite("Kernels: compute pool")
struct KernelsComputePoolTests {
    @Test("every index runs exactly once", arguments: [1, 2, 3, 4])
    func everyIndexOnce(threads: Int) {
        let pool = ComputePool(threads: threads)
        defer { pool.shutdown() }
        #expect(pool.threadCount == threads)
        for count in [0, 1, 2, 7, 64, 1000] {
            let hits = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: max(count, 1))
            for i in 0..<max(count, 1) { (hits + i).initialize(to: Atomic<Int>(0)) }
            pool.parallelFor(count) { i in hits[i].add(1, ordering: .relaxed) }
            for i in 0..<count { #expect(hits[i].load(ordering: .relaxed) == 1) }
            hits.deinitialize(count: max(count, 1))
            hits.deallocate()
        }
    }

    @Test("thread indices are in range and work is shared")
    func threadIndices() {
        let pool = ComputePool(threads: 2)
        defer { pool.shutdown() }
        let bad = Atomic<Int>(0)
        let total = Atomic<Int>(0)
        for _ in 0..<2000 {
            pool.parallelFor(16) { i, t in
                if t < 0 || t >= 2 { bad.add(1, ordering: .relaxed) }
                total.add(i, ordering: .relaxed)
            }
        }
        #expect(bad.load(ordering: .relaxed) == 0)
        #expect(total.load(ordering: .relaxed) == 2000 * (15 * 16 / 2))
    }

    @Test("survives oversubscription and parking")
    func oversubscribed() async {
        // Several pools (as several engines would) hammering 2 cores, with pauses long enough
        // for workers to park between jobs.
        let pools = (0..<3).map { _ in ComputePool(threads: 2, spinMicroseconds: 20) }
        defer { pools.forEach { $0.shutdown() } }
        await withTaskGroup(of: Int.self) { group in
            for p in pools {
                group.addTask {
                    let sum = Atomic<Int>(0)
                    for round in 0..<300 {
                        p.parallelFor(8) { i in
                            var x = 0
                            for k in 0..<2000 { x &+= k ^ i }
                            sum.add(1 + (x & 0), ordering: .relaxed)
                        }
                        if round % 50 == 0 { usleep(2000) }
                    }
                    return sum.load(ordering: .relaxed)
                }
            }
            for await s in group { #expect(s == 300 * 8) }
        }
    }
}
