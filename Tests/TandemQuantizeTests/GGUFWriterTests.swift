import Foundation
import Testing
import TandemEngine
import TandemKernels
@testable import TandemQuantize

/// The writer's files read back identically with the engine's parser and with Python's GGUFReader,
/// and the requantiser's per-tensor decisions follow the plan, the keep flags and the block-size
/// fallbacks.
@Suite("GGUF writer and requantiser")
struct GGUFWriterTests {
    /// Metadata of every value kind the format has, including width-specific arrays.
    static let metadata: [(String, GGUFValue)] = [
        ("general.architecture", .string("llama")),
        ("general.alignment", .uint32(64)),
        ("test.u8", .uint8(200)), ("test.i8", .int8(-5)), ("test.u16", .uint16(60000)), ("test.i16", .int16(-300)),
        ("test.u32", .uint32(4_000_000_000)), ("test.i32", .int32(-7)), ("test.f32", .float32(1.5)),
        ("test.bool", .bool(true)), ("test.u64", .uint64(1 << 40)), ("test.i64", .int64(-(1 << 40))),
        ("test.f64", .float64(3.25)), ("test.unicode", .string("héllo ✓ Ġworld")),
        ("tokenizer.ggml.tokens", .array(.strings(["<s>", "a", "Ġb", ""]))),
        ("tokenizer.ggml.token_type", .array(.integers([1, 1, 2, 3], elementType: 5))),
        ("tokenizer.ggml.scores", .array(.floats([0, -1.5, 2], elementType: 6))),
        ("test.u8s", .array(.integers([1, 255], elementType: 0))),
        ("test.f64s", .array(.floats([0.1], elementType: 12))),
        ("test.bools", .array(.bools([true, false]))),
        ("test.nested", .array(.arrays([.integers([1, 2], elementType: 4), .strings(["x"])]))),
    ]

    /// Bytes of a value as the writer encodes it: two values are equal iff these are.
    static func encoded(_ v: GGUFValue) -> [UInt8] {
        var w = ByteWriter()
        w.value(v)
        return w.bytes
    }

    static func writeSample(_ path: String) throws -> (tensors: [GGUFWriter.Tensor], data: [[UInt8]], floats: [[Float]]) {
        let specs: [(String, [Int], GGMLType)] = [
            ("a.norm", [7], .f32), ("b.q8", [64, 3], .q8_0), ("c.q4k", [256, 2], .q4_K),
            ("d.f16", [5, 2], .f16), ("e.q6k", [256, 1, 2], .q6_K), ("f.q4_0", [32, 3], .q4_0),
        ]
        var tensors: [GGUFWriter.Tensor] = [], data: [[UInt8]] = [], floats: [[Float]] = []
        for (i, (name, dims, type)) in specs.enumerated() {
            let t = GGUFWriter.Tensor(name: name, dimensions: dims, type: type)
            let x = QuantTestData.rows(1, t.elementCount, seed: UInt64(100 + i)).map { $0 * 20 }
            tensors.append(t)
            floats.append(x)
            data.append(Quantizer.quantize(x, as: type))
        }
        let w = try GGUFWriter(path: path, metadata: metadata, tensors: tensors, alignment: 64)
        for d in data { try d.withUnsafeBytes { try w.append($0) } }
        try w.finish()
        return (tensors, data, floats)
    }

    @Test func writtenFileReadsBackWithTheEngineParser() throws {
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sample.gguf").path
        let (tensors, data, _) = try Self.writeSample(path)
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
        let f = try GGUFFile(path: path)
        #expect(f.version == 3)
        #expect(f.alignment == 64)
        #expect(f.metadataKeys == Self.metadata.map(\.0))
        for (k, v) in Self.metadata {
            #expect(f.metadata[k].map(Self.encoded) == Self.encoded(v), "metadata \(k)")
        }
        try #require(f.tensors.count == tensors.count)
        for (i, t) in f.tensors.enumerated() {
            #expect(t.name == tensors[i].name)
            #expect(t.dimensions == tensors[i].dimensions)
            #expect(t.type == tensors[i].type)
            #expect((t.fileOffset - f.dataOffset) % 64 == 0)
            #expect(Array(UnsafeRawBufferPointer(start: f.tensorData(t), count: t.byteCount)) == data[i], "\(t.name) data")
        }
    }

    /// Python's GGUFReader (what llama.cpp's tooling uses) sees the same tensors, types, shapes and
    /// metadata, and decodes each tensor to what we quantised.
    @Test func writtenFileParsesWithPythonGGUFReader() throws {
        guard PythonGGUF.require() else { return }
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sample.gguf").path
        let (tensors, _, floats) = try Self.writeSample(path)
        let script = """
        import sys, json, numpy as np
        from gguf import GGUFReader, quants
        r = GGUFReader(sys.argv[1])
        out = {"alignment": int(r.alignment), "fields": sorted(k for k in r.fields if not k.startswith("GGUF.")),
               "tokens": [bytes(r.fields["tokenizer.ggml.tokens"].parts[i]).decode() for i in r.fields["tokenizer.ggml.tokens"].data],
               "tensors": []}
        for t in r.tensors:
            x = quants.dequantize(t.data, t.tensor_type).astype(np.float32).ravel()
            out["tensors"].append({"name": t.name, "type": t.tensor_type.name, "shape": [int(s) for s in t.shape],
                                   "values": [float(v) for v in x]})
        print(json.dumps(out))
        """
        let r = try PythonGGUF.run(["-c", script, path])
        try #require(r.status == 0, "GGUFReader failed: \(r.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any])
        #expect(json["alignment"] as? Int == 64)
        #expect(Set(json["fields"] as? [String] ?? []) == Set(Self.metadata.map(\.0)))
        #expect(json["tokens"] as? [String] == ["<s>", "a", "Ġb", ""])
        let ts = try #require(json["tensors"] as? [[String: Any]])
        try #require(ts.count == tensors.count)
        for (i, t) in ts.enumerated() {
            #expect(t["name"] as? String == tensors[i].name)
            #expect(t["type"] as? String == tensors[i].type.name)
            #expect(t["shape"] as? [Int] == tensors[i].dimensions)
            let values = (t["values"] as? [Double] ?? []).map(Float.init)
            let ours = QuantTestData.dequantize(Quantizer.quantize(floats[i], as: tensors[i].type), tensors[i].type,
                                                rows: 1, columns: floats[i].count)
            #expect(values == ours, "\(tensors[i].name): Python decodes the file's bytes differently")
        }
    }

    @Test func writerRejectsWrongByteCounts() throws {
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("short.gguf").path
        let w = try GGUFWriter(path: path, metadata: [], tensors: [.init(name: "x", dimensions: [32], type: .q8_0)])
        try [UInt8](repeating: 0, count: 10).withUnsafeBytes { try w.append($0) }
        #expect(throws: GGUFError.self) { try w.finish() }
        w.abandon()
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
        #expect(throws: GGUFError.self) {
            _ = try GGUFWriter(path: path, metadata: [], tensors: [.init(name: "x", dimensions: [40], type: .q8_0)])
        }
    }

    // MARK: Requantiser

    /// A small llama-shaped source: F32 matrices (one with a 576-wide row, like SmolLM2's ffn_down
    /// input), a norm, and an output matrix already in Q8_0.
    static func writeSource(_ path: String) throws -> [String: [Float]] {
        let specs: [(String, [Int], GGMLType)] = [
            ("token_embd.weight", [512, 10], .f32), ("blk.0.attn_norm.weight", [576], .f32),
            ("blk.0.ffn_down.weight", [576, 8], .f32), ("blk.0.attn_q.weight", [512, 8], .f32),
            ("blk.1.attn_q.weight", [512, 8], .f32), ("blk.1.attn_k.weight", [512, 4], .f32),
            ("output.weight", [512, 10], .q8_0),
        ]
        var values: [String: [Float]] = [:]
        var tensors: [GGUFWriter.Tensor] = [], data: [[UInt8]] = []
        for (i, (name, dims, type)) in specs.enumerated() {
            let t = GGUFWriter.Tensor(name: name, dimensions: dims, type: type)
            let x = QuantTestData.rows(dims.dropFirst().reduce(1, *), dims[0], seed: UInt64(i + 1))
            values[name] = x
            tensors.append(t)
            data.append(Quantizer.quantize(x, as: type))
        }
        let meta: [(String, GGUFValue)] = [("general.architecture", .string("llama")), ("general.alignment", .uint32(64)),
                                           ("general.file_type", .uint32(0)), ("llama.block_count", .uint32(2))]
        let w = try GGUFWriter(path: path, metadata: meta, tensors: tensors, alignment: 64)
        for d in data { try d.withUnsafeBytes { try w.append($0) } }
        try w.finish()
        return values
    }

    @Test func requantiserFollowsPlanKeepFlagsAndFallbacks() throws {
        let dir = try QuantTestFiles.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = dir.appendingPathComponent("src.gguf").path, dst = dir.appendingPathComponent("dst.gguf").path
        let values = try Self.writeSource(src)
        let plan = try QuantizationPlan.parse(Data("""
            {"default": "Q4_K", "layers": {"1": "q6_k"}, "tensors": {"blk.0.attn_q.weight": "Q8_0", "blk.1.attn_k.weight": "F16"}}
            """.utf8), fallbackDefault: .q8_0)
        let source = try GGUFFile(path: src)
        let report = try Requantizer.run(source: source, destination: dst,
                                         options: RequantizeOptions(plan: plan, keepOutputType: true, threads: 2))
        let byName = Dictionary(uniqueKeysWithValues: report.decisions.map { ($0.name, $0) })
        #expect(byName["token_embd.weight"]?.outputType == .q4_K)
        #expect(byName["blk.0.attn_norm.weight"]?.outputType == .f32)
        #expect(byName["blk.0.attn_norm.weight"]?.action == .copy)
        #expect(byName["blk.0.ffn_down.weight"]?.outputType == .q5_0, "576 is not a multiple of 256: Q4_K falls back to Q5_0")
        #expect(byName["blk.0.ffn_down.weight"]?.requestedType == .q4_K)
        #expect(byName["blk.0.attn_q.weight"]?.outputType == .q8_0)
        #expect(byName["blk.1.attn_q.weight"]?.outputType == .q6_K)
        #expect(byName["blk.1.attn_k.weight"]?.outputType == .f16, "a tensor entry beats the layer entry")
        #expect(byName["output.weight"]?.action == .copy)

        let out = try GGUFFile(path: dst)
        #expect(out.alignment == 64)
        #expect(out.tensors.map(\.name) == source.tensors.map(\.name), "tensor order is kept")
        #expect(out.metadataKeys == source.metadataKeys)
        #expect(out["general.file_type"]?.int == 14, "mostly Q4_K (llama.cpp's MOSTLY_Q4_K_S)")
        #expect(out["llama.block_count"]?.int == 2)
        let o = try out.requireTensor("output.weight"), so = try source.requireTensor("output.weight")
        #expect(Array(UnsafeRawBufferPointer(start: out.tensorData(o), count: o.byteCount))
                == Array(UnsafeRawBufferPointer(start: source.tensorData(so), count: so.byteCount)))
        for name in ["blk.1.attn_q.weight", "blk.0.ffn_down.weight", "token_embd.weight"] {
            let t = try out.requireTensor(name)
            let bytes = Array(UnsafeRawBufferPointer(start: out.tensorData(t), count: t.byteCount))
            let y = QuantTestData.dequantize(bytes, t.type, rows: t.rows, columns: t.columns)
            let err = QuantTestData.worstRelativeRMSE(values[name]!, y, columns: t.columns)
            // A wiring check (right tensor, right type, right rows), not a precision bound: these rows
            // include outlier and all-negative blocks, which 4-5 bit formats represent coarsely.
            #expect(err < 0.2, "\(name) as \(t.type.name): relative RMSE \(err)")
        }
        #expect(report.fileSize == (try FileManager.default.attributesOfItem(atPath: dst)[.size] as? Int))
    }

    @Test func planRejectsUnknownKeysAndTypes() {
        #expect(throws: PlanError.self) { try QuantizationPlan.parse(Data(#"{"layer": {"0": "Q8_0"}}"#.utf8), fallbackDefault: .q8_0) }
        #expect(throws: PlanError.self) { try QuantizationPlan.parse(Data(#"{"default": "Q3_K"}"#.utf8), fallbackDefault: .q8_0) }
        #expect(throws: PlanError.self) { try QuantizationPlan.parse(Data(#"{"layers": {"x": "Q8_0"}}"#.utf8), fallbackDefault: .q8_0) }
        #expect(throws: PlanError.self) { try QuantizationPlan.parse(Data(#"{"layers": {"0": "Q8_0"}}"#.utf8), fallbackDefault: nil) }
        #expect((try? QuantizationPlan.parse(Data(#"{"layers": {"0": "Q8_0"}}"#.utf8), fallbackDefault: .q4_0))?.defaultType == .q4_0)
        #expect(QuantizationPlan.layer(of: "blk.12.ffn_up.weight") == 12)
        #expect(QuantizationPlan.layer(of: "output.weight") == nil)
    }

    @Test func planJSONRoundTrips() throws {
        let plan = QuantizationPlan(defaultType: .q4_K, layers: [0: .q8_0, 3: .q5_K], tensors: ["output.weight": .q6_K])
        #expect(try QuantizationPlan.parse(plan.jsonData(), fallbackDefault: .f16) == plan)
    }
}
