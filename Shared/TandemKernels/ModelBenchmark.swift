#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension KernelBenchmark {
    /// Times the matmuls of a real GGUF transformer (all `blk.N.*` projections in forward order
    /// plus the output projection), with the QKV and gate/up groups fused as an engine would
    /// call them. This is the kernel-side ceiling for forward-pass speed: norms, attention and
    /// sampling are not included. Returns tokens/s per batch size.
    ///
    /// Reads only the GGUF header (a minimal tensor-table parser) and memory-maps the file.
    @discardableResult
    public static func runModel(path: String, threads: Int = 2, batches: [Int] = [1, 8, 32],
                                minSeconds: Double = 2) -> [(nTokens: Int, tokensPerSecond: Double)] {
        guard let table = GGUFTable(path: path) else {
            print("runModel: cannot read \(path)")
            return []
        }
        defer { table.close() }
        var layers: [[WeightMatrix]] = []
        var l = 0
        while let q = table.matrix("blk.\(l).attn_q.weight") {
            let names = ["attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
            let rest = names.compactMap { table.matrix("blk.\(l).\($0).weight") }
            if rest.count != names.count { break }
            layers.append([q] + rest)
            l += 1
        }
        guard let output = table.matrix("output.weight") ?? table.matrix("token_embd.weight"), !layers.isEmpty else {
            print("runModel: no transformer layers found")
            return []
        }
        var bytes = output.byteCount
        for layer in layers { for w in layer { bytes += w.byteCount } }
        let types = Set(layers.flatMap { $0.map(\.type.name) } + [output.type.name]).sorted()
        print("runModel: \(path.split(separator: "/").last ?? ""), \(layers.count) layers, "
              + "\(fmt(Double(bytes) / 1e6)) MB of matmul weights, types \(types.joined(separator: ",")), \(threads) threads")
        let pool = ComputePool(threads: threads)
        defer { pool.shutdown() }
        let scratch = MatMulScratch()
        let maxT = batches.max() ?? 1
        let width = layers[0][0].cols, ff = layers[0][4].rows
        let maxRows = max(output.rows, ff, layers[0][0].rows)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: maxT * max(width, ff))
        let o1 = UnsafeMutablePointer<Float>.allocate(capacity: maxT * maxRows)
        let o2 = UnsafeMutablePointer<Float>.allocate(capacity: maxT * maxRows)
        let o3 = UnsafeMutablePointer<Float>.allocate(capacity: maxT * maxRows)
        defer { x.deallocate(); o1.deallocate(); o2.deallocate(); o3.deallocate() }
        var seed: UInt64 = 99
        for i in 0..<(maxT * max(width, ff)) { x[i] = Float(Int(next(&seed) % 2001) - 1000) / 1000 }
        var results: [(Int, Double)] = []
        for n in batches {
            func forward() {
                for w in layers {
                    MatMul.multiply(w[0], o1, w[1], o2, w[2], o3, input: x, nTokens: n, pool: pool, scratch: scratch)
                    MatMul.multiply(w[3], x, nTokens: n, o1, pool: pool, scratch: scratch)
                    MatMul.multiply(w[4], o1, w[5], o2, input: x, nTokens: n, pool: pool, scratch: scratch)
                    MatMul.multiply(w[6], x, nTokens: n, o3, pool: pool, scratch: scratch)
                }
                MatMul.multiply(output, x, nTokens: n, o1, pool: pool, scratch: scratch)
            }
            forward()
            let start = now(), cpu0 = processCPU()
            var iterations = 0
            while now() - start < minSeconds || iterations < 2 {
                forward()
                iterations += 1
            }
            let wall = (now() - start) / Double(iterations)
            let cpu = (processCPU() - cpu0) / Double(iterations)
            let tps = Double(n) / wall
            print("  nTokens=\(n): \(fmt(wall * 1e3)) ms/forward, \(fmt(tps)) tokens/s (matmuls only), "
                  + "\(fmt(Double(bytes) / wall / 1e9)) GB/s weights; process CPU \(fmt(cpu * 1e3)) ms/forward")
            results.append((n, tps))
        }
        return results
    }

    static func processCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// Minimal read-only GGUF tensor table (enough for the benchmark; the engine has its own reader).
final class GGUFTable {
    private let base: UnsafeMutableRawPointer
    private let size: Int
    private var tensors: [String: (type: UInt32, dims: [Int], offset: Int)] = [:]
    private var dataStart = 0

    init?(path: String) {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return nil }
        defer { Glibc.close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { return nil }
        size = Int(st.st_size)
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else { return nil }
        base = p
        if !parse() {
            munmap(base, size)
            return nil
        }
    }

    func close() { munmap(base, size) }

    private func parse() -> Bool {
        var pos = 0
        func u32() -> UInt32 { defer { pos += 4 }; return base.loadUnaligned(fromByteOffset: pos, as: UInt32.self) }
        func u64() -> UInt64 { defer { pos += 8 }; return base.loadUnaligned(fromByteOffset: pos, as: UInt64.self) }
        func string() -> String {
            let n = Int(u64())
            let s = String(decoding: UnsafeRawBufferPointer(start: base + pos, count: n), as: UTF8.self)
            pos += n
            return s
        }
        func skip(_ type: UInt32) {
            switch type {
            case 0, 1, 7: pos += 1
            case 2, 3: pos += 2
            case 4, 5, 6: pos += 4
            case 10, 11, 12: pos += 8
            case 8: _ = string()
            case 9:
                let t = u32()
                let n = Int(u64())
                for _ in 0..<n { skip(t) }
            default: pos = size
            }
        }
        guard size > 24, u32() == 0x4655_4747 else { return false }  // "GGUF"
        _ = u32()
        let nTensors = Int(u64()), nKV = Int(u64())
        var alignment = 32
        for _ in 0..<nKV {
            let key = string()
            let t = u32()
            if key == "general.alignment" && t == 4 { alignment = Int(u32()) } else { skip(t) }
            if pos >= size { return false }
        }
        for _ in 0..<nTensors {
            let name = string()
            let nd = Int(u32())
            var dims: [Int] = []
            for _ in 0..<nd { dims.append(Int(u64())) }
            let type = u32()
            let offset = Int(u64())
            tensors[name] = (type, dims, offset)
            if pos >= size { return false }
        }
        dataStart = (pos + alignment - 1) / alignment * alignment
        return true
    }

    func matrix(_ name: String) -> WeightMatrix? {
        guard let t = tensors[name], t.dims.count == 2, let type = GGMLType(rawValue: t.type), type.isSupported
        else { return nil }
        return WeightMatrix(type: type, rows: t.dims[1], cols: t.dims[0], data: UnsafeRawPointer(base + dataStart + t.offset))
    }
}
