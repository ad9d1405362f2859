/// A binary min-heap of (deadline, correlation id) so the socket thread finds the next request
/// to expire in O(log n). Entries of requests that already completed are removed lazily.
struct DeadlineHeap {
    private var entries: [(deadline: UInt64, id: UInt64)] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var first: (deadline: UInt64, id: UInt64)? { entries.first }

    mutating func insert(deadline: UInt64, id: UInt64) {
        entries.append((deadline, id))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent].deadline <= entries[child].deadline { break }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    @discardableResult
    mutating func removeFirst() -> (deadline: UInt64, id: UInt64)? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let top = entries.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count && entries[left].deadline < entries[smallest].deadline { smallest = left }
            if right < entries.count && entries[right].deadline < entries[smallest].deadline { smallest = right }
            if smallest == parent { break }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }

    mutating func removeAll() {
        entries.removeAll()
    }
}
