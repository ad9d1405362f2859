import Foundation
import Synchronization
import Testing
@testable import TandemBus

@Suite("DEALER/ROUTER request-reply", .timeLimit(.minutes(1)))
struct RequestReplyTests {
    /// Starts a ROUTER that echoes "<peer>:<payload reversed>" and a DEALER connected to it.
    private func echoPair(_ context: BusContext, bind: String) throws -> (BusEndpoint, BusEndpoint) {
        let router = try BusEndpoint.router(context: context, bind: bind)
        try router.setHandler { incoming in
            #expect(incoming.expectsReply)
            #expect(incoming.deadlineMillis != nil)
            return bytes("\(incoming.peer?.description ?? "?"):") + incoming.payload.reversed()
        }
        let dealer = try BusEndpoint.dealer(
            context: context, connect: router.boundEndpoint!, identity: PeerID("client-1"))
        return (router, dealer)
    }

    @Test func roundTripOverTCPWithEphemeralPort() async throws {
        try await withTimeout {
            let context = try BusContext()
            let (router, dealer) = try echoPair(context, bind: "tcp://127.0.0.1:*")
            let bound = try #require(router.boundEndpoint)
            #expect(bound.hasPrefix("tcp://127.0.0.1:"))
            #expect(!bound.hasSuffix(":*"))
            let reply = try await dealer.request(bytes("hello"), timeout: .seconds(5))
            #expect(text(reply) == "client-1:olleh")
            // Many sequential requests reuse the connection and correlate correctly.
            for index in 0..<200 {
                let reply = try await dealer.request(bytes("\(index)"), timeout: .seconds(5))
                #expect(text(reply) == "client-1:" + String("\(index)".reversed()))
            }
            #expect(dealer.counters.timeouts == 0)
            #expect(router.counters.received >= 201)
            #expect(router.knownPeers == [PeerID("client-1")])
            await context.shutdown()
        }
    }

    @Test func roundTripOverIPC() async throws {
        try await withTimeout {
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let context = try BusContext()
            let (router, dealer) = try echoPair(context, bind: "ipc://\(directory)/verify.sock")
            #expect(router.boundEndpoint == "ipc://\(directory)/verify.sock")
            let reply = try await dealer.request(bytes("abc"), timeout: .seconds(5))
            #expect(text(reply) == "client-1:cba")
            await context.shutdown()
        }
    }

    @Test func concurrentRequestsAreCorrelated() async throws {
        try await withTimeout {
            let context = try BusContext()
            let (_, dealer) = try echoPair(context, bind: "tcp://127.0.0.1:*")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let payload = bytes("req-\(index)")
                        let reply = try await dealer.request(payload, timeout: .seconds(5))
                        #expect(reply == bytes("client-1:") + payload.reversed())
                    }
                }
                try await group.waitForAll()
            }
            await context.shutdown()
        }
    }

    @Test func deadlineExpiryThrowsTimeoutAndLateReplyIsCounted() async throws {
        try await withTimeout {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            let started = Locked(0)
            try router.setHandler { incoming in
                if incoming.payload == bytes("slow") {
                    started.withLock { $0 += 1 }
                    try? await Task.sleep(for: .milliseconds(600))
                }
                return incoming.payload
            }
            let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!)
            // Warm up so connection setup does not eat into the deadline under test.
            #expect(try await dealer.request(bytes("warm"), timeout: .seconds(5)) == bytes("warm"))
            let clock = ContinuousClock()
            let start = clock.now
            do {
                _ = try await dealer.request(bytes("slow"), timeout: .milliseconds(200))
                Issue.record("expected a timeout")
            } catch let error as BusError {
                guard case let .timeout(_, _, after) = error else {
                    Issue.record("expected .timeout, got \(error)")
                    return
                }
                #expect(after == .milliseconds(200))
                #expect(error.description.contains("timed out after"))
            }
            let elapsed = clock.now - start
            #expect(elapsed >= .milliseconds(195))
            #expect(elapsed < .seconds(1))
            #expect(dealer.counters.timeouts == 1)
            #expect(started.value == 1)
            // The handler still answers after 600 ms; that reply is dropped and counted.
            #expect(await eventually { dealer.counters.lateReplies == 1 },
                    "dealer: \(dealer.counters.snapshot()) router: \(router.counters.snapshot())")
            await context.shutdown()
        }
    }

    @Test func requestsAlreadyPastTheirDeadlineAreDroppedByTheReceiver() async throws {
        try await withTimeout {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            let handled = Mutex<[String]>([])
            // Serial: the second request waits in the inbox behind the slow first one.
            try router.setHandler(concurrency: .serial) { incoming in
                handled.withLock { $0.append(text(incoming.payload)) }
                if incoming.payload == bytes("first") { try? await Task.sleep(for: .milliseconds(300)) }
                return incoming.payload
            }
            let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!)
            async let first = dealer.request(bytes("first"), timeout: .seconds(5))
            try await Task.sleep(for: .milliseconds(50))
            await #expect(throws: BusError.self) {
                _ = try await dealer.request(bytes("second"), timeout: .milliseconds(100))
            }
            #expect(try await first == bytes("first"))
            #expect(await eventually { router.counters.expired == 1 })
            #expect(handled.withLock { $0 } == ["first"])
            await context.shutdown()
        }
    }

    @Test func routerInitiatesRequestsAndOneWayMessagesToADealer() async throws {
        try await withTimeout {
            let context = try BusContext()
            let gateway = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            let drafter = try BusEndpoint.dealer(
                context: context, connect: gateway.boundEndpoint!, identity: PeerID("drafter-7"))
            let oneway = Mutex<[String]>([])
            try drafter.setHandler { incoming in
                #expect(incoming.peer == nil)
                if incoming.expectsReply { return bytes("ack:") + incoming.payload }
                oneway.withLock { $0.append(text(incoming.payload)) }
                return nil
            }
            // The dealer's hello makes it known to the router.
            #expect(await eventually { gateway.knownPeers.contains(PeerID("drafter-7")) })
            let reply = try await gateway.request(bytes("SessionStart"), to: PeerID("drafter-7"), timeout: .seconds(5))
            #expect(text(reply) == "ack:SessionStart")
            try await gateway.send(bytes("note"), to: PeerID("drafter-7"))
            #expect(await eventually { oneway.withLock { $0 } == ["note"] })
            // And the dealer can still talk to the router the usual way.
            try gateway.setHandler { bytes("pong:") + $0.payload }
            #expect(text(try await drafter.request(bytes("ping"), timeout: .seconds(5))) == "pong:ping")
            await context.shutdown()
        }
    }

    @Test func sendingToAnUnknownRouterPeerFails() async throws {
        try await withTimeout {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            await #expect(throws: BusError.unknownPeer(PeerID("nobody"))) {
                _ = try await router.request(bytes("x"), to: PeerID("nobody"), timeout: .seconds(5))
            }
            await #expect(throws: BusError.unknownPeer(PeerID("nobody"))) {
                try await router.send(bytes("x"), to: PeerID("nobody"))
            }
            await #expect(throws: BusError.peerRequired) {
                try await router.send(bytes("x"))
            }
            #expect(router.counters.sendErrors == 2)
            // A peer that disconnected becomes unknown again.
            let dealer = try BusEndpoint.dealer(context: context, connect: router.boundEndpoint!, identity: "gone")
            #expect(await eventually { router.knownPeers.contains("gone") })
            await dealer.close()
            #expect(await eventually {
                do {
                    try await router.send(bytes("x"), to: "gone")
                    return false
                } catch {
                    return error as? BusError == .unknownPeer("gone")
                }
            })
            #expect(!router.knownPeers.contains("gone"))
            await context.shutdown()
        }
    }

    @Test func undecodableMessagesAreCountedNotDelivered() async throws {
        try await withTimeout {
            let context = try BusContext()
            let router = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            let delivered = Atomic<Int>(0)
            try router.setHandler { _ in
                delivered.add(1, ordering: .relaxed)
                return nil
            }
            // A raw DEALER that does not speak the bus header, used only on this test's thread.
            let raw = try ZMQSocket(context: context, type: 5 /* ZMQ_DEALER */)
            try raw.set(17 /* ZMQ_LINGER */, 0)
            try raw.connect(router.boundEndpoint!)
            while case .wouldBlock = raw.send([bytes("garbage")]) { usleep(1000) }
            while case .wouldBlock = raw.send([[9, 9, 9], bytes("payload")]) { usleep(1000) }
            #expect(await eventually { router.counters.decodeErrors == 2 })
            #expect(delivered.load(ordering: .relaxed) == 0)
            raw.close()
            await context.shutdown()
        }
    }

    @Test func headerRoundTrips() {
        let header = BusHeader(kind: .request, correlation: 0x0102_0304_0506_0708, deadlineMillis: 1_763_700_000_123)
        let encoded = header.encoded()
        #expect(encoded.count == BusHeader.size)
        #expect(BusHeader.decode(encoded) == header)
        var wrongVersion = encoded
        wrongVersion[0] = 2
        #expect(BusHeader.decode(wrongVersion) == nil)
        #expect(BusHeader.decode(Array(encoded.dropLast())) == nil)
    }
}

@Suite("Peer discovery", .timeLimit(.minutes(1)))
struct PeerDiscoveryTests {
    @Test func dealerReintroducesItselfAfterTheRouterRestarts() async throws {
        try await withTimeout(.seconds(20)) {
            let context = try BusContext()
            let first = try BusEndpoint.router(context: context, bind: "tcp://127.0.0.1:*")
            let endpoint = try #require(first.boundEndpoint)
            let dealer = try BusEndpoint.dealer(context: context, connect: endpoint, identity: "drafter-r")
            try dealer.setHandler { bytes("still here:") + $0.payload }
            #expect(await eventually { first.knownPeers.contains("drafter-r") })
            await first.close()
            // Rebind the same port (the old listener may take a moment to go away).
            var second: BusEndpoint?
            for _ in 0..<200 where second == nil {
                second = try? BusEndpoint.router(context: context, bind: endpoint)
                if second == nil { try await Task.sleep(for: .milliseconds(10)) }
            }
            let restarted = try #require(second)
            // The dealer reconnects, handshakes and says hello again without sending anything itself.
            #expect(await eventually(.seconds(10)) { restarted.knownPeers.contains("drafter-r") })
            let reply = try await restarted.request(bytes("ping"), to: "drafter-r", timeout: .seconds(5))
            #expect(text(reply) == "still here:ping")
            await context.shutdown()
        }
    }
}
