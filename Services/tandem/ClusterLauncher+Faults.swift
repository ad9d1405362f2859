import Foundation
import TandemBus
import TandemWire

/// What a fault harness needs from a running cluster: signal a child, start it again as it was
/// started, and ask the gateway's registry who is alive and busy.
extension ClusterLauncher {
    func child(named name: String) -> ChildProcess? { children.first { $0.name == name } }

    /// Starts `name` again with the arguments and environment of its first start (a metrics-store
    /// on the endpoints it had), after its previous process has exited, and waits for its READY line.
    func restart(_ name: String, timeout: Duration = .seconds(300)) async throws -> ChildProcess {
        guard let spec = specs[name] else { throw LaunchError("no child named \(name) was started") }
        if let old = child(named: name), old.isRunning {
            throw LaunchError("\(name) (pid \(old.pid)) is still running; stop it before restarting it")
        }
        let child = try launch(name, spec)
        _ = try await ready(child, timeout: timeout)
        return child
    }

    /// Replica ids of `role` that are alive and reported an active session in a heartbeat after `since`.
    static func busy(_ status: ClusterStatus, role: Role, since: EpochMillis) -> [String] {
        status.replicas.filter {
            $0.registration.role == role && $0.alive && $0.lastHeartbeat > since && $0.load.activeSessions > 0
        }.map(\.registration.replicaID).sorted()
    }
}
