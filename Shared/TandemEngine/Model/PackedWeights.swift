import Dispatch
import TandemKernels

/// The packed (row-interleaved) copies of a model's weight matrices (see `WeightPacking`).
///
/// Why a copy: the batched integer kernels need 8 rows interleaved, which ggml's file layout is
/// not. The copy is the same size as the original, and the original's pages are released from
/// the resident set as soon as each matrix is packed (`GGUFFile.releasePages`), so the process
/// still holds the weights once. Embedding lookups keep reading the mapped file.
final class PackedWeights: @unchecked Sendable {
    // @unchecked: the buffer is written only inside `init`, then read-only.
    private let base: UnsafeMutableRawPointer?
    let byteCount: Int

    /// Packs every packable matrix of `matrices` and returns them with `packed` set, in order.
    /// Matrices that cannot be packed are returned unchanged. Packing runs on `threads` threads.
    init(_ matrices: [WeightMatrix], file: GGUFFile, threads: Int, result: inout [WeightMatrix]) {
        var offsets: [Int?] = []
        var total = 0
        for w in matrices {
            if WeightPacking.canPack(w.type, rows: w.rows) {
                offsets.append(total)
                total += (WeightPacking.packedByteCount(w) + 63) / 64 * 64
            } else {
                offsets.append(nil)
            }
        }
        byteCount = total
        guard total > 0 else {
            base = nil
            result = matrices
            return
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 64)
        base = buffer
        result = []
        for (w, offset) in zip(matrices, offsets) {
            guard let offset else {
                result.append(w)
                continue
            }
            let dst = buffer + offset
            let address = Int(bitPattern: dst)
            let groups = w.rows / WeightPacking.groupRows
            let parts = max(1, min(threads, groups))
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                WeightPacking.pack(w, into: UnsafeMutableRawPointer(bitPattern: address)!, groups: (groups * part / parts)..<(groups * (part + 1) / parts))
            }
            file.releasePages(w.data, count: w.byteCount)
            result.append(w.withPacked(UnsafeRawPointer(dst)))
        }
    }

    deinit { base?.deallocate() }
}
