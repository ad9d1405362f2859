import Foundation
import Logging
import Testing
import TandemBus
import TandemService
import TandemSpeculative
import TandemWire
@testable import Estimator
import TandemTestSupport

enum EstimatorTestSupport {
    /// The law the synthetic verifier follows, in seconds: 8 ms + 3 ms/sequence + 2 ms/new token + 4 µs/context token.
    static let law: [Double] = [0.008, 0.003, 0.002, 0.000_004]

    static func seconds(_ shape: BatchShape, law: [Double] = law) -> Double {
        law[0] + law[1] * Double(shape.sequences) + law[2] * Double(shape.newTokens) + law[3] * Double(shape.contextTokens)
    }

    /// Random verification batches (1-8 sequences, K+1 in 1...9 tokens, contexts up to 2000) timed by `law`
    /// with ±`noise` multiplicative uniform noise.
    static func events(count: Int, model: String = "target", law: [Double] = law, noise: Double = 0.01,
                       seed: UInt64 = 42) -> [BatchEvent] {
        var rng = TestRNG(seed: seed)
        return (0..<count).map { i in
            let n = Int.random(in: 1...8, using: &rng)
            let tokens = (0..<n).map { _ in Int.random(in: 1...9, using: &rng) }
            let contexts = (0..<n).map { _ in Int.random(in: 0...2000, using: &rng) }
            let shape = BatchShape(sequences: n, newTokens: tokens.reduce(0, +), contextTokens: contexts.reduce(0, +))
            let wall = seconds(shape, law: law) * (1 + Double.random(in: -noise...noise, using: &rng))
            return BatchEvent(verifierID: "verifier-\(i % 3)", model: model, sequences: n, tokensPerSequence: tokens,
                              contextLengths: contexts, wallMs: wall * 1000, at: Double(i))
        }
    }
}

@Suite("Estimator")
struct EstimatorTests {
    @Test("recovers a known linear batch-time law and reports a small prequential error")
    func recoversLinearLaw() async throws {
        let estimator = BatchTimeEstimator()
        for event in EstimatorTestSupport.events(count: 400) {
            #expect(await estimator.observe(event))
        }
        let summary = try #require(await estimator.summaries()["target"])
        #expect(summary.samples == 400)
        #expect(summary.verifiers == ["verifier-0", "verifier-1", "verifier-2"])
        for (fitted, truth) in zip(summary.coefficients, EstimatorTestSupport.law) {
            #expect(abs(fitted - truth) <= 0.1 * truth, "coefficient \(fitted) vs \(truth)")
        }
        // Unseen shapes: predictions within 2% of the law.
        let probes = [EstimatorProbe(1, 5, 100), EstimatorProbe(4, 20, 3000), EstimatorProbe(8, 72, 16000)]
        let reply = try await estimator.estimate(EstimateQuery(model: "target", batches: probes.map(\.features)))
        #expect(reply.samples == 400)
        for (probe, predicted) in zip(probes, reply.predictedMs) {
            let truth = EstimatorTestSupport.seconds(probe.shape) * 1000
            #expect(abs(predicted - truth) / truth < 0.02, "\(probe.shape): \(predicted) ms vs \(truth) ms")
        }
        // ±1% uniform noise has a mean relative error of 0.5%; the prequential error must be close to it.
        #expect(reply.meanRelativeError > 0.002 && reply.meanRelativeError < 0.02, "\(reply.meanRelativeError)")
        #expect(reply.rmseMs > 0 && reply.rmseMs < 1.0, "\(reply.rmseMs)")
    }

    @Test("the reported error is out-of-sample: it reflects the noise of the data")
    func errorTracksNoise() async throws {
        let quiet = BatchTimeEstimator()
        let noisy = BatchTimeEstimator()
        for event in EstimatorTestSupport.events(count: 300, noise: 0.001) { await quiet.observe(event) }
        for event in EstimatorTestSupport.events(count: 300, noise: 0.2) { await noisy.observe(event) }
        let probe = EstimateQuery(model: "target", batches: [BatchFeatures(sequences: 1, newTokens: 5, contextTokens: 10)])
        let q = try await quiet.estimate(probe)
        let n = try await noisy.estimate(probe)
        #expect(q.meanRelativeError < 0.003, "\(q.meanRelativeError)")
        // Uniform ±20% noise: mean |noise| = 10%.
        #expect(n.meanRelativeError > 0.07 && n.meanRelativeError < 0.15, "\(n.meanRelativeError)")
    }

    @Test("an unknown model is answered with the prior and samples = 0")
    func unknownModelAnswersPrior() async throws {
        let estimator = BatchTimeEstimator()
        for event in EstimatorTestSupport.events(count: 50) { await estimator.observe(event) }
        let batch = BatchFeatures(sequences: 2, newTokens: 10, contextTokens: 400)
        let reply = try await estimator.estimate(EstimateQuery(model: "never-seen", batches: [batch, .init(sequences: 0, newTokens: 0, contextTokens: 0)]))
        let prior = LinearBatchTimeModel().predictSeconds(BatchShape(sequences: 2, newTokens: 10, contextTokens: 400)) * 1000
        #expect(reply.samples == 0)
        #expect(reply.rmseMs == 0 && reply.meanRelativeError == 0)
        #expect(abs(reply.predictedMs[0] - prior) < 1e-9)
        #expect(reply.predictedMs[1] == 0)
    }

    @Test("models are kept apart, and a name, a file name and a path of one model share one fit")
    func modelsKeyedByTargetModel() async throws {
        let estimator = BatchTimeEstimator()
        let fastLaw = [0.001, 0.0005, 0.0003, 0.000_001]
        for event in EstimatorTestSupport.events(count: 100, model: "/models/Big-Target.gguf") { await estimator.observe(event) }
        for event in EstimatorTestSupport.events(count: 100, model: "big-target", seed: 7) { await estimator.observe(event) }
        for event in EstimatorTestSupport.events(count: 200, model: "small", law: fastLaw) { await estimator.observe(event) }
        let summaries = await estimator.summaries()
        #expect(Set(summaries.keys) == ["big-target", "small"])
        #expect(summaries["big-target"]?.samples == 200)
        let batch = BatchFeatures(sequences: 4, newTokens: 20, contextTokens: 2000)
        let big = try await estimator.estimate(EstimateQuery(model: "Big-Target.gguf", batches: [batch]))
        let small = try await estimator.estimate(EstimateQuery(model: "small", batches: [batch]))
        let shape = BatchShape(sequences: 4, newTokens: 20, contextTokens: 2000)
        #expect(abs(big.predictedMs[0] - EstimatorTestSupport.seconds(shape) * 1000) < 1)
        #expect(abs(small.predictedMs[0] - EstimatorTestSupport.seconds(shape, law: fastLaw) * 1000) < 0.2)
    }

    @Test("catalog models share one key whether named by catalog name, file name or path")
    func catalogKeys() {
        #expect(BatchTimeEstimator.modelKey("/root/.cache/tandem/models/Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf")
                == "qwen2.5-coder-1.5b-instruct")
        #expect(BatchTimeEstimator.modelKey("qwen2.5-coder-1.5b-instruct") == "qwen2.5-coder-1.5b-instruct")
        #expect(BatchTimeEstimator.modelKey("SmolLM2-135M-Instruct.Q4_1.gguf") == "smollm2-135m-instruct")
        #expect(BatchTimeEstimator.modelKey("Custom.GGUF") == "custom")
    }

    @Test("inconsistent events are rejected and negative query features are an invalid argument")
    func rejectsBadInput() async throws {
        let estimator = BatchTimeEstimator()
        let mismatched = BatchEvent(verifierID: "v", model: "m", sequences: 2, tokensPerSequence: [3],
                                    contextLengths: [1, 2], wallMs: 10, at: 0)
        let negative = BatchEvent(verifierID: "v", model: "m", sequences: 1, tokensPerSequence: [3],
                                  contextLengths: [1], wallMs: -1, at: 0)
        let empty = BatchEvent(verifierID: "v", model: "m", sequences: 0, tokensPerSequence: [],
                               contextLengths: [], wallMs: 1, at: 0)
        #expect(!(await estimator.observe(mismatched)))
        #expect(!(await estimator.observe(negative)))
        #expect(!(await estimator.observe(empty)))
        #expect(await estimator.rejectedEvents == 3)
        #expect(await estimator.summaries().isEmpty)
        await #expect(throws: ErrorReply.self) {
            try await estimator.estimate(EstimateQuery(model: "m", batches: [.init(sequences: 1, newTokens: -1, contextTokens: 0)]))
        }
    }

    @Test("in-process over the bus: batch events in through SUB, estimate and health over a DEALER, garbage rejected")
    func overTheBus() async throws {
        let context = try BusContext()
        let logger = Logger(label: "test.estimator")
        let publisher = try BusPublisher(context: context, bind: BusAddress.ephemeralTCP(), logger: logger)
        let estimator = BatchTimeEstimator()
        let server = try EstimatorServer(context: context, bind: BusAddress.ephemeralTCP(),
                                         eventsSub: BusAddress.connectable(publisher.endpoint),
                                         estimator: estimator, replicaID: "estimator-test", logger: logger)
        try server.start()
        let client = try BusEndpoint.dealer(context: context, connect: server.boundEndpoint, logger: logger)

        // PUB/SUB drops events until the subscription has propagated: publish until some arrive.
        let events = EstimatorTestSupport.events(count: 200)
        var sent = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while await estimator.acceptedEvents < 100, ContinuousClock.now < deadline {
            try publisher.publish(topic: EventTopic.batch.rawValue, payload: WireCodec.encode(.batch(events[sent % events.count])))
            sent += 1
            if sent % 20 == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(await estimator.acceptedEvents >= 100)

        let reply = try await client.call(
            .estimate(EstimateQuery(model: "target", batches: [BatchFeatures(sequences: 2, newTokens: 10, contextTokens: 1000)])),
            timeout: .seconds(5))
        guard case .estimateReply(let estimate) = reply else {
            Issue.record("expected estimate_reply, got \(reply.kind)")
            return
        }
        #expect(estimate.samples >= 100)
        let truth = EstimatorTestSupport.seconds(BatchShape(sequences: 2, newTokens: 10, contextTokens: 1000)) * 1000
        #expect(abs(estimate.predictedMs[0] - truth) / truth < 0.05)

        let health = try await client.call(.health(HealthQuery()), timeout: .seconds(5))
        guard case .healthReply(let h) = health else {
            Issue.record("expected health_reply, got \(health.kind)")
            return
        }
        #expect(h.role == .estimator)
        #expect(h.details["model.target.samples"] != nil)

        // Not a Tandem envelope: answered with an error, the server keeps serving.
        let garbage = try await client.request(Array("hello".utf8), timeout: .seconds(5))
        let decoded = try WireCodec.decode(garbage)
        guard case .error(let e) = decoded.message else {
            Issue.record("expected an error reply, got \(decoded.kind)")
            return
        }
        #expect(e.code == .badMessage)
        // A request this service does not handle.
        await #expect(throws: RPCError.self) {
            _ = try await client.call(.status(StatusQuery()), timeout: .seconds(5))
        }

        await client.close()
        await server.stop()
        await publisher.close()
        await context.shutdown()
    }
}

/// A batch used to probe predictions.
struct EstimatorProbe {
    var shape: BatchShape
    init(_ sequences: Int, _ newTokens: Int, _ contextTokens: Int) {
        shape = BatchShape(sequences: sequences, newTokens: newTokens, contextTokens: contextTokens)
    }
    var features: BatchFeatures {
        BatchFeatures(sequences: shape.sequences, newTokens: shape.newTokens, contextTokens: shape.contextTokens)
    }
}
