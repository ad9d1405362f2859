import Foundation
@testable import DrafterAgent
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemModels
import TandemServing
import TandemSpeculative
import TandemWire
import Testing

/// The server ships the draft (docs/model-shipping.md): the gateway's model endpoint (listing, ranges,
/// ETag = sha256, variants produced once), the drafter's fetcher (resume, corrupt downloads refused and
/// fetched again, the local store reused) and `--model auto` (the advisor's choice among what the
/// cluster ships, reloaded when the advice changes). In process, on the synthetic model pair, with the
/// real gateway application (`InProcessGateway`) served on a loopback port where a client needs one.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct ModelShippingTests {
    /// A gateway model store holding the synthetic target and draft.
    struct Store {
        let directory: URL
        let target: URL
        let draft: URL
        var draftName: String { String(draft.lastPathComponent.dropLast(5)) }
        var variantName: String { draftName + ".Q4_0" }
    }

    static func makeStore() async throws -> Store {
        let pair = try await SyntheticPair.make()
        let directory = Self.temporaryDirectory("tandem-shelf")
        let target = directory.appendingPathComponent(URL(fileURLWithPath: pair.target).lastPathComponent)
        let draft = directory.appendingPathComponent(URL(fileURLWithPath: pair.draft).lastPathComponent)
        try FileManager.default.copyItem(atPath: pair.target, toPath: target.path)
        try FileManager.default.copyItem(atPath: pair.draft, toPath: draft.path)
        return Store(directory: directory, target: target, draft: draft)
    }

    static func temporaryDirectory(_ prefix: String) -> URL {
        let url = URL(fileURLWithPath: NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func gateway(_ store: Store, configure: (inout ModelShelf.Settings) -> Void = { _ in }) throws -> InProcessGateway {
        var shelf = ModelShelf.Settings(directory: store.directory)
        shelf.variantTypes = [.q4_0]
        configure(&shelf)
        return try InProcessGateway(model: store.target.path, modelShelf: shelf)
    }

    static func listing(_ response: TestResponse) throws -> ModelShipping.Listing {
        try JSONDecoder().decode(ModelShipping.Listing.self, from: Data(buffer: response.body))
    }

    static let logger = Logger(label: "test.shipping")

    // MARK: Range header

    @Test func rangeHeadersAreParsedAsRFC9110Says() {
        #expect(ByteRange.parse(nil, size: 100) == .full)
        #expect(ByteRange.parse("bytes=0-9", size: 100) == .partial(0...9))
        #expect(ByteRange.parse("bytes=90-", size: 100) == .partial(90...99))
        #expect(ByteRange.parse("bytes=90-500", size: 100) == .partial(90...99), "the end is clamped")
        #expect(ByteRange.parse("bytes=-10", size: 100) == .partial(90...99), "suffix range")
        #expect(ByteRange.parse("bytes=-500", size: 100) == .partial(0...99))
        #expect(ByteRange.parse("bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-0", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=0-", size: 0) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=5-3", size: 100) == .full, "invalid: ignored")
        #expect(ByteRange.parse("bytes=0-1,5-6", size: 100) == .full, "several ranges: the whole file")
        #expect(ByteRange.parse("items=0-1", size: 100) == .full)
    }

    // MARK: The gateway's endpoint

    @Test func theListingNamesEveryStoredModelWithSizeDigestAndTokenizerAndOffersVariants() async throws {
        let store = try await Self.makeStore()
        let g = try Self.gateway(store)
        let shelf = try #require(g.gateway.shelf)
        let draftDigest = try ModelShipping.sha256(of: store.draft)
        try await g.test { client in
            let r = try await client.get(ModelShipping.listPath)
            #expect(r.status == .ok, "\(r.text)")
            let listing = try Self.listing(r)
            #expect(listing.version == ModelShipping.listingVersion)
            let target = try #require(listing.target)
            #expect(target.name == String(store.target.lastPathComponent.dropLast(5)))
            let draft = try #require(listing.data.first { $0.name == store.draftName })
            #expect(draft.file == store.draft.lastPathComponent && draft.cached)
            #expect(draft.bytes == ModelShipping.fileStat(store.draft)?.size)
            #expect(draft.sha256 == draftDigest)
            #expect(draft.tokenizer != nil && draft.tokenizer == target.tokenizer, "the synthetic pair shares a vocabulary")
            let variant = try #require(listing.data.first { $0.name == store.variantName })
            #expect(!variant.cached && variant.bytes == nil && variant.sha256 == nil)
            #expect(variant.base == store.draftName && variant.type == "Q4_0")
            #expect(variant.file == store.variantName + ".gguf")
            // Hashed once: the digest is kept in memory and in a sha256sum-style sidecar.
            #expect(ModelShipping.readMarker(for: store.draft) == draftDigest)
            let hashed = shelf.facts.hashCount
            #expect(try Self.listing(try await client.get(ModelShipping.listPath)) == listing)
            #expect(shelf.facts.hashCount == hashed)
        }
        // A restarted gateway reads the sidecars instead of hashing again.
        let again = ModelFileFacts()
        #expect(try again.sha256(of: store.draft) == draftDigest)
        #expect(again.hashCount == 0)
    }

    @Test func aModelFileIsServedWholeOrByRangeWithItsDigestAsETag() async throws {
        let store = try await Self.makeStore()
        let g = try Self.gateway(store)
        let bytes = try Data(contentsOf: store.draft)
        let size = bytes.count
        let etag = "\"\(try ModelShipping.sha256(of: store.draft))\""
        let path = ModelShipping.filePath(store.draftName)
        try await g.test { client in
            let whole = try await client.get(path)
            #expect(whole.status == .ok)
            #expect(Data(buffer: whole.body) == bytes)
            #expect(whole.headers[.eTag] == etag)
            #expect(whole.headers[.acceptRanges] == "bytes")
            #expect(whole.headers[.contentLength] == "\(size)")

            let middle = try await client.get(path, headers: [.range: "bytes=10-109"])
            #expect(middle.status == .partialContent)
            #expect(middle.headers[.contentRange] == "bytes 10-109/\(size)")
            #expect(Data(buffer: middle.body) == bytes[10...109])
            #expect(middle.headers[.eTag] == etag)

            let rest = try await client.get(path, headers: [.range: "bytes=\(size - 1000)-"])
            #expect(rest.status == .partialContent)
            #expect(Data(buffer: rest.body) == bytes.suffix(1000))
            let tail = try await client.get(path, headers: [.range: "bytes=-16"])
            #expect(Data(buffer: tail.body) == bytes.suffix(16))

            let past = try await client.get(path, headers: [.range: "bytes=\(size)-"])
            #expect(past.status == .rangeNotSatisfiable)
            #expect(past.headers[.contentRange] == "bytes */\(size)")

            // A resumed copy of another version gets the whole file.
            let stale = try await client.get(path, headers: [.range: "bytes=10-19", .ifRange: "\"\(String(repeating: "0", count: 64))\""])
            #expect(stale.status == .ok && stale.body.readableBytes == size)
            let current = try await client.get(path, headers: [.range: "bytes=10-19", .ifRange: etag])
            #expect(current.status == .partialContent && current.body.readableBytes == 10)

            #expect(try await client.get(path, headers: [.ifNoneMatch: etag]).status == .notModified)
            let head = try await client.execute(uri: path, method: .head)
            #expect(head.status == .ok && head.headers[.contentLength] == "\(size)" && head.headers[.eTag] == etag)
            #expect(head.body.readableBytes == 0)

            // The file name and the listing's name mean the same model.
            #expect(try await client.get(ModelShipping.filePath(store.draft.lastPathComponent)).headers[.eTag] == etag)

            let unknown = try await client.get(ModelShipping.filePath("no-such-model"))
            #expect(unknown.status == .notFound)
            #expect(unknown.headers[.contentType] == "application/json")
            let error = try #require(unknown.json?["error"] as? [String: Any])
            #expect(error["code"] as? String == "model_not_found")
            #expect(error["param"] as? String == "model")
            #expect(error["type"] as? String == "invalid_request_error")
            #expect((error["message"] as? String)?.contains("no-such-model") == true)
        }
    }

    @Test func aMissingVariantIsProducedOnceWithTheQuantizerAndKept() async throws {
        let store = try await Self.makeStore()
        let g = try Self.gateway(store)
        let shelf = try #require(g.gateway.shelf)
        let produced = store.directory.appendingPathComponent(store.variantName + ".gguf")
        try await g.test { client in
            let path = ModelShipping.filePath(store.variantName)
            let first = try await client.get(path)
            #expect(first.status == .ok, "\(first.status) \(first.text.prefix(300))")
            let digest = try ModelShipping.sha256(of: produced)
            #expect(first.headers[.eTag] == "\"\(digest)\"")
            #expect(Data(buffer: first.body) == (try Data(contentsOf: produced)))
            let gguf = try GGUFFile(path: produced.path)
            #expect(gguf.dominantTypeName == "Q4_0")
            #expect(gguf.tensors.count == (try GGUFFile(path: store.draft.path)).tensors.count)

            #expect(try await client.get(path, headers: [.range: "bytes=0-3"]).status == .partialContent)
            #expect(await shelf.producedCount == 1, "produced once, then served from the store")
            let listed = try Self.listing(try await client.get(ModelShipping.listPath)).data.first { $0.name == store.variantName }
            #expect(listed?.cached == true && listed?.sha256 == digest && listed?.type == "Q4_0")
        }
    }

    // MARK: The drafter's fetcher

    @Test func aPartialDownloadResumesWithARangeRequestToTheSameDigest() async throws {
        let store = try await Self.makeStore()
        let g = try Self.gateway(store)
        let local = Self.temporaryDirectory("tandem-drafter-cache")
        try await g.test(.live) { client in
            let port = try #require(client.port)
            let fetcher = ModelFetcher(baseURL: "http://127.0.0.1:\(port)", directory: local, logger: Self.logger)
            let entry = try #require(ModelShipping.entry(named: store.draftName, in: try await fetcher.listing().data))
            let bytes = try Data(contentsOf: store.draft)
            // What an interrupted download leaves: the first third of the file and the digest it belongs to.
            let cut = bytes.count / 3
            try bytes.prefix(cut).write(to: local.appendingPathComponent(entry.file + ".part"))
            try "\"\(try #require(entry.sha256))\"".write(to: local.appendingPathComponent(entry.file + ".part.etag"),
                                                           atomically: true, encoding: .utf8)
            let resumed = try await fetcher.fetch(entry)
            #expect(resumed.resumedFrom == Int64(cut))
            #expect(resumed.downloadedBytes == Int64(bytes.count - cut), "only the missing bytes travel")
            #expect(resumed.refused == 0)
            #expect(resumed.url == local.appendingPathComponent(entry.file))
            #expect(try ModelShipping.sha256(of: resumed.url) == entry.sha256)
            #expect(try Data(contentsOf: resumed.url) == bytes)
            #expect(!FileManager.default.fileExists(atPath: local.appendingPathComponent(entry.file + ".part").path))
            #expect(ModelShipping.readMarker(for: resumed.url) == entry.sha256)

            // The next start finds it in the local store: nothing is downloaded.
            let again = try await fetcher.fetch(entry)
            #expect(again.downloadedBytes == 0 && again.url == resumed.url)

            // A fresh download, whole.
            let fresh = Self.temporaryDirectory("tandem-drafter-cache")
            var other = fetcher
            other.directory = fresh
            let whole = try await other.fetch(entry)
            #expect(whole.downloadedBytes == Int64(bytes.count) && whole.resumedFrom == 0)
            #expect(try ModelShipping.sha256(of: whole.url) == entry.sha256)
        }
    }

    @Test func aCorruptDownloadIsRefusedAndFetchedAgain() async throws {
        let store = try await Self.makeStore()
        let g = try Self.gateway(store)
        try await g.test(.live) { client in
            let port = try #require(client.port)
            let local = Self.temporaryDirectory("tandem-drafter-cache")
            var fetcher = ModelFetcher(baseURL: "http://127.0.0.1:\(port)", directory: local, logger: Self.logger)
            let entry = try #require(ModelShipping.entry(named: store.draftName, in: try await fetcher.listing().data))
            let size = Int(try #require(entry.bytes))
            // A partial file whose bytes are wrong (a disk or transfer error) but which claims the right digest:
            // the resumed file's sha256 does not match, it is discarded and downloaded again from the start.
            func corruptPart(in directory: URL) throws {
                try Data(repeating: 0xAB, count: 4096).write(to: directory.appendingPathComponent(entry.file + ".part"))
                try "\"\(entry.sha256!)\"".write(to: directory.appendingPathComponent(entry.file + ".part.etag"),
                                                 atomically: true, encoding: .utf8)
            }
            try corruptPart(in: local)
            let result = try await fetcher.fetch(entry)
            #expect(result.refused == 1)
            #expect(result.downloadedBytes == Int64(size - 4096 + size))
            #expect(try ModelShipping.sha256(of: result.url) == entry.sha256)

            // With no attempt left the download fails, and nothing is left under the model's name.
            let second = Self.temporaryDirectory("tandem-drafter-cache")
            fetcher.directory = second
            fetcher.attempts = 1
            try corruptPart(in: second)
            await #expect(throws: ModelFetcher.Failure.self) { try await fetcher.fetch(entry) }
            let left = try FileManager.default.contentsOfDirectory(atPath: second.path)
            #expect(left.isEmpty, "\(left)")

            // An unknown model is a 404, not a retry.
            var unknown = entry
            unknown.name = "no-such-model"
            do {
                _ = try await fetcher.fetch(unknown)
                Issue.record("an unknown model was fetched")
            } catch let failure as ModelFetcher.Failure {
                #expect(failure == .notFound("no-such-model"))
            }
        }
    }

    @Test func aVariantStillBeingProducedIsWaitedFor() async throws {
        let store = try await Self.makeStore()
        // The gateway answers 503 + Retry-After at once instead of waiting for the quantiser.
        let g = try Self.gateway(store) { $0.productionWait = .zero }
        try await g.test(.live) { client in
            let port = try #require(client.port)
            let fetcher = ModelFetcher(baseURL: "http://127.0.0.1:\(port)", directory: Self.temporaryDirectory("tandem-drafter-cache"),
                                       logger: Self.logger)
            let entry = try #require(ModelShipping.entry(named: store.variantName, in: try await fetcher.listing().data))
            #expect(entry.sha256 == nil)
            let result = try await fetcher.fetch(entry)
            let produced = store.directory.appendingPathComponent(store.variantName + ".gguf")
            #expect(try ModelShipping.sha256(of: result.url) == (try ModelShipping.sha256(of: produced)))
            #expect(try GGUFFile(path: result.url.path).dominantTypeName == "Q4_0")
        }
    }

    // MARK: --model auto

    /// A config-advisor that answers with whatever model the test sets, recording the queries.
    final class ScriptedAdvisor: Sendable {
        let endpoint: BusEndpoint
        let queries = Mutex<[AdvisorQuery]>([])
        let choice: Mutex<String>
        init(context: BusContext, choice: String) throws {
            self.choice = Mutex(choice)
            endpoint = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*", logger: Logger(label: "test"))
            try endpoint.serve(logger: Logger(label: "test")) { [self] envelope, _ in
                guard case .advise(let query) = envelope.message else { return nil }
                self.queries.withLock { $0.append(query) }
                return .advice(AdvisorRecommendation(draftModel: self.choice.withLock { $0 }, quantization: "?", k: 3,
                                                     expectedTokensPerRound: 2, objectiveValue: 1, basis: "test"))
            }
        }
    }

    @Test func modelAutoFetchesTheAdvisedModelAndReloadsWhenTheAdviceChanges() async throws {
        let store = try await Self.makeStore()
        let g = try Self.gateway(store)
        let cache = Self.temporaryDirectory("tandem-drafter-cache")
        try await g.test(.live) { _ in
            let context = try BusContext()
            let advisor = try ScriptedAdvisor(context: context, choice: store.draftName)
            let control = try #require(g.gateway.control.endpoint.boundEndpoint)
            // No --model-server: the drafter asks the gateway's control socket where its HTTP side is.
            let auto = AutoDraftModel(settings: .init(cacheDirectory: cache), context: context, gatewayControl: control,
                                      logger: Self.logger)
            let link = AdvisorLink(context: context, endpoint: try #require(advisor.endpoint.boundEndpoint),
                                   device: DeviceProfile(name: "edge", powerWatts: 5), edgeProfile: nil,
                                   candidates: { await auto.candidates(for: $0) }, apply: { _, _ in },
                                   logger: Self.logger)
            let start = try await auto.start(advisor: link)
            let targetName = String(store.target.lastPathComponent.dropLast(5))
            #expect(start.target == targetName, "the gateway's served model is the target")
            let query = try #require(advisor.queries.withLock { $0.first })
            #expect(query.targetModel == targetName)
            #expect(Set(query.candidates) == [store.draftName, store.variantName],
                    "what the cluster ships for this target's vocabulary, not the target itself")
            #expect(start.entry.name == store.draftName && start.advice.k == 3)
            #expect(start.fetched.url == cache.appendingPathComponent(store.draft.lastPathComponent))
            #expect(try ModelShipping.sha256(of: start.fetched.url) == (try ModelShipping.sha256(of: store.draft)))

            @Sendable func load(_ url: URL, _ name: String) async throws -> ModelDraftSource {
                let loaded = try await ModelLoader.load(url.path, logger: Self.logger)
                return ModelDraftSource(engine: ForwardEngine(model: loaded.model, threads: 1), tokenizer: loaded.tokenizer,
                                        modelName: name, quantization: loaded.model.gguf.dominantTypeName,
                                        device: DeviceProfile(name: "edge", powerWatts: 5), devices: nil, maxK: 4,
                                        draftSupport: 8)
            }
            let source = ReloadableDraftSource(try await load(start.fetched.url, start.entry.name))
            let reloader = DraftModelReloader(auto: auto, source: source, current: start.entry.name,
                                              load: { try await load($0, $1) }, logger: Self.logger)
            func session(_ id: String) -> DrafterSession {
                DrafterSession(start: SessionStart(session: SessionID(id), promptTokens: [72, 101, 108], sampling: WireSampling(),
                                                   maxTokens: 8, verifierID: "v", verifierEndpoint: "tcp://127.0.0.1:1",
                                                   arrivedAt: 0),
                               controller: SpeculationController())
            }
            let inFlight = session("in-flight")
            #expect(try await source.draft(inFlight, k: 2).model == store.draftName)

            // The same advice again changes nothing.
            await reloader.consider(AdvisorRecommendation(draftModel: store.draft.lastPathComponent, quantization: "Q8_0",
                                                          k: 3, expectedTokensPerRound: 2, objectiveValue: 1, basis: "test"))
            #expect(await reloader.reloads == 0)
            // Advice naming the Q4_0 variant: produced by the gateway, downloaded, loaded, swapped in.
            advisor.choice.withLock { $0 = store.variantName }
            let advice = try await link.ask(target: targetName)
            await reloader.consider(advice)
            #expect(await reloader.reloads == 1)
            #expect(source.modelName == store.variantName && source.swapCount == 1)
            #expect(FileManager.default.fileExists(atPath: cache.appendingPathComponent(store.variantName + ".gguf").path))
            // A session that drafted before the swap keeps its model to its end; a new session gets the new one.
            #expect(try await source.draft(inFlight, k: 2).model == store.draftName)
            #expect(try await source.draft(session("after"), k: 2).model == store.variantName)

            // A model the cluster does not ship is not loaded.
            await reloader.consider(AdvisorRecommendation(draftModel: "no-such-model", quantization: "?", k: 3,
                                                          expectedTokensPerRound: 2, objectiveValue: 1, basis: "test"))
            #expect(await reloader.failures == 1 && source.modelName == store.variantName)
            source.shutdown()
            await advisor.endpoint.close()
            await context.shutdown()
        }
    }

    /// A store of the pinned models (symbolic links to the cached files and their markers, so nothing is
    /// hashed again): listed under their catalog names with the catalog's digests; the Qwen pair shares a
    /// tokenizer fingerprint and SmolLM2 does not, so a Qwen target is offered only the 0.5B and its variants.
    @Test(.enabled(if: cachedModel(ModelCatalog.qwen25Coder15B.fileName) != nil
                   && cachedModel(ModelCatalog.qwen25Coder05B.fileName) != nil
                   && cachedModel(ModelCatalog.smolLM2.fileName) != nil, "needs the three pinned models"))
    func thePinnedModelsAreShippedUnderTheirCatalogNamesAndTheQwenPairSharesATokenizer() async throws {
        let directory = Self.temporaryDirectory("tandem-shelf")
        for spec in ModelCatalog.all {
            let file = try #require(cachedModel(spec.fileName))
            try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent(spec.fileName).path,
                                                       withDestinationPath: file)
            if FileManager.default.fileExists(atPath: file + ".sha256") {
                try FileManager.default.createSymbolicLink(
                    atPath: directory.appendingPathComponent(spec.fileName + ".sha256").path, withDestinationPath: file + ".sha256")
            }
        }
        var settings = ModelShelf.Settings(directory: directory)
        settings.variantTypes = [.q8_0, .q4_K]
        let shelf = ModelShelf(settings: settings, target: nil, logger: Self.logger)
        let entries = try await shelf.listing().data
        for spec in ModelCatalog.all {
            let entry = try #require(entries.first { $0.name == spec.name })
            #expect(entry.file == spec.fileName && entry.bytes == spec.size && entry.sha256 == spec.sha256 && entry.cached)
            #expect(entries.contains { $0.name == spec.name + ".Q4_K" && !$0.cached && $0.base == spec.name })
        }
        let qwenTarget = try #require(entries.first { $0.name == ModelCatalog.qwen25Coder15B.name })
        let qwenDraft = try #require(entries.first { $0.name == ModelCatalog.qwen25Coder05B.name })
        let smol = try #require(entries.first { $0.name == ModelCatalog.smolLM2.name })
        #expect(qwenTarget.tokenizer != nil && qwenTarget.tokenizer == qwenDraft.tokenizer)
        #expect(smol.tokenizer != qwenTarget.tokenizer)
        let listing = ModelShipping.Listing(target: .init(name: qwenTarget.name, tokenizer: qwenTarget.tokenizer), data: entries)
        #expect(AutoDraftModel.candidates(listing, target: qwenTarget.name, allowed: nil)
                == ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct.Q8_0", "qwen2.5-coder-0.5b-instruct.Q4_K"])
        #expect(shelf.facts.hashCount == 0, "the markers of `tandem models fetch` vouch for the files")
    }

    @Test func aWildcardOrLoopbackHTTPAddressIsReachedThroughTheControlHost() {
        #expect(AutoDraftModel.reachable("http://0.0.0.0:8080", control: "tcp://10.1.2.3:5550") == "http://10.1.2.3:8080")
        #expect(AutoDraftModel.reachable("http://127.0.0.1:8080", control: "tcp://10.1.2.3:5550") == "http://10.1.2.3:8080")
        #expect(AutoDraftModel.reachable("http://127.0.0.1:8080", control: "tcp://127.0.0.1:5550") == "http://127.0.0.1:8080")
        #expect(AutoDraftModel.reachable("http://10.9.9.9:8080", control: "tcp://10.1.2.3:5550") == "http://10.9.9.9:8080")
    }
}

/// `drafter-agent --model auto` in a whole cluster of real processes (`tandem up --draft-model auto`): the
/// drafter finds the gateway's HTTP address on its control socket, the config-advisor chooses among the
/// models the gateway ships (here restricted to the Q4_0 variant of the synthetic draft, which the gateway
/// produces on request), the drafter downloads it into its own store, and serves requests whose output
/// equals the target's own greedy output.
@Suite(.serialized, .timeLimit(.minutes(15)))
struct ModelAutoServingTests {
    @Test func aDrafterStartedWithModelAutoServesTheAdvisedVariant() async throws {
        let store = try await ModelShippingTests.makeStore()
        let cache = ModelShippingTests.temporaryDirectory("tandem-drafter-cache")
        let reference = try TargetOnly(path: store.target.path)
        let cluster = try await TestCluster.start(
            target: store.target.path, draft: "auto", verifiers: 1, drafters: 1,
            environment: ["TANDEM_MODELS": store.directory.path, "TANDEM_SHIP_VARIANTS": "Q4_0",
                          "TANDEM_DRAFT_MODEL_CACHE": cache.path, "TANDEM_DRAFT_CANDIDATES": store.variantName])
        defer { Task { await cluster.stop() } }

        let status = try await cluster.request("GET", "/v1/cluster")
        let drafter = (status.json?["replicas"] as? [[String: Any]])?
            .compactMap { $0["registration"] as? [String: Any] }.first { $0["role"] as? String == "drafter-agent" }
        #expect(drafter?["model"] as? String == store.variantName, "\(status.text.prefix(600))")
        let downloaded = cache.appendingPathComponent(store.variantName + ".gguf")
        #expect(FileManager.default.fileExists(atPath: downloaded.path))
        #expect(ModelShipping.readMarker(for: downloaded) != nil)
        #expect(try GGUFFile(path: downloaded.path).dominantTypeName == "Q4_0")

        var drafted = 0
        for prompt in ServingTests.prompts {
            let expected = try reference.generate(prompt: prompt, params: .greedy, maxTokens: 32)
            let (text, r) = try await cluster.completion(["prompt": prompt, "max_tokens": 32, "temperature": 0, "k": 4])
            #expect(r.status == 200, "\(r.text)")
            #expect(text == expected, "prompt \(prompt)")
            drafted += (r.json?["tandem"] as? [String: Any])?["drafted"] as? Int ?? 0
        }
        #expect(drafted > 0, "the shipped model drafted")
        await cluster.stop()
    }

    /// The same with the small pinned model: SmolLM2 serves itself, drafted by its Q8_0 requantisation, which
    /// the gateway makes from the cached file on the first request and the drafter downloads (130 MB).
    @Test(.enabled(if: cachedModel(ModelCatalog.smolLM2.fileName) != nil, "needs smollm2-135m-instruct"))
    func aDrafterStartedWithModelAutoServesSmolLM2WithItsQ8_0Variant() async throws {
        let spec = ModelCatalog.smolLM2
        let file = try #require(cachedModel(spec.fileName))
        let store = ModelShippingTests.temporaryDirectory("tandem-shelf")
        try FileManager.default.createSymbolicLink(atPath: store.appendingPathComponent(spec.fileName).path,
                                                   withDestinationPath: file)
        let cache = ModelShippingTests.temporaryDirectory("tandem-drafter-cache")
        defer {
            try? FileManager.default.removeItem(at: store)
            try? FileManager.default.removeItem(at: cache)
        }
        let reference = try TargetOnly(path: file)
        let variant = spec.name + ".Q8_0"
        let cluster = try await TestCluster.start(
            target: spec.name, draft: "auto", verifiers: 1, drafters: 1,
            environment: ["TANDEM_MODELS": store.path, "TANDEM_SHIP_VARIANTS": "Q8_0",
                          "TANDEM_DRAFT_MODEL_CACHE": cache.path, "TANDEM_DRAFT_CANDIDATES": variant])
        defer { Task { await cluster.stop() } }
        let status = try await cluster.request("GET", "/v1/cluster")
        let drafter = (status.json?["replicas"] as? [[String: Any]])?
            .compactMap { $0["registration"] as? [String: Any] }.first { $0["role"] as? String == "drafter-agent" }
        #expect(drafter?["model"] as? String == variant)
        let downloaded = cache.appendingPathComponent(variant + ".gguf")
        #expect(try ModelShipping.sha256(of: downloaded) == (try ModelShipping.sha256(of: store.appendingPathComponent(variant + ".gguf"))))
        let prompt = reference.tokenizer.encode("def fibonacci(n):")
        let expected = try reference.generate(prompt: prompt, params: .greedy, maxTokens: 24)
        let (text, r) = try await cluster.completion(["prompt": prompt, "max_tokens": 24, "temperature": 0, "k": 4])
        #expect(r.status == 200, "\(r.text)")
        #expect(text == expected)
        await cluster.stop()
    }
}
