import Foundation
import Testing
import TandemBus
import TandemService
import TandemWire
#if canImport(Glibc)
import Glibc
#endif

/// The whole cluster as real processes: `tandem up` starts all six executables on ephemeral
/// loopback ports; every replica must register, and SIGTERM must stop them all, each by itself
/// (no SIGKILL needed), within a bounded time.
@Suite(.serialized) struct ClusterIntegrationTests {
    @Test(.timeLimit(.minutes(6)))
    func allSixServicesRegisterAndStopOnSIGTERM() async throws {
        let dataDir = NSTemporaryDirectory() + "tandem-up-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let up = try ProductProcess(product: "tandem", arguments: [
            "up", "--ephemeral", "--small", "--drafters", "2", "--verifiers", "2", "--data-dir", dataDir,
            "--start-timeout", "240",
        ], environment: ProcessInfo.processInfo.environment.filter { $0.key == "TANDEM_MODELS" })
        let ready: String
        do {
            ready = try await up.waitForLine(prefix: "READY http=", timeout: .seconds(300))
        } catch {
            Issue.record("cluster did not come up: \(up.stdoutLines.joined(separator: "\n"))\n\(up.logTail())")
            await up.kill()
            throw error
        }
        let fields = ReadyLine.parse(ready) ?? [:]
        let control = try #require(fields["control"])
        let pids = (up.stdoutLines.first { $0.hasPrefix("PIDS ") } ?? "").dropFirst(5).split(separator: " ")
            .compactMap { pair -> (String, Int32)? in
                let parts = pair.split(separator: "=")
                guard parts.count == 2, let pid = Int32(parts[1]) else { return nil }
                return (String(parts[0]), pid)
            }
        #expect(pids.count == 8, "metrics-store, gateway, estimator, config-advisor, 2 verifiers, 2 drafters")

        // The registry, asked directly over the bus, lists every replica alive with its role.
        let context = try BusContext()
        let client = try BusEndpoint.dealer(context: context, connect: control)
        let reply = try await client.call(.status(StatusQuery()), timeout: .seconds(5))
        await client.close()
        await context.shutdown()
        guard case .clusterStatus(let status) = reply else {
            Issue.record("unexpected reply \(reply.kind)")
            await up.kill()
            return
        }
        let alive = Dictionary(grouping: status.replicas.filter(\.alive), by: \.registration.role).mapValues(\.count)
        #expect(alive[.metricsStore] == 1)
        #expect(alive[.estimator] == 1)
        #expect(alive[.configAdvisor] == 1)
        #expect(alive[.verifier] == 2)
        #expect(alive[.drafter] == 2)
        #expect(status.replicas.filter { $0.registration.role == .verifier }.allSatisfy { $0.registration.endpoint?.hasPrefix("tcp://127.0.0.1:") == true })

        // SIGTERM: tandem up forwards it; every service must exit on its own within the grace period.
        let start = ContinuousClock.now
        up.signal(SIGTERM)
        let code = await up.waitForExit(timeout: .seconds(30))
        let elapsed = ContinuousClock.now - start
        #expect(code == 0, "tandem up exit code")
        #expect(elapsed < .seconds(15), "shutdown took \(elapsed)")
        for (name, pid) in pids {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "\(name) (pid \(pid)) still running")
        }
        #expect(!up.logTail(20_000).contains("did not stop in time"), "a service needed SIGKILL")
    }
}
