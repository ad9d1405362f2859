import Foundation
import Hummingbird
import TandemTelemetry
import TandemWire

extension ClusterStatus: ResponseEncodable {}

extension Gateway {
    /// `/health`, `/v1/cluster`, `/metrics`: what operators and `tandem status` use.
    func addOperationalRoutes(to router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ -> Response in
            let status = await self.registry.status()
            let alive = Dictionary(grouping: status.replicas.filter(\.alive), by: { $0.registration.role.rawValue })
                .mapValues(\.count)
            let body = try JSONSerialization.data(withJSONObject: ["status": "ok", "alive": alive], options: [.sortedKeys])
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/v1/cluster") { _, _ -> ClusterStatus in
            await self.registry.status()
        }
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: TelemetryBootstrap.exposition(self.metrics))))
        }
    }
}
