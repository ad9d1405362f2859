import Logging

/// Measurements of the bus itself, used by `tandem bench bus`. Kept in the library so the CLI is a
/// thin wrapper and the numbers come from exactly the code services use.
public enum BusBenchmark {
    /// Round-trip latency of sequential DEALER→ROUTER requests answered by an echo handler.
    public struct LatencyReport: Sendable, CustomStringConvertible {
        public var endpoint: String
        public var requests: Int
        public var payloadBytes: Int
        public var min: Duration
        public var median: Duration
        public var p90: Duration
        public var p99: Duration
        public var max: Duration
        public var mean: Duration

        public var description: String {
            "req/rep \(endpoint) \(payloadBytes) B x\(requests): median \(format(median)) p90 \(format(p90)) "
                + "p99 \(format(p99)) min \(format(min)) max \(format(max)) mean \(format(mean))"
        }
    }

    /// Requests per second with many requests in flight on one DEALER.
    public struct PipelinedReport: Sendable, CustomStringConvertible {
        public var requests: Int
        public var inFlight: Int
        public var payloadBytes: Int
        public var seconds: Double
        public var requestsPerSecond: Double { Double(requests) / seconds }

        public var description: String {
            "req/rep pipelined \(payloadBytes) B, \(inFlight) in flight: \(Int(requestsPerSecond)) req/s"
        }
    }

    /// PUB→SUB delivery rate.
    public struct ThroughputReport: Sendable, CustomStringConvertible {
        public var path: String
        public var payloadBytes: Int
        public var published: Int
        public var received: Int
        public var seconds: Double
        public var messagesPerSecond: Double { Double(received) / seconds }
        public var megabytesPerSecond: Double { Double(received * payloadBytes) / seconds / 1_000_000 }
        public var lost: Int { published - received }

        public var description: String {
            let rate = Int(messagesPerSecond)
            let mbps = (megabytesPerSecond * 10).rounded() / 10
            return "pub/sub \(path) \(payloadBytes) B x\(published): \(rate) msg/s, \(mbps) MB/s, lost \(lost)"
        }
    }

    /// Sequential request/reply round trips (after `warmup` unmeasured ones).
    public static func requestReplyLatency(
        context: BusContext, bind: String = "tcp://127.0.0.1:*", requests: Int = 10_000, warmup: Int = 1_000,
        payloadBytes: Int = 64, logger: Logger = Logger(label: "tandem.bus.bench")
    ) async throws -> LatencyReport {
        let router = try BusEndpoint.router(context: context, bind: bind, logger: logger)
        try router.setHandler { $0.payload }
        let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!, logger: logger)
        defer { Task { await dealer.close(); await router.close() } }
        let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        for _ in 0..<warmup {
            _ = try await dealer.request(payload, timeout: .seconds(5))
        }
        var samples = [UInt64]()
        samples.reserveCapacity(requests)
        for _ in 0..<requests {
            let start = BusTime.monotonicNanos()
            let reply = try await dealer.request(payload, timeout: .seconds(5))
            samples.append(BusTime.monotonicNanos() - start)
            precondition(reply.count == payloadBytes, "echo reply has the wrong size")
        }
        samples.sort()
        func at(_ quantile: Double) -> Duration {
            .nanoseconds(Int64(samples[Swift.min(samples.count - 1, Int(Double(samples.count) * quantile))]))
        }
        let total = samples.reduce(0, +)
        return LatencyReport(
            endpoint: router.boundEndpoint ?? bind, requests: requests, payloadBytes: payloadBytes,
            min: .nanoseconds(Int64(samples.first ?? 0)), median: at(0.5), p90: at(0.9), p99: at(0.99),
            max: .nanoseconds(Int64(samples.last ?? 0)),
            mean: .nanoseconds(Int64(total / UInt64(Swift.max(1, samples.count)))))
    }

    /// Request/reply throughput with `inFlight` concurrent requests on one DEALER.
    public static func pipelinedRequests(
        context: BusContext, requests: Int = 20_000, inFlight: Int = 32, payloadBytes: Int = 64,
        logger: Logger = Logger(label: "tandem.bus.bench")
    ) async throws -> PipelinedReport {
        let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*", logger: logger)
        try router.setHandler { $0.payload }
        let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!, logger: logger)
        defer { Task { await dealer.close(); await router.close() } }
        let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        _ = try await dealer.request(payload, timeout: .seconds(5))
        let start = BusTime.monotonicNanos()
        try await withThrowingTaskGroup(of: Void.self) { group in
            let perWorker = requests / inFlight
            for _ in 0..<inFlight {
                group.addTask {
                    for _ in 0..<perWorker { _ = try await dealer.request(payload, timeout: .seconds(10)) }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(BusTime.monotonicNanos() - start) / 1e9
        return PipelinedReport(
            requests: (requests / inFlight) * inFlight, inFlight: inFlight, payloadBytes: payloadBytes, seconds: seconds)
    }

    /// Publishes `messages` events as fast as `publish` accepts them and measures how fast the
    /// subscriber receives them (first publish to last receipt). With `viaProxy` the events go
    /// PUB→XSUB/XPUB proxy→SUB, the path services use. Queues are sized so nothing should be lost;
    /// any loss is reported, never hidden.
    public static func pubSubThroughput(
        context: BusContext, messages: Int = 100_000, payloadBytes: Int = 64, viaProxy: Bool = false,
        logger: Logger = Logger(label: "tandem.bus.bench")
    ) async throws -> ThroughputReport {
        var options = BusOptions()
        options.sendHighWaterMark = Int32(clamping: messages + 16)
        options.receiveHighWaterMark = Int32(clamping: messages + 16)
        options.inboxCapacity = 65_536
        let proxy = viaProxy
            ? try BusProxy(context: context, frontendBind: "tcp://127.0.0.1:*", backendBind: "tcp://127.0.0.1:*",
                           options: options, logger: logger)
            : nil
        let publisher = try proxy.map { try BusPublisher(context: context, connect: $0.frontendEndpoint, options: options) }
            ?? BusPublisher(context: context, bind: "tcp://127.0.0.1:*", options: options, logger: logger)
        let subscriber = try BusSubscriber(
            context: context, connect: proxy?.backendEndpoint ?? publisher.endpoint, topics: ["bench"],
            options: options, logger: logger)
        defer {
            Task {
                await subscriber.close()
                await publisher.close()
                await proxy?.stop()
            }
        }
        // Slow joiner: wait until the subscription reached the publisher.
        var iterator = subscriber.messages.makeAsyncIterator()
        let probe = Task {
            while !Task.isCancelled {
                try? publisher.publish(topic: "bench.probe", payload: [])
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        _ = await iterator.next()
        probe.cancel()
        _ = await probe.value
        // Drain any further probes that are in flight.
        try await Task.sleep(for: .milliseconds(100))
        let payload = [UInt8](repeating: 0xA5, count: payloadBytes)

        let start = BusTime.monotonicNanos()
        let receiver = Task { [iterator] in
            var iterator = iterator
            var received = 0
            var last = BusTime.monotonicNanos()
            while received < messages, let message = await iterator.next() {
                if message.topic == "bench.data" {
                    received += 1
                    last = BusTime.monotonicNanos()
                }
            }
            return (received, last)
        }
        for _ in 0..<messages {
            try publisher.publish(topic: "bench.data", payload: payload)
        }
        // If anything was lost the receiver would wait forever: give up after 2 s without progress.
        let watchdog = Task {
            var lastCount = -1
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                let count = subscriber.counters.received
                if count == lastCount { receiver.cancel(); return }
                lastCount = count
            }
        }
        let (received, last) = await receiver.value
        watchdog.cancel()
        let seconds = Double(last - start) / 1e9
        return ThroughputReport(
            path: viaProxy ? "via proxy" : "direct", payloadBytes: payloadBytes, published: messages,
            received: received, seconds: seconds)
    }
}

/// `1.234 ms` / `56.7 µs` style.
func format(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    let micros = Double(seconds) * 1e6 + Double(attoseconds) / 1e12
    if micros >= 1000 { return "\((micros / 10).rounded() / 100) ms" }
    return "\((micros * 10).rounded() / 10) µs"
}
