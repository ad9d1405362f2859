import Foundation
import Logging
import TandemBus
import TandemEngine
import TandemService
import TandemServing
import TandemWire

/// `drafter-agent --model auto` (docs/model-shipping.md): the drafter has no model of its own. It asks
/// the gateway which models the cluster can ship (`GET /v1/tandem/models`), offers those that share the
/// served target's tokenizer to the config-advisor as candidates, downloads the one the advisor chooses
/// (``ModelFetcher``: resumable, sha256-checked, cached in the local store) and loads it. Later advice that
/// names another model is fetched and loaded in the background and replaces the model at session
/// boundaries (``ReloadableDraftSource``).
actor AutoDraftModel {
    struct Settings: Sendable {
        /// The gateway's HTTP address; nil: asked from the gateway's control socket (cluster status).
        var modelServer: String?
        var apiKey: String?
        /// The local model store downloads go to.
        var cacheDirectory: URL
        /// Only these shipped models are offered to the advisor (names as the gateway lists them); nil: all
        /// that fit the target.
        var allowed: [String]?
        /// The served target, when it is not the gateway's own model.
        var target: String?
        /// How long the start may wait for the gateway, the advisor and the download together.
        var startTimeout: Duration = .seconds(600)

        init(cacheDirectory: URL) { self.cacheDirectory = cacheDirectory }
    }

    /// What the drafter starts with.
    struct Start: Sendable {
        var advice: AdvisorRecommendation
        var entry: ModelShipping.Entry
        var fetched: ModelFetcher.Result
        var target: String
    }

    let settings: Settings
    private let context: BusContext
    private let gatewayControl: String
    private let logger: Logger
    private var fetcher: ModelFetcher?
    private var listing: ModelShipping.Listing?

    init(settings: Settings, context: BusContext, gatewayControl: String, logger: Logger) {
        self.settings = settings
        self.context = context
        self.gatewayControl = gatewayControl
        self.logger = logger
    }

    // MARK: Start

    /// Discovers the model server, asks the advisor (through `advisor`) until it answers with a model the
    /// cluster ships, and fetches that model. Retries until ``Settings/startTimeout``.
    func start(advisor: AdvisorLink) async throws -> Start {
        let deadline = ContinuousClock.now + settings.startTimeout
        var lastProblem = "nothing tried yet"
        var delay = Duration.milliseconds(250)
        while ContinuousClock.now < deadline {
            do {
                let listing = try await refreshListing()
                let target = try self.target(listing)
                let advice = try await advisor.ask(target: target)
                guard let entry = ModelShipping.entry(named: advice.draftModel, in: listing.data) else {
                    throw AutoModelError("the advisor chose '\(advice.draftModel)', which the cluster does not ship")
                }
                logger.notice("config-advisor chose the draft model", metadata: [
                    "model": "\(entry.name)", "k": "\(advice.k)", "basis": "\(advice.basis)", "target": "\(target)"])
                let fetched = try await fetch(entry)
                return Start(advice: advice, entry: entry, fetched: fetched, target: target)
            } catch {
                if let failure = error as? ModelFetcher.Failure, case .digestMismatch = failure { throw failure }
                lastProblem = "\(error)"
                logger.info("--model auto: not ready yet; retrying", metadata: ["why": "\(error)"])
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
        throw AutoModelError("--model auto gave up after \(settings.startTimeout): \(lastProblem)")
    }

    /// The served target: the setting, else the gateway's own model.
    func target(_ listing: ModelShipping.Listing) throws -> String {
        if let target = settings.target { return target }
        guard let target = listing.target?.name else {
            throw AutoModelError("the gateway's model listing names no target; pass --target-model")
        }
        return target
    }

    // MARK: Candidates

    /// The shipped models offered to the advisor for `target`: those with the target's tokenizer (when
    /// both fingerprints are known); of them, those in ``Settings/allowed`` when it is given, else all but
    /// the target and its own quantised variants (a draft the target's size saves nothing on a device).
    func candidates(for target: String) async -> [String] {
        var known = self.listing
        if known == nil { known = try? await refreshListing() }
        guard let listing = known else { return [] }
        return Self.candidates(listing, target: target, allowed: settings.allowed)
    }

    static func candidates(_ listing: ModelShipping.Listing, target: String, allowed: [String]?) -> [String] {
        let targetKey = ModelShipping.key(target)
        let targetTokenizer = ModelShipping.key(listing.target?.name ?? "") == targetKey ? listing.target?.tokenizer : nil
        let allowedKeys = allowed.map { Set($0.map(ModelShipping.key)) }
        return listing.data.filter { entry in
            let key = ModelShipping.key(entry.name)
            if let allowedKeys {
                guard allowedKeys.contains(key) else { return false }
            } else {
                guard key != targetKey, entry.base.map(ModelShipping.key) != targetKey else { return false }
            }
            if let want = targetTokenizer, let have = entry.tokenizer, want != have { return false }
            return true
        }.map(\.name)
    }

    // MARK: Fetching

    /// The entry the cluster ships under `name` (from a fresh listing).
    func entry(named name: String) async throws -> ModelShipping.Entry? {
        ModelShipping.entry(named: name, in: try await refreshListing().data)
    }

    func fetch(_ entry: ModelShipping.Entry) async throws -> ModelFetcher.Result {
        try await modelFetcher().fetch(entry)
    }

    @discardableResult
    func refreshListing() async throws -> ModelShipping.Listing {
        let fresh = try await modelFetcher().listing()
        listing = fresh
        return fresh
    }

    private func modelFetcher() async throws -> ModelFetcher {
        if let fetcher { return fetcher }
        let server = try await modelServer()
        let made = ModelFetcher(baseURL: server, apiKey: settings.apiKey, directory: settings.cacheDirectory, logger: logger)
        logger.info("model server", metadata: ["url": "\(server)", "cache": "\(settings.cacheDirectory.path)"])
        fetcher = made
        return made
    }

    /// The flag's address, else the HTTP address the gateway reports in its cluster status.
    private func modelServer() async throws -> String {
        if let server = settings.modelServer { return server.hasSuffix("/") ? String(server.dropLast()) : server }
        let client = try BusEndpoint.dealer(context: context, connect: gatewayControl, logger: logger)
        defer { Task { await client.close() } }
        let reply = try await client.call(.status(StatusQuery()), timeout: .seconds(2))
        guard case .clusterStatus(let status) = reply, let reported = status.gatewayHTTP else {
            throw AutoModelError("the gateway at \(gatewayControl) does not report its HTTP address; pass --model-server")
        }
        return Self.reachable(reported, control: gatewayControl)
    }

    /// The gateway's HTTP address as this drafter can reach it: a wildcard host (`0.0.0.0`) is replaced by
    /// the host of the control endpoint, and so is a loopback host when the control endpoint is not on
    /// loopback (the gateway is on another machine).
    static func reachable(_ reported: String, control: String) -> String {
        guard var components = URLComponents(string: reported), let host = components.host else { return reported }
        let controlHost = URLComponents(string: control.replacingOccurrences(of: "tcp://", with: "http://"))?.host
        let wildcard = ["0.0.0.0", "::", "[::]", "*", ""].contains(host)
        let loopback = host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
        let controlIsLoopback = controlHost.map { $0 == "localhost" || $0.hasPrefix("127.") || $0 == "::1" } ?? true
        if let controlHost, wildcard || (loopback && !controlIsLoopback) {
            components.host = controlHost
        }
        return components.string ?? reported
    }
}

/// Swaps the drafter's model when the advice names another one (``AutoDraftModel``): fetches and loads it
/// in the background while the current model keeps drafting, then ``ReloadableDraftSource/swap(to:)``.
/// One reload at a time; advice arriving meanwhile is taken up when it ends (the newest wins).
actor DraftModelReloader {
    private let auto: AutoDraftModel
    private let source: ReloadableDraftSource
    private let load: @Sendable (URL, String) async throws -> ModelDraftSource
    private let swapped: @Sendable (ModelDraftSource) -> Void
    private let logger: Logger
    private var current: String
    private var busy = false
    private var next: AdvisorRecommendation?
    private(set) var reloads = 0
    private(set) var failures = 0

    /// `swapped` is told each new source once it drafts (the drafter registers again under its name).
    init(auto: AutoDraftModel, source: ReloadableDraftSource, current: String,
         load: @escaping @Sendable (URL, String) async throws -> ModelDraftSource,
         swapped: @escaping @Sendable (ModelDraftSource) -> Void = { _ in }, logger: Logger) {
        self.auto = auto
        self.source = source
        self.current = ModelShipping.key(current)
        self.load = load
        self.swapped = swapped
        self.logger = logger
    }

    /// Takes up `advice`: nothing when it names the current model, else a reload (see the type).
    func consider(_ advice: AdvisorRecommendation) async {
        guard ModelShipping.key(advice.draftModel) != current else { return }
        guard !busy else {
            next = advice
            return
        }
        busy = true
        var pending: AdvisorRecommendation? = advice
        while let advice = pending {
            if ModelShipping.key(advice.draftModel) != current { await reload(advice) }
            pending = next
            next = nil
        }
        busy = false
    }

    private func reload(_ advice: AdvisorRecommendation) async {
        do {
            guard let entry = try await auto.entry(named: advice.draftModel) else {
                logger.warning("advice names a model the cluster does not ship; keeping the current one",
                               metadata: ["advised": "\(advice.draftModel)"])
                failures += 1
                return
            }
            logger.notice("advice changed the draft model; fetching it", metadata: ["model": "\(entry.name)"])
            let fetched = try await auto.fetch(entry)
            let replacement = try await load(fetched.url, entry.name)
            let old = source.swap(to: replacement)
            current = ModelShipping.key(entry.name)
            reloads += 1
            swapped(replacement)
            logger.notice("draft model replaced; sessions in flight finish on the old one", metadata: [
                "old": "\(old)", "new": "\(entry.name)"])
        } catch {
            failures += 1
            logger.warning("could not reload the advised draft model; keeping the current one",
                           metadata: ["advised": "\(advice.draftModel)", "error": "\(error)"])
        }
    }
}

struct AutoModelError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
