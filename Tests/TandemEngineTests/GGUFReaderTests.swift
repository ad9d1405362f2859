import Foundation
import Testing

@testable import TandemEngine

/// Builds small GGUF images byte by byte so malformed variants can be produced precisely.
struct GGUFBuilder {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func pad(to a: Int) { while bytes.count % a != 0 { bytes.append(0) } }

    struct Tensor { var name: String; var dims: [UInt64]; var type: UInt32; var offset: UInt64 }

    /// A valid file: a few metadata entries (u32, f32, string, string array, i32 array, bool) and two F32
    /// tensors, with `mutate` hooks to corrupt it.
    static func make(
        magic: UInt32 = 0x4655_4747, version: UInt32 = 3,
        tensors: [Tensor] = [
            Tensor(name: "a.weight", dims: [4, 2], type: 0, offset: 0),
            Tensor(name: "b.weight", dims: [8], type: 0, offset: 32),
        ],
        tensorCountOverride: UInt64? = nil,
        dataBytes: Int = 64
    ) -> [UInt8] {
        var b = GGUFBuilder()
        b.u32(magic)
        b.u32(version)
        b.u64(tensorCountOverride ?? UInt64(tensors.count))
        b.u64(6)
        b.str("general.architecture"); b.u32(8); b.str("llama")
        b.str("llama.block_count"); b.u32(4); b.u32(2)
        b.str("llama.attention.layer_norm_rms_epsilon"); b.u32(6); b.f32(1e-5)
        b.str("tokenizer.ggml.tokens"); b.u32(9); b.u32(8); b.u64(3); b.str("<s>"); b.str("a"); b.str("é")
        b.str("tokenizer.ggml.token_type"); b.u32(9); b.u32(5); b.u64(3); b.u32(3); b.u32(1); b.u32(1)
        b.str("tokenizer.ggml.add_bos_token"); b.u32(7); b.u8(1)
        for t in tensors {
            b.str(t.name); b.u32(UInt32(t.dims.count)); for d in t.dims { b.u64(d) }
            b.u32(t.type); b.u64(t.offset)
        }
        b.pad(to: 32)
        for i in 0..<dataBytes / 4 { b.f32(Float(i)) }
        return b.bytes
    }
}

@Suite("GGUF reader")
struct GGUFReaderTests {
    @Test func parsesValidFile() throws {
        let f = try GGUFFile(bytes: GGUFBuilder.make())
        #expect(f.version == 3)
        #expect(f.architecture == "llama")
        #expect(f.metadata["llama.block_count"]?.int == 2)
        #expect(f.metadata["llama.attention.layer_norm_rms_epsilon"]?.float == 1e-5)
        #expect(f.metadata["tokenizer.ggml.tokens"]?.strings == ["<s>", "a", "é"])
        #expect(f.metadata["tokenizer.ggml.token_type"]?.ints == [3, 1, 1])
        #expect(f.metadata["tokenizer.ggml.add_bos_token"]?.bool == true)
        #expect(f.tensors.count == 2)
        let a = try f.requireTensor("a.weight")
        #expect(a.dimensions == [4, 2])
        #expect(a.rows == 2 && a.columns == 4)
        #expect(a.byteCount == 32)
        let p = f.tensorData(try f.requireTensor("b.weight")).assumingMemoryBound(to: Float.self)
        #expect(p[0] == 8 && p[7] == 15)
    }

    @Test func rejectsBadMagic() {
        var bytes = GGUFBuilder.make()
        bytes[0] = UInt8(ascii: "X")
        #expect { try GGUFFile(bytes: bytes) } throws: { ($0 as? GGUFError)?.kind == .badMagic }
    }

    @Test func rejectsUnsupportedVersion() {
        #expect { try GGUFFile(bytes: GGUFBuilder.make(version: 1)) } throws: {
            ($0 as? GGUFError)?.kind == .unsupportedVersion
        }
    }

    @Test func rejectsEveryTruncation() {
        let full = GGUFBuilder.make()
        // Cut the file at every length inside the header and metadata and at a few points in the data.
        for cut in Array(0..<(full.count - 64)) + [full.count - 1, full.count - 33] {
            do {
                _ = try GGUFFile(bytes: Array(full[0..<cut]))
                Issue.record("truncation at \(cut) of \(full.count) was accepted")
            } catch let e as GGUFError {
                #expect([.truncated, .implausibleCount, .badOffset, .badMagic].contains(e.kind), "cut \(cut): \(e)")
                #expect(!e.message.isEmpty)
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func rejectsOffsetPastEnd() {
        let bytes = GGUFBuilder.make(tensors: [.init(name: "a.weight", dims: [4, 2], type: 0, offset: 4096)])
        #expect { try GGUFFile(bytes: bytes) } throws: { e in
            guard let e = e as? GGUFError else { return false }
            return e.kind == .badOffset && e.message.contains("a.weight")
        }
    }

    @Test func rejectsMisalignedOffset() {
        let bytes = GGUFBuilder.make(tensors: [.init(name: "a.weight", dims: [4], type: 0, offset: 4)])
        #expect { try GGUFFile(bytes: bytes) } throws: { ($0 as? GGUFError)?.kind == .badOffset }
    }

    @Test func rejectsAbsurdDimensions() {
        let huge = GGUFBuilder.make(tensors: [.init(name: "x", dims: [1 << 40, 1 << 40], type: 0, offset: 0)])
        #expect { try GGUFFile(bytes: huge) } throws: { ($0 as? GGUFError)?.kind == .badDimensions }
        let overflow = GGUFBuilder.make(tensors: [.init(name: "x", dims: [UInt64.max, 2], type: 0, offset: 0)])
        #expect { try GGUFFile(bytes: overflow) } throws: { ($0 as? GGUFError)?.kind == .badDimensions }
        let zero = GGUFBuilder.make(tensors: [.init(name: "x", dims: [0], type: 0, offset: 0)])
        #expect { try GGUFFile(bytes: zero) } throws: { ($0 as? GGUFError)?.kind == .badDimensions }
        let many = GGUFBuilder.make(tensors: [.init(name: "x", dims: [1, 1, 1, 1, 1], type: 0, offset: 0)])
        #expect { try GGUFFile(bytes: many) } throws: { ($0 as? GGUFError)?.kind == .badDimensions }
        // Q4_0 rows must be a multiple of 32 elements.
        let ragged = GGUFBuilder.make(tensors: [.init(name: "x", dims: [31], type: 2, offset: 0)])
        #expect { try GGUFFile(bytes: ragged) } throws: { ($0 as? GGUFError)?.kind == .badDimensions }
    }

    @Test func rejectsUnsupportedType() {
        let bytes = GGUFBuilder.make(tensors: [.init(name: "x", dims: [32], type: 99, offset: 0)])
        #expect { try GGUFFile(bytes: bytes) } throws: { ($0 as? GGUFError)?.kind == .unsupportedType }
    }

    @Test func rejectsAbsurdCounts() {
        let bytes = GGUFBuilder.make(tensorCountOverride: UInt64.max)
        #expect { try GGUFFile(bytes: bytes) } throws: { ($0 as? GGUFError)?.kind == .implausibleCount }
    }

    @Test func rejectsMissingFile() {
        #expect { try GGUFFile(path: "/nonexistent/model.gguf") } throws: { ($0 as? GGUFError)?.kind == .io }
    }

    @Test func readsSmolLM2Metadata() throws {
        guard let path = TestModels.path("SmolLM2-135M-Instruct.Q4_1.gguf") else { return }
        let f = try GGUFFile(path: path)
        #expect(f.architecture == "llama")
        #expect(f["llama.block_count"]?.int == 30)
        #expect(f["tokenizer.ggml.tokens"]?.strings?.count == 49152)
        #expect(f["tokenizer.ggml.merges"]?.strings?.count == 48900)
        #expect(f.tensors.count == 272)
        #expect(f.tensor("token_embd.weight")?.type == .q8_0)
    }
}

/// Locates model files for tests: `$TANDEM_MODELS` or `~/.cache/tandem/models`.
enum TestModels {
    static var directory: String {
        if let d = ProcessInfo.processInfo.environment["TANDEM_MODELS"], !d.isEmpty { return d }
        return NSHomeDirectory() + "/.cache/tandem/models"
    }

    /// The path of `name` if it exists; otherwise prints a visible skip message and returns nil.
    static func path(_ name: String, function: String = #function) -> String? {
        let p = directory + "/" + name
        if FileManager.default.fileExists(atPath: p) { return p }
        print("SKIPPED \(function): model file \(p) is absent (set TANDEM_MODELS)")
        return nil
    }
}
