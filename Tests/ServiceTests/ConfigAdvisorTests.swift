import Foundation
import Logging
import Testing
import TandemBus
import TandemService
import TandemSpeculative
import TandemWire
@testable import ConfigAdvisor

enum ConfigAdvisorTestSupport {
    /// An acceptance row as the metrics-store would report it for `rounds` rounds at draft length `k`
    /// with conditional per-position acceptance `conditional` (last value repeated): per-position values are
    /// unconditional `P(position j accepted)` and mean acceptance length = 1 + their sum.
    static func row(draft: String, target: String, k: Int, rounds: Int, conditional: [Double]) -> AcceptanceRow {
        var survive = 1.0
        let perPosition = (0..<k).map { j -> Double in
            survive *= j < conditional.count ? conditional[j] : conditional.last!
            return survive
        }
        let acceptedPerRound = perPosition.reduce(0, +)
        let accepted = Int((acceptedPerRound * Double(rounds)).rounded())
        return AcceptanceRow(draftModel: draft, targetModel: target, k: k, rounds: rounds, drafted: k * rounds,
                             accepted: accepted, acceptanceRate: Double(accepted) / Double(k * rounds),
                             meanAcceptanceLength: 1 + acceptedPerRound, perPosition: perPosition)
    }

    static func profile(device: String, draft: String, quantization: String = "Q4_0", tokensPerSecond: Double,
                        watts: Double) -> ProfileRow {
        ProfileRow(device: device, draftModel: draft, quantization: quantization, samples: 10,
                   draftTokensPerSecond: tokensPerSecond, powerWatts: watts)
    }

    static func latency(target: String, meanMs: Double, count: Int = 100) -> LatencyRow {
        LatencyRow(key: target, count: count, meanMs: meanMs, p50Ms: meanMs, p90Ms: meanMs, p99Ms: meanMs)
    }

    /// Priors with one unknown-to-the-catalog target whose verification line is given.
    static func policy(verify: VerifyTimeModel, target: String = "target", range: ClosedRange<Int> = 1...16) -> ConfigAdvisorPolicy {
        var policy = ConfigAdvisorPolicy()
        policy.priors.verify[target] = verify
        policy.kRange = range
        return policy
    }

    static func query(_ objective: Objective, target: String = "target", candidates: [String],
                      device: DeviceProfile = DeviceProfile(name: "dev", powerWatts: 5)) -> AdvisorQuery {
        AdvisorQuery(device: device, objective: objective, targetModel: target, candidates: candidates)
    }
}

@Suite("ConfigAdvisor")
struct ConfigAdvisorTests {
    typealias S = ConfigAdvisorTestSupport

    @Test("goodput: the chosen K is the brute-force optimum of the §4 formula over measured α, profile and latency")
    func goodputMatchesBruteForce() throws {
        let prior = VerifyTimeModel(fixedSeconds: 0.030, perTokenSeconds: 0.004)
        // Measured: α = 0.85 at K = 6, drafting at 250 tok/s on this device, mean batch 70 ms.
        for (alpha, tps, meanMs) in [(0.85, 250.0, 70.0), (0.6, 100.0, 40.0), (0.95, 1000.0, 200.0)] {
            let measurements = AdvisorMeasurements(
                acceptance: [S.row(draft: "d", target: "target", k: 6, rounds: 500, conditional: [alpha])],
                profiles: [S.profile(device: "dev", draft: "d", tokensPerSecond: tps, watts: 4)],
                batchLatency: [S.latency(target: "target", meanMs: meanMs)])
            let policy = S.policy(verify: prior)
            let decision = try policy.recommend(S.query(.goodput, candidates: ["d"]), measurements: measurements)
            let r = decision.recommendation

            // Independent brute force: the verification line is the prior rescaled to meanMs at K = 6.
            let scale = meanMs / 1000 / prior.seconds(draftLength: 6)
            var bestK = 0
            var bestScore = -1.0
            for k in 1...16 {
                let tokens = (1 - pow(alpha, Double(k + 1))) / (1 - alpha)
                let score = tokens / (Double(k) / tps + scale * prior.seconds(draftLength: k))
                if score > bestScore + 1e-12 { bestScore = score; bestK = k }
            }
            #expect(r.k == bestK, "alpha \(alpha): \(r.k) vs brute force \(bestK)")
            #expect(abs(r.objectiveValue - bestScore) / bestScore < 1e-6)
            #expect(r.basis == "measured")
            #expect(r.draftModel == "d" && r.quantization == "Q4_0")
            #expect(abs(decision.evaluations[0].acceptance.alpha - alpha) < 1e-3)
        }
    }

    @Test("per-position acceptance is recovered from the store's unconditional per-position rates and used")
    func perPositionAcceptance() throws {
        let conditional = [0.9, 0.8, 0.7, 0.6]
        let rows = [S.row(draft: "d", target: "t", k: 4, rounds: 400, conditional: conditional),
                    S.row(draft: "d", target: "t", k: 2, rounds: 100, conditional: conditional)]
        let estimate = try #require(AcceptanceEstimate.measured(rows, minRounds: 20, minPositionRounds: 20))
        #expect(estimate.rounds == 500)
        #expect(estimate.conditional.count == 4)
        for (got, want) in zip(estimate.conditional, conditional) { #expect(abs(got - want) < 1e-9) }
        // K = 3: 1 + .9 + .9·.8 + .9·.8·.7
        #expect(abs(estimate.expectedTokens(draftLength: 3) - (1 + 0.9 + 0.72 + 0.504)) < 1e-9)
        // Past the measured positions the pooled α continues the curve.
        let five = estimate.expectedTokens(draftLength: 5)
        #expect(abs(five - (1 + 0.9 + 0.72 + 0.504 + 0.3024 + 0.3024 * estimate.alpha)) < 1e-9)
        // Too few rounds: no measured estimate.
        #expect(AcceptanceEstimate.measured([S.row(draft: "d", target: "t", k: 4, rounds: 5, conditional: [0.5])],
                                            minRounds: 20, minPositionRounds: 20) == nil)
    }

    @Test("ConfigSpec-like CPU verifier: cost and energy pick K = 2 on ConfigSpec's grid, goodput a longer K for a fast drafter")
    func configSpecScenario() throws {
        // Verification roughly proportional to positions (CPU verifier): 24 ms + 20 ms per position.
        let verify = VerifyTimeModel(fixedSeconds: 0.024, perTokenSeconds: 0.020)
        let measurements = AdvisorMeasurements(
            acceptance: [S.row(draft: "d", target: "target", k: 8, rounds: 1000, conditional: [0.8])],
            profiles: [S.profile(device: "dev", draft: "d", tokensPerSecond: 2000, watts: 6)])
        let full = S.policy(verify: verify)
        let grid = S.policy(verify: verify, range: 2...10)
        let cost = try full.recommend(S.query(.cost, candidates: ["d"]), measurements: measurements).recommendation
        #expect(cost.k == 2)
        // Drafting-only energy (docs/design.md §6.4, §11) falls with K: the smallest K of the range wins.
        let energyFull = try full.recommend(S.query(.energy, candidates: ["d"]), measurements: measurements).recommendation
        let energyGrid = try grid.recommend(S.query(.energy, candidates: ["d"]), measurements: measurements).recommendation
        #expect(energyFull.k == 1)
        #expect(energyGrid.k == 2)
        #expect(try grid.recommend(S.query(.cost, candidates: ["d"]), measurements: measurements).recommendation.k == 2)
        // A fast drafter and a verifier with a large fixed cost: goodput wants longer drafts.
        let gpuLike = S.policy(verify: VerifyTimeModel(fixedSeconds: 0.060, perTokenSeconds: 0.002))
        let goodput = try gpuLike.recommend(S.query(.goodput, candidates: ["d"]), measurements: measurements).recommendation
        #expect(goodput.k >= 5, "\(goodput.k)")
    }

    @Test("equal acceptance: goodput picks the fastest draft, energy the lowest-power one, cost the best acceptance")
    func draftChoicePerObjective() throws {
        let rows = ["fast", "frugal"].map { S.row(draft: $0, target: "target", k: 4, rounds: 300, conditional: [0.7]) }
        let measurements = AdvisorMeasurements(
            acceptance: rows,
            profiles: [S.profile(device: "dev", draft: "fast", tokensPerSecond: 200, watts: 8),    // 0.040 J/token
                       S.profile(device: "dev", draft: "frugal", tokensPerSecond: 150, watts: 2)]) // 0.013 J/token
        let policy = S.policy(verify: VerifyTimeModel(fixedSeconds: 0.02, perTokenSeconds: 0.005))
        let goodput = try policy.recommend(S.query(.goodput, candidates: ["frugal", "fast"]), measurements: measurements)
        let energy = try policy.recommend(S.query(.energy, candidates: ["fast", "frugal"]), measurements: measurements)
        #expect(goodput.recommendation.draftModel == "fast")
        #expect(energy.recommendation.draftModel == "frugal")
        #expect(goodput.evaluations.count == 2)

        // A larger drafter with higher acceptance wins on cost (tokens per verifier-second).
        let mixed = AdvisorMeasurements(
            acceptance: [S.row(draft: "large", target: "target", k: 4, rounds: 300, conditional: [0.9]),
                         S.row(draft: "small", target: "target", k: 4, rounds: 300, conditional: [0.6])],
            profiles: [S.profile(device: "dev", draft: "large", tokensPerSecond: 40, watts: 9),
                       S.profile(device: "dev", draft: "small", tokensPerSecond: 300, watts: 3)])
        let cost = try policy.recommend(S.query(.cost, candidates: ["small", "large"]), measurements: mixed)
        let frugal = try policy.recommend(S.query(.energy, candidates: ["small", "large"]), measurements: mixed)
        #expect(cost.recommendation.draftModel == "large")
        #expect(frugal.recommendation.draftModel == "small")
    }

    @Test("no data: priors with basis 'prior', compatible drafts only, throttle slows drafting")
    func priorFallback() throws {
        let policy = ConfigAdvisorPolicy()
        let qwen = AdvisorQuery(device: DeviceProfile(name: "pi", powerWatts: 6), objective: .goodput,
                                targetModel: "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf")
        let r = try policy.recommend(qwen, measurements: .none)
        #expect(r.recommendation.basis == "prior")
        #expect(r.recommendation.draftModel == "qwen2.5-coder-0.5b-instruct")   // SmolLM2's tokenizer differs
        #expect(r.evaluations.count == 1)
        #expect(policy.kRange.contains(r.recommendation.k))
        #expect(r.recommendation.expectedTokensPerRound > 1)

        let smol = try policy.recommend(
            AdvisorQuery(device: DeviceProfile(name: "pi", powerWatts: 6), objective: .energy,
                         targetModel: "smollm2-135m-instruct"), measurements: .none)
        #expect(smol.recommendation.draftModel == "smollm2-135m-instruct")
        #expect(smol.recommendation.quantization == "Q4_1")

        // A throttled device drafts slower: goodput drops.
        var slowDevice = qwen
        slowDevice.device.computeThrottle = 0.25
        let slow = try policy.recommend(slowDevice, measurements: .none)
        #expect(slow.recommendation.objectiveValue < r.recommendation.objectiveValue)

        // Only incompatible candidates: an explicit error.
        var incompatible = qwen
        incompatible.targetModel = "smollm2-135m-instruct"
        incompatible.candidates = ["qwen2.5-coder-0.5b-instruct"]
        #expect(throws: ErrorReply.self) { try policy.recommend(incompatible, measurements: .none) }
    }

    @Test("profiles from other devices are scaled by the query's computeThrottle")
    func scaledProfiles() throws {
        let policy = S.policy(verify: VerifyTimeModel(fixedSeconds: 0.02, perTokenSeconds: 0.005))
        let measurements = AdvisorMeasurements(profiles: [S.profile(device: "laptop", draft: "d", tokensPerSecond: 100, watts: 10)])
        let device = DeviceProfile(name: "pi", powerWatts: 4, computeThrottle: 0.5)
        let decision = try policy.recommend(S.query(.goodput, candidates: ["d"], device: device), measurements: measurements)
        let e = try #require(decision.evaluations.first)
        #expect(abs(e.draftSecondsPerToken - 1.0 / 50) < 1e-12)
        #expect(e.speedSource == .scaled)
        #expect(e.acceptanceSource == .prior)
        #expect(e.powerWatts == 4)   // not the laptop's power: the device's declared power
        #expect(decision.recommendation.basis == "measured")
    }

    @Test("the estimator's fitted verification line is derived from two predictions and replaces the prior")
    func estimatorVerifyLine() async throws {
        // The estimator predicts 10 ms + 5 ms per position.
        let lines = VerifyLineCache(minSamples: 20) { query in
            EstimateReply(predictedMs: query.batches.map { 10 + 5 * Double($0.newTokens) }, samples: 100,
                          rmseMs: 1, meanRelativeError: 0.01)
        }
        let line = try #require(await lines.line(for: "target"))
        #expect(abs(line.fixedSeconds - 0.010) < 1e-12 && abs(line.perTokenSeconds - 0.005) < 1e-12)
        let sparse = VerifyLineCache(minSamples: 20) { query in
            EstimateReply(predictedMs: query.batches.map { 10 + 5 * Double($0.newTokens) }, samples: 3,
                          rmseMs: 0, meanRelativeError: 0)
        }
        #expect(await sparse.line(for: "target") == nil)
        let down = VerifyLineCache { _ in nil }
        #expect(await down.line(for: "target") == nil)

        let policy = S.policy(verify: VerifyTimeModel(fixedSeconds: 0.5, perTokenSeconds: 0.5))
        let measurements = AdvisorMeasurements(batchLatency: [S.latency(target: "target", meanMs: 900)],
                                               verifyLines: ["target": line])
        let decision = try policy.recommend(S.query(.goodput, candidates: ["d"]), measurements: measurements)
        let e = try #require(decision.evaluations.first)
        #expect(e.verify == line)
        #expect(e.verifySource == .measured)
        #expect(decision.recommendation.basis == "measured")
    }

    @Test("the cache reuses answers within its TTL and keeps the last good answer when the store fails")
    func cache() async throws {
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var calls = 0
            var failing = false
            func next() -> (Int, Bool) { lock.lock(); defer { lock.unlock() }; calls += 1; return (calls, failing) }
            func setFailing() { lock.lock(); failing = true; lock.unlock() }
            var count: Int { lock.lock(); defer { lock.unlock() }; return calls }
        }
        let counter = Counter()
        let row = S.latency(target: "t", meanMs: 10)
        let cache = MeasurementCache(ttl: .milliseconds(200), staleLimit: .seconds(60)) {
            let (_, failing) = counter.next()
            return failing ? .init() : .init(acceptance: [], profiles: [], batchLatency: [row])
        }
        async let a = cache.measurements()
        async let b = cache.measurements()
        let (first, second) = await (a, b)
        #expect(first.batchLatency == [row] && second.batchLatency == [row])
        #expect(counter.count == 1)
        counter.setFailing()
        try await Task.sleep(for: .milliseconds(250))
        let third = await cache.measurements()
        #expect(counter.count == 2)
        #expect(third.batchLatency == [row])   // failed fetch: previous answer kept
        #expect(await cache.failedFetches == 1)
    }

    @Test("in-process over the bus: advice from priors when the store is down, errors for bad requests")
    func overTheBus() async throws {
        let context = try BusContext()
        let logger = Logger(label: "test.advisor")
        let cache = MeasurementCache(ttl: .seconds(5)) { MeasurementCache.Fetched() }   // store down
        let server = try ConfigAdvisorServer(context: context, bind: BusAddress.ephemeralTCP(), policy: ConfigAdvisorPolicy(),
                                             cache: cache, replicaID: "advisor-test", logger: logger)
        try server.start()
        let client = try BusEndpoint.dealer(context: context, connect: server.boundEndpoint, logger: logger)
        let query = AdvisorQuery(device: DeviceProfile(name: "pi", powerWatts: 6), objective: .cost,
                                 targetModel: "qwen2.5-coder-1.5b-instruct")
        let reply = try await client.call(.advise(query), timeout: .seconds(5))
        guard case .advice(let advice) = reply else {
            Issue.record("expected advice, got \(reply.kind)")
            return
        }
        #expect(advice.basis == "prior")
        #expect(advice.draftModel == "qwen2.5-coder-0.5b-instruct")

        var bad = query
        bad.device.computeThrottle = 0
        await #expect(throws: RPCError.self) { _ = try await client.call(.advise(bad), timeout: .seconds(5)) }
        let garbage = try WireCodec.decode(try await client.request([0, 1, 2, 3], timeout: .seconds(5)))
        guard case .error(let e) = garbage.message else {
            Issue.record("expected an error reply, got \(garbage.kind)")
            return
        }
        #expect(e.code == .badMessage)
        let health = try await client.call(.health(HealthQuery()), timeout: .seconds(5))
        guard case .healthReply(let h) = health else {
            Issue.record("expected health_reply, got \(health.kind)")
            return
        }
        #expect(h.role == .configAdvisor)
        #expect(h.details["answered"] == "1")

        await client.close()
        await server.stop()
        await context.shutdown()
    }
}
