import TandemService
import Testing

/// The fence's own rules: newer or equal epochs pass, older ones are refused, nil is unfenced, and past its
/// capacity it forgets the sessions it recorded first (and only those).
struct EpochFenceTests {
    @Test func olderEpochsAreRefusedAndNilPasses() {
        let fence = EpochFence()
        #expect(fence.admit("s", epoch: 2))
        #expect(fence.admit("s", epoch: 2))
        #expect(!fence.admit("s", epoch: 1))
        #expect(fence.admit("s", epoch: nil))
        #expect(fence.admit("s", epoch: 5))
        #expect(fence.newest("s") == 5)
        #expect(!fence.isCurrent("s", epoch: 4))
    }

    @Test func pastCapacityTheFirstRecordedSessionsAreForgotten() {
        let fence = EpochFence(capacity: 3)
        for (i, s) in ["a", "b", "c"].enumerated() { #expect(fence.admit(s, epoch: UInt64(10 + i))) }
        #expect(fence.admit("a", epoch: 20))      // a newer epoch of a known session is no new entry
        #expect(fence.admit("d", epoch: 1))       // a fourth session: "a", recorded first, is forgotten
        #expect(fence.newest("a") == nil)
        #expect(fence.newest("b") == 11 && fence.newest("c") == 12 && fence.newest("d") == 1)
        for i in 0..<2_000 { _ = fence.admit("x\(i)", epoch: 1) }
        #expect(fence.newest("x1999") == 1 && fence.newest("x1997") == 1 && fence.newest("x1996") == nil)
    }
}
