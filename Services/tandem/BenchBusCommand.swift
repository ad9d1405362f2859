import ArgumentParser
import Logging
import TandemBus

/// `tandem bench bus`: how fast is the message bus on this machine?
///
/// Measures DEALER↔ROUTER request/reply round-trip latency over loopback TCP (and optionally
/// ipc), pipelined request throughput, and PUB→SUB throughput (direct and through the
/// metrics-store's XSUB/XPUB proxy). The measuring code lives in `TandemBus.BusBenchmark`.
struct BenchBusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Benchmark the ZeroMQ bus: request/reply latency and PUB/SUB throughput."
    )

    @Option(help: "Sequential requests measured for latency.")
    var requests: Int = 10_000

    @Option(help: "Unmeasured warm-up requests.")
    var warmup: Int = 1_000

    @Option(help: "Request payload size in bytes.")
    var requestBytes: Int = 64

    @Option(help: "Requests in flight for the pipelined measurement (0 skips it).")
    var inFlight: Int = 32

    @Option(parsing: .upToNextOption, help: "PUB/SUB payload sizes in bytes.")
    var payloadSizes: [Int] = [64, 4096]

    @Option(help: "PUB/SUB messages for the smallest payload (scaled down for larger ones, min 20,000).")
    var messages: Int = 200_000

    @Flag(help: "Also measure request/reply latency over ipc://.")
    var ipc = false

    @Flag(help: "Secure every socket with CurveZMQ (fresh in-memory keys, ZAP checks each handshake) to measure what encryption costs.")
    var curve = false

    @Flag(help: "Skip the PUB/SUB measurement through the XSUB/XPUB proxy.")
    var noProxy = false

    func run() async throws {
        let logger = Logger(label: "tandem.bench.bus")
        let security = curve ? try Self.ephemeralSecurity() : nil
        let context = try BusContext(security: security, logger: logger)
        if curve { print("CurveZMQ on: every socket encrypted, every handshake authorised") }
        do {
            print("request/reply (DEALER→ROUTER echo, sequential, \(warmup) warm-up):")
            let tcp = try await BusBenchmark.requestReplyLatency(
                context: context, requests: requests, warmup: warmup, payloadBytes: requestBytes, logger: logger)
            print("  \(tcp)")
            if ipc {
                let path = "/tmp/tandem-bench-bus-\(UInt32.random(in: 0...UInt32.max)).sock"
                let report = try await BusBenchmark.requestReplyLatency(
                    context: context, bind: "ipc://\(path)", requests: requests, warmup: warmup,
                    payloadBytes: requestBytes, logger: logger)
                print("  \(report)")
            }
            if inFlight > 0 {
                let report = try await BusBenchmark.pipelinedRequests(
                    context: context, requests: Swift.max(requests, inFlight), inFlight: inFlight,
                    payloadBytes: requestBytes, logger: logger)
                print("  \(report)")
            }
            print("pub/sub (topic frame + payload frame):")
            let smallest = payloadSizes.min() ?? 64
            for size in payloadSizes {
                let count = Swift.max(20_000, messages * smallest / Swift.max(size, 1))
                for viaProxy in noProxy ? [false] : [false, true] {
                    let report = try await BusBenchmark.pubSubThroughput(
                        context: context, messages: count, payloadBytes: size, viaProxy: viaProxy, logger: logger)
                    print("  \(report)")
                }
            }
        } catch {
            await context.shutdown()
            throw error
        }
        await context.shutdown()
    }

    /// A server pair and one authorised client pair, made for this run only.
    static func ephemeralSecurity() throws -> BusSecurity {
        let server = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        return try BusSecurity(serverPublicKey: server.publicKey, server: server, client: client,
                               authorized: AuthorizedCurveKeys(keys: [client.publicKey: "bench"]))
    }
}
