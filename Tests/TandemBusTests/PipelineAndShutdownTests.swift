import Foundation
import Synchronization
import Testing
@testable import TandemBus

@Suite("Bulk delivery and shutdown", .timeLimit(.minutes(1)))
struct PipelineAndShutdownTests {
    @Test func tenThousandPushPullMessagesArriveInOrderWithoutLoss() async throws {
        try await withTimeout(.seconds(30)) {
            let context = try BusContext()
            var options = BusOptions()
            // Small queues so backpressure (not buffering) is what carries 10,000 messages through.
            options.sendHighWaterMark = 100
            options.receiveHighWaterMark = 100
            options.inboxCapacity = 64
            let puller = try BusPuller(context: context, bind: "tcp://127.0.0.1:*", options: options)
            let pusher = try BusPusher(context: context, connect: puller.endpoint, options: options)
            let count = 10_000
            async let received: [UInt32] = {
                var values: [UInt32] = []
                for await payload in puller.messages {
                    values.append(payload.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
                    if values.count == count { break }
                }
                return values
            }()
            for index in 0..<UInt32(count) {
                try await pusher.send(withUnsafeBytes(of: index) { Array($0) } + [UInt8](repeating: 7, count: 60))
            }
            let values = await received
            #expect(values == (0..<UInt32(count)).map { $0 })
            #expect(pusher.counters.sent == count)
            #expect(puller.counters.received == count)
            #expect(puller.counters.dropped == 0)
            await context.shutdown()
        }
    }

    @Test func tenThousandOneWayDealerMessagesArriveInOrder() async throws {
        try await withTimeout(.seconds(30)) {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            let count = 10_000
            let seen = Mutex<[UInt32]>([])
            try router.setHandler(concurrency: .serial) { incoming in
                #expect(incoming.peer == "tokens")
                seen.withLock { $0.append(incoming.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) }
                return nil
            }
            let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!, identity: "tokens")
            for index in 0..<UInt32(count) {
                try await dealer.send(withUnsafeBytes(of: index) { Array($0) })
            }
            #expect(await eventually(.seconds(20)) { seen.withLock { $0.count } == count })
            #expect(seen.withLock { $0 } == (0..<UInt32(count)).map { $0 })
            #expect(router.counters.dropped == 0 && router.counters.decodeErrors == 0)
            await context.shutdown()
        }
    }

    @Test func shutdownWithMessagesInFlightIsBoundedAndFailsPendingRequests() async throws {
        try await withTimeout(.seconds(10)) {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            // A handler that never answers in time, ignoring cancellation.
            try router.setHandler { _ in
                try? await Task.sleep(for: .seconds(3600))
                return nil
            }
            let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!)
            // A dealer whose router does not exist: its messages can never leave.
            let orphan = try BusEndpoint.dealer(context: context, connect: "tcp://127.0.0.1:1")
            let pusher = try BusPusher(context: context, connect: "tcp://127.0.0.1:1")
            let publisher = try BusPublisher(context: context, bind: "tcp://127.0.0.1:*")
            let subscriber = try BusSubscriber(context: context, connect: publisher.endpoint, topics: [""])
            let proxy = try BusProxy(context: context, frontendBind: "tcp://127.0.0.1:*", backendBind: "tcp://127.0.0.1:*")

            let results = Mutex<[String]>([])
            let requests = Task {
                await withTaskGroup(of: String.self) { group in
                    for index in 0..<50 {
                        let endpoint = index.isMultiple(of: 2) ? dealer : orphan
                        group.addTask {
                            do {
                                _ = try await endpoint.request(bytes("r\(index)"), timeout: .seconds(3600))
                                return "replied"
                            } catch {
                                return "\(error)"
                            }
                        }
                    }
                    for await result in group { results.withLock { $0.append(result) } }
                }
            }
            let pushes = Task {
                // Blocks at the high-water mark (nobody pulls); shutdown must release it.
                for _ in 0..<20_000 {
                    do { try await pusher.send([UInt8](repeating: 1, count: 1024)) } catch { return "\(error)" }
                }
                return "all sent"
            }
            for index in 0..<1000 { try publisher.publish(topic: "t", payload: bytes("\(index)")) }
            try await Task.sleep(for: .milliseconds(200))
            #expect(await eventually { router.counters.received >= 26 })  // hello + 25 requests

            let clock = ContinuousClock()
            let start = clock.now
            async let first: Void = context.shutdown()
            async let second: Void = context.shutdown()  // concurrent calls are fine
            _ = await (first, second)
            let elapsed = clock.now - start
            #expect(elapsed < .seconds(3), "shutdown took \(elapsed)")
            await requests.value
            #expect(results.withLock { $0.count } == 50)
            #expect(results.withLock { $0.allSatisfy { $0 == BusError.closed.description } })
            #expect(await pushes.value == BusError.closed.description)
            // Everything stays closed and further calls fail fast.
            await #expect(throws: BusError.closed) { _ = try await dealer.request([1], timeout: .seconds(1)) }
            #expect(throws: BusError.closed) { try publisher.publish(topic: "t", payload: []) }
            #expect(throws: BusError.closed) { _ = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*") }
            await dealer.close()
            await proxy.stop()
            await subscriber.close()
            await context.shutdown()
        }
    }

    @Test func closingOneEndpointLeavesOthersWorking() async throws {
        try await withTimeout {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            try router.setHandler { $0.payload }
            let a = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!)
            let b = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!)
            #expect(try await a.request([1], timeout: .seconds(5)) == [1])
            await a.close()
            await a.close()
            await #expect(throws: BusError.closed) { _ = try await a.request([1], timeout: .seconds(1)) }
            #expect(try await b.request([2], timeout: .seconds(5)) == [2])
            await context.shutdown()
        }
    }
}

@Suite("Endpoint strings")
struct BusAddressTests {
    @Test func normalizesShortForms() throws {
        #expect(try BusAddress.normalize("5560") == "tcp://127.0.0.1:5560")
        #expect(try BusAddress.normalize("10.0.0.2:5560") == "tcp://10.0.0.2:5560")
        #expect(try BusAddress.normalize("tcp://*:5550") == "tcp://*:5550")
        #expect(try BusAddress.normalize("/tmp/x.sock") == "ipc:///tmp/x.sock")
        #expect(try BusAddress.normalize("ipc:///tmp/x.sock") == "ipc:///tmp/x.sock")
        #expect(throws: BusError.self) { try BusAddress.normalize("not an endpoint") }
        #expect(BusAddress.connectable("tcp://*:5550") == "tcp://127.0.0.1:5550")
        #expect(BusAddress.connectable("tcp://0.0.0.0:5550") == "tcp://127.0.0.1:5550")
    }

    @Test func resolvePrefersFlagThenEnvironmentThenDefault() throws {
        let environment = ["TANDEM_VERIFY": "tcp://10.1.1.1:6000"]
        #expect(try BusAddress.resolve(flag: "7000", env: "TANDEM_VERIFY", default: "5560", environment: environment)
            == "tcp://127.0.0.1:7000")
        #expect(try BusAddress.resolve(flag: nil, env: "TANDEM_VERIFY", default: "5560", environment: environment)
            == "tcp://10.1.1.1:6000")
        #expect(try BusAddress.resolve(flag: "", env: "TANDEM_OTHER", default: "5560", environment: environment)
            == "tcp://127.0.0.1:5560")
    }

    @Test func peerIDsPrintReadably() {
        #expect(PeerID("drafter-1").description == "drafter-1")
        #expect(PeerID(bytes: [0, 0xAB]).description == "0x00ab")
    }
}
