/// Reusable buffers for merging one piece.
struct BPEScratch {
    var ids: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap: [BPECandidate] = []
}

/// A possible merge of the symbols starting at `left` and its right neighbour. Entries can go stale
/// when a neighbour merges first; they are checked against the current symbols when popped.
struct BPECandidate {
    var rank: UInt32
    var left: Int32
    var leftID: Int32
    var rightID: Int32
    var merged: Int32

    /// Lower rank first; among equal ranks the leftmost, as in reference BPE.
    @inline(__always)
    func precedes(_ other: BPECandidate) -> Bool {
        rank < other.rank || (rank == other.rank && left < other.left)
    }
}

extension Tokenizer {
    /// Pieces up to this many bytes use the simple quadratic scan, which is faster for short words.
    static let smallPieceLimit = 48

    @inline(__always)
    func lookupMerge(_ left: Int32, _ right: Int32) -> (rank: UInt32, merged: Int32)? {
        guard let v = merges[UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))] else {
            return nil
        }
        return (UInt32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v & 0xFFFF_FFFF))
    }

    /// Byte-level BPE of one pre-tokenized piece: starts from one symbol per byte and applies the
    /// lowest-ranked available merge until none applies.
    func bpe(_ piece: UnsafeBufferPointer<UInt8>, scratch: inout BPEScratch, into out: inout [Int32]) {
        scratch.ids.removeAll(keepingCapacity: true)
        for b in piece {
            let id = byteToken[Int(b)]
            if id >= 0 { scratch.ids.append(id) }
        }
        if scratch.ids.count <= Tokenizer.smallPieceLimit {
            bpeSmall(&scratch.ids)
            out.append(contentsOf: scratch.ids)
        } else {
            bpeLarge(&scratch, into: &out)
        }
    }

    private func bpeSmall(_ ids: inout [Int32]) {
        while ids.count > 1 {
            var bestRank = UInt32.max
            var bestIndex = -1
            var bestMerged: Int32 = 0
            for i in 0..<(ids.count - 1) {
                if let m = lookupMerge(ids[i], ids[i + 1]), m.rank < bestRank {
                    bestRank = m.rank
                    bestIndex = i
                    bestMerged = m.merged
                }
            }
            if bestIndex < 0 { break }
            ids[bestIndex] = bestMerged
            ids.remove(at: bestIndex + 1)
        }
    }

    /// Priority-queue BPE over a linked list of symbols: O(n log n) for long pieces (runs of
    /// spaces, minified code, base64).
    private func bpeLarge(_ s: inout BPEScratch, into out: inout [Int32]) {
        let n = s.ids.count
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            s.prev.append(Int32(i - 1))
            s.next.append(i + 1 < n ? Int32(i + 1) : -1)
        }
        for i in 0..<(n - 1) {
            if let m = lookupMerge(s.ids[i], s.ids[i + 1]) {
                heapPush(&s.heap, BPECandidate(rank: m.rank, left: Int32(i), leftID: s.ids[i], rightID: s.ids[i + 1],
                                               merged: m.merged))
            }
        }
        while let top = heapPop(&s.heap) {
            let l = Int(top.left)
            // Stale if the left symbol was merged away or changed, or its right neighbour changed.
            guard s.ids[l] == top.leftID else { continue }
            let r = Int(s.next[l])
            guard r >= 0, s.ids[r] == top.rightID else { continue }
            s.ids[l] = top.merged
            s.ids[r] = -1
            let rn = s.next[r]
            s.next[l] = rn
            if rn >= 0 { s.prev[Int(rn)] = Int32(l) }
            let p = s.prev[l]
            if p >= 0, let m = lookupMerge(s.ids[Int(p)], s.ids[l]) {
                heapPush(&s.heap, BPECandidate(rank: m.rank, left: p, leftID: s.ids[Int(p)], rightID: s.ids[l],
                                               merged: m.merged))
            }
            if rn >= 0, let m = lookupMerge(s.ids[l], s.ids[Int(rn)]) {
                heapPush(&s.heap, BPECandidate(rank: m.rank, left: Int32(l), leftID: s.ids[l],
                                               rightID: s.ids[Int(rn)], merged: m.merged))
            }
        }
        var i: Int32 = 0
        while i >= 0 {
            out.append(s.ids[Int(i)])
            i = s.next[Int(i)]
        }
    }

    private func heapPush(_ heap: inout [BPECandidate], _ item: BPECandidate) {
        heap.append(item)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[child].precedes(heap[parent]) {
                heap.swapAt(child, parent)
                child = parent
            } else {
                break
            }
        }
    }

    private func heapPop(_ heap: inout [BPECandidate]) -> BPECandidate? {
        guard let last = heap.popLast() else { return nil }
        if heap.isEmpty { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        let count = heap.count
        while true {
            let l = 2 * parent + 1
            if l >= count { break }
            let r = l + 1
            var best = l
            if r < count, heap[r].precedes(heap[l]) { best = r }
            if heap[best].precedes(heap[parent]) {
                heap.swapAt(best, parent)
                parent = best
            } else {
                break
            }
        }
        return top
    }
}
