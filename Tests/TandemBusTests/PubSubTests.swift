import Synchronization
import Testing
@testable import TandemBus

@Suite("PUB/SUB and the XSUB/XPUB proxy", .timeLimit(.minutes(1)))
struct PubSubTests {
    /// Publishes probes on every topic until each subscriber has seen one (slow-joiner: a
    /// subscription needs time to reach the publisher through the proxy).
    private func waitUntilLive(
        _ publisher: BusPublisher, topics: [String], subscribers: [BusSubscriber]
    ) async throws {
        let live = Locked<Set<Int>>([])
        let collectors = subscribers.enumerated().map { index, subscriber in
            Task {
                for await message in subscriber.messages where message.payload == bytes("probe") {
                    live.withLock { _ = $0.insert(index) }
                    return
                }
            }
        }
        while live.withLock({ $0.count }) < subscribers.count {
            for topic in topics { try publisher.publish(topic: topic, payload: bytes("probe")) }
            try await Task.sleep(for: .milliseconds(20))
        }
        for collector in collectors { await collector.value }
    }

    /// Collects payloads (skipping probes) until the "end" marker.
    private func collect(_ subscriber: BusSubscriber) async -> [BusMessage] {
        var received: [BusMessage] = []
        for await message in subscriber.messages {
            if message.payload == bytes("probe") { continue }
            if message.payload == bytes("end") { break }
            received.append(message)
        }
        return received
    }

    @Test func subscribersOnlyGetTheirTopicsThroughTheProxy() async throws {
        try await withTimeout {
            let context = try BusContext()
            let proxy = try BusProxy(context: context, frontendBind: "tcp://127.0.0.1:*", backendBind: "tcp://127.0.0.1:*")
            let publisher = try BusPublisher(context: context, connect: proxy.frontendEndpoint)
            let batches = try BusSubscriber(context: context, connect: proxy.backendEndpoint, topics: ["batch"])
            let sessions = try BusSubscriber(
                context: context, connect: proxy.backendEndpoint, topics: ["session.open", "session.close"])
            try await waitUntilLive(
                publisher, topics: ["batch", "session.open"], subscribers: [batches, sessions])

            async let gotBatches = collect(batches)
            async let gotSessions = collect(sessions)
            for index in 0..<20 {
                try publisher.publish(topic: "batch", payload: bytes("b\(index)"))
                try publisher.publish(topic: "session.open", payload: bytes("o\(index)"))
                try publisher.publish(topic: "session.close", payload: bytes("c\(index)"))
                try publisher.publish(topic: "heartbeat", payload: bytes("h\(index)"))
            }
            for topic in ["batch", "session.open"] { try publisher.publish(topic: topic, payload: bytes("end")) }

            let batchMessages = await gotBatches
            let sessionMessages = await gotSessions
            #expect(batchMessages.map(\.topic) == Array(repeating: "batch", count: 20))
            #expect(batchMessages.map { text($0.payload) } == (0..<20).map { "b\($0)" })
            #expect(sessionMessages.count == 40)
            #expect(sessionMessages.allSatisfy { $0.topic.hasPrefix("session.") })
            #expect(sessionMessages.filter { $0.topic == "session.close" }.map { text($0.payload) }
                == (0..<20).map { "c\($0)" })
            // Only subscribed topics reach the proxy (publishers filter), so "heartbeat" never does.
            #expect(proxy.counters.sent >= 60)
            await proxy.stop()
            await proxy.stop()  // idempotent
            await context.shutdown()
        }
    }

    @Test func directPublisherSubscribeAndUnsubscribe() async throws {
        try await withTimeout {
            let context = try BusContext()
            let publisher = try BusPublisher(context: context, bind: "tcp://127.0.0.1:*")
            #expect(!publisher.endpoint.hasSuffix(":*"))
            let subscriber = try BusSubscriber(context: context, connect: publisher.endpoint, topics: ["a"])
            try await waitUntilLive(publisher, topics: ["a"], subscribers: [subscriber])
            var iterator = subscriber.messages.makeAsyncIterator()
            /// Reads until `marker` arrives; returns the payloads seen on the way.
            func read(until marker: String) async -> [String] {
                var seen: [String] = []
                while let message = await iterator.next() {
                    let payload = text(message.payload)
                    if payload == marker { return seen }
                    seen.append(payload)
                }
                return seen
            }
            // Adding "b": live once a "b" message shows up before the next "a" marker.
            try subscriber.subscribe("b")
            var round = 0
            while true {
                round += 1
                try publisher.publish(topic: "b", payload: bytes("b\(round)"))
                try publisher.publish(topic: "a", payload: bytes("a\(round)"))
                if await read(until: "a\(round)").contains("b\(round)") { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            // Removing "a": done once an "a" message no longer precedes the "b" marker.
            try subscriber.unsubscribe("a")
            while true {
                round += 1
                try publisher.publish(topic: "a", payload: bytes("a\(round)"))
                try publisher.publish(topic: "b", payload: bytes("b\(round)"))
                if !(await read(until: "b\(round)").contains("a\(round)")) { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            // Closing ends the stream.
            await subscriber.close()
            while await iterator.next() != nil {}
            await context.shutdown()
        }
    }
}
