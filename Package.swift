// swift-tools-version:6.1
//
// Tandem: a distributed speculative-decoding LLM server.
// One module per concern; see README.md and docs/ for the map.
import PackageDescription

/// CPU baseline of the numeric modules (the Swift code generator follows the clang target):
/// never `native`, which makes a binary that can crash on another machine of the same
/// deployment. x86_64: x86-64-v3 (AVX2, FMA, F16C: Haswell / Zen 1 and later), which the x86
/// kernels need. Other architectures: the compiler's default (arm64: ARMv8-A with NEON, which the
/// portable kernels use). Chosen by the architecture that evaluates this manifest, i.e. the build
/// host (build arm64 images on arm64 or under emulation). `TANDEM_MARCH=<value>` overrides it,
/// e.g. `TANDEM_MARCH=native` for a benchmark build that never leaves its machine. README "Platforms".
#if arch(x86_64)
let defaultMarch: String? = "x86-64-v3"
#else
let defaultMarch: String? = nil
#endif
let cpuFlags: [String] = (Context.environment["TANDEM_MARCH"] ?? defaultMarch).map { ["-Xcc", "-march=\($0)"] } ?? []
/// The hot numeric kernels are optimized even in debug builds: numeric Swift at -Onone is
/// 10-100x slower, which would make model tests and local clusters unusable. Whole-module (`-wmo`;
/// `-num-threads` keeps one object file per source, as SwiftPM expects) so that the kernels,
/// split into a file per quant family, inline each other's helpers in debug builds too.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo", "-num-threads", "2"] + cpuFlags),
]
/// The engine (model forward, tokenizer, sampler) is optimized but keeps its checks.
let engineFlags: [SwiftSetting] = [
    .unsafeFlags(["-O"] + cpuFlags),
]

let log = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let coreMetrics = Target.Dependency.product(name: "CoreMetrics", package: "swift-metrics")
let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let unixSignals = Target.Dependency.product(name: "UnixSignals", package: "swift-service-lifecycle")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let hummingbirdTesting = Target.Dependency.product(name: "HummingbirdTesting", package: "hummingbird")
let httpTypes = Target.Dependency.product(name: "HTTPTypes", package: "swift-http-types")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let grdb = Target.Dependency.product(name: "GRDB", package: "GRDB.swift")
let deque = Target.Dependency.product(name: "DequeModule", package: "swift-collections")
let httpClient = Target.Dependency.product(name: "AsyncHTTPClient", package: "async-http-client")
let propertyBased = Target.Dependency.product(name: "PropertyBased", package: "swift-property-based")

let package = Package(
    name: "Tandem",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gateway", targets: ["Gateway"]),
        .executable(name: "drafter-agent", targets: ["DrafterAgent"]),
        .executable(name: "verifier", targets: ["Verifier"]),
        .executable(name: "estimator", targets: ["Estimator"]),
        .executable(name: "config-advisor", targets: ["ConfigAdvisor"]),
        .executable(name: "metrics-store", targets: ["MetricsStore"]),
        .executable(name: "tandem", targets: ["TandemCLI"]),
        .library(name: "TandemWire", targets: ["TandemWire"]),
        .library(name: "TandemBus", targets: ["TandemBus"]),
        .library(name: "TandemEngine", targets: ["TandemEngine"]),
        .library(name: "TandemModels", targets: ["TandemModels"]),
        .library(name: "TandemSpeculative", targets: ["TandemSpeculative"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        // Hummingbird's and AsyncHTTPClient's own vocabulary, which the gateway, the CLI and the tests
        // import directly (HTTPFields, ByteBuffer, HTTPHeaders).
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.23.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // MARK: Shared libraries
        .systemLibrary(
            name: "CZeroMQ", path: "Shared/CZeroMQ", pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(name: "TandemBus", dependencies: ["CZeroMQ", log], path: "Shared/TandemBus"),
        .target(name: "TandemWire", path: "Shared/TandemWire"),
        .target(name: "TandemCSupport", path: "Shared/TandemCSupport"),
        .target(name: "TandemKernels", dependencies: ["TandemCSupport"], path: "Shared/TandemKernels",
                swiftSettings: kernelFlags),
        .target(name: "TandemEngine", dependencies: ["TandemKernels", log], path: "Shared/TandemEngine",
                swiftSettings: engineFlags),
        // The model cache (catalog, PyPI wheel download, SHA-256): plain Foundation code, kept out of the
        // engine, which is compiled with native CPU flags.
        .target(name: "TandemModels", dependencies: [log], path: "Shared/TandemModels"),
        .target(name: "TandemSpeculative", dependencies: ["TandemEngine", "TandemModels"], path: "Shared/TandemSpeculative",
                swiftSettings: engineFlags),
        .target(name: "TandemQuantize", dependencies: ["TandemEngine", "TandemKernels", log], path: "Shared/TandemQuantize",
                swiftSettings: engineFlags),
        .target(name: "TandemTelemetry", dependencies: ["TandemWire", "TandemBus", log, metrics, prometheus],
                path: "Shared/TandemTelemetry"),
        .target(name: "TandemService",
                dependencies: ["TandemWire", "TandemBus", "TandemTelemetry", log, metrics, lifecycle, unixSignals,
                               argumentParser, deque],
                path: "Shared/TandemService"),

        .target(name: "TandemServing",
                dependencies: ["TandemService", "TandemEngine", "TandemModels", "TandemSpeculative", "TandemWire", log],
                path: "Shared/TandemServing"),

        // MARK: Services (one executable each)
        .executableTarget(name: "Gateway",
                          dependencies: ["TandemService", "TandemServing", "TandemTelemetry", "TandemEngine", "TandemKernels", "TandemQuantize",
                                         "TandemModels", "TandemWire", "TandemBus", hummingbird, httpTypes, nioCore, prometheus, metrics, log,
                                         lifecycle, argumentParser],
                          path: "Services/gateway"),
        .executableTarget(name: "DrafterAgent",
                          dependencies: ["TandemService", "TandemServing", "TandemTelemetry", "TandemEngine",
                                         "TandemModels", "TandemSpeculative", "TandemWire", "TandemBus", httpClient, nioCore, nioHTTP1,
                                         log, argumentParser],
                          path: "Services/drafter-agent"),
        .executableTarget(name: "Verifier",
                          dependencies: ["TandemService", "TandemServing", "TandemTelemetry", "TandemEngine",
                                         "TandemSpeculative", "TandemWire", "TandemBus", deque, log, argumentParser],
                          path: "Services/verifier"),
        .executableTarget(name: "Estimator",
                          dependencies: ["TandemService", "TandemSpeculative", "TandemModels", "TandemWire", "TandemBus",
                                         log, lifecycle, argumentParser],
                          path: "Services/estimator"),
        .executableTarget(name: "ConfigAdvisor",
                          dependencies: ["TandemService", "TandemSpeculative", "TandemModels", "TandemWire", "TandemBus",
                                         log, lifecycle, argumentParser],
                          path: "Services/config-advisor"),
        .executableTarget(name: "MetricsStore",
                          dependencies: ["TandemService", "TandemWire", "TandemBus", grdb, log, lifecycle, argumentParser],
                          path: "Services/metrics-store"),
        .executableTarget(name: "TandemCLI",
                          dependencies: ["TandemService", "TandemServing", "TandemTelemetry", "TandemEngine", "TandemKernels",
                                         "TandemModels", "TandemSpeculative", "TandemQuantize", "TandemWire", "TandemBus", httpClient,
                                         nioCore, nioHTTP1, log, unixSignals, argumentParser],
                          path: "Services/tandem"),

        // MARK: Tests
        .target(name: "TandemTestSupport", dependencies: ["TandemEngine"], path: "Tests/TandemTestSupport"),
        .testTarget(name: "TandemBusTests", dependencies: ["TandemBus"], path: "Tests/TandemBusTests"),
        .testTarget(name: "TandemWireTests", dependencies: ["TandemWire", propertyBased],
                    path: "Tests/TandemWireTests"),
        .testTarget(name: "TandemEngineTests", dependencies: ["TandemEngine", "TandemKernels", "TandemModels", "TandemTestSupport"],
                    path: "Tests/TandemEngineTests", resources: [.copy("Fixtures")]),
        .testTarget(name: "TandemQuantizeTests", dependencies: ["TandemQuantize", "TandemEngine", "TandemKernels", "TandemTestSupport", log],
                    path: "Tests/TandemQuantizeTests"),
        .testTarget(name: "TandemSpeculativeTests", dependencies: ["TandemSpeculative", "TandemEngine", "TandemTestSupport"],
                    path: "Tests/TandemSpeculativeTests"),
        .testTarget(name: "ServiceTests",
                    dependencies: ["TandemService", "TandemServing", "TandemEngine", "TandemModels", "TandemSpeculative", "TandemQuantize",
                                   "TandemWire", "TandemBus", "MetricsStore", "Gateway", "Estimator", "ConfigAdvisor", "Verifier",
                                   "DrafterAgent", "TandemTestSupport", "TandemCLI", hummingbird, hummingbirdTesting,
                                   httpTypes, grdb, prometheus, coreMetrics, log],
                    path: "Tests/ServiceTests"),
    ]
)
