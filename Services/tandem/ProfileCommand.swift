import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemQuantize
import TandemService
import TandemServing
import TandemWire

/// `tandem profile`: measures, on the machine it runs on, what a drafter with one draft model does
/// per speculation round, and writes it as an `EdgeDeviceProfile` (schema `tandem.device-profile/1`).
///
/// This is what a user runs on a real Raspberry Pi, Jetson, laptop or phone to describe it to the
/// fleet emulation; the file is an *input* to emulation, never a result of it. Measured: the wall time
/// of a K-token drafting round for K = 1 ... `--max-k` (the drafter's shape: a KV cache holding the
/// prompt, feed the last committed token, draft K tokens autoregressively, batch 1, logits for the
/// last position only, greedy), steady-state decode tokens/s, peak RSS, and — where the machine
/// exposes RAPL energy counters — joules per token. The network figures are not measured: they are
/// the link the device is assumed to sit behind, given by the user.
///
/// Build with `-c release` on the device; a debug build still runs the optimized kernels and engine
/// (they are compiled with -O even in debug), so its figures are close but not equal.
///
/// With `--pair DRAFT... TARGET` it measures draft/target alignment instead (ProfileCommand+Pair.swift,
/// docs/alignment.md).
struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Measure this machine as a drafting device (device profile), or draft/target alignment (--pair).")

    @OptionGroup var pairOptions: ProfilePairOptions

    @Option(help: "Draft model: catalog name, cached file name, or path to a GGUF file.")
    var model = ModelLoader.defaultDraft

    @Option(help: "Compute threads (the device's drafting threads).")
    var threads = 1

    @Option(help: "Profile name (default: the host name and thread count).")
    var name: String?

    @Option(help: "Hardware description (default: CPU model, core count and memory from /proc).")
    var hardware: String?

    @Option(name: .customLong("rtt-ms"), help: "Assumed round-trip time to the cluster, ms (the default is home Wi-Fi to a LAN cluster).")
    var rttMs = 8.0

    @Option(name: .customLong("uplink-mbps"), help: "Assumed uplink bandwidth, Mbit/s (device to cluster).")
    var uplinkMbps = 50.0

    @Option(name: .customLong("downlink-mbps"), help: "Assumed downlink bandwidth, Mbit/s (cluster to device).")
    var downlinkMbps = 100.0

    @Option(name: .customLong("prompt-tokens"), help: "Context in the KV cache before drafting.")
    var promptTokens = 128

    @Option(name: .customLong("max-k"), help: "Largest draft length measured (draft_ms has one entry per K).")
    var maxK = 8

    @Option(help: "Repetitions of each drafting round; the median is reported.")
    var repeats = 10

    @Option(name: .customLong("decode-tokens"), help: "Tokens generated for the decode tokens/s (and energy) run.")
    var decodeTokens = 128

    @Option(help: "Write the profile here (JSON). Without it the JSON is printed.")
    var out: String?

    @Option(name: .customLong("matvec-types"),
            help: "Weight types whose per-layer matrix times are recorded for tandem plan (comma separated; empty: none).")
    var matvecTypes = "Q4_0,Q4_K,Q5_0,Q6_K,Q8_0"

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard (1...64).contains(maxK) else { throw ValidationError("--max-k must be in 1...64") }
        guard repeats >= 1, decodeTokens >= 1 else { throw ValidationError("--repeats and --decode-tokens must be positive") }
        guard promptTokens >= 1 else { throw ValidationError("--prompt-tokens must be at least 1") }
        guard rttMs >= 0, uplinkMbps >= 0, downlinkMbps >= 0 else {
            throw ValidationError("network figures must be non-negative")
        }
    }

    func run() async throws {
        if !pairOptions.pair.isEmpty {
            try await runPair()
            return
        }
        var logger = Logger(label: "tandem.profile")
        logger.logLevel = .warning
        let report = try measure(logger: logger)
        let profile = report.profile
        print(report.table())

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(profile)
        data.append(0x0A)
        if let out {
            let url = URL(fileURLWithPath: (out as NSString).expandingTildeInPath)
            try data.write(to: url, options: .atomic)
            print("wrote \(url.path)")
        } else {
            print(String(decoding: data, as: UTF8.self), terminator: "")
        }
    }

    /// What one run measured: the profile plus what only the printed table shows.
    struct Report: Sendable {
        var profile: EdgeDeviceProfile
        /// Share of `threads` cores the process got during the drafting rounds (1 = undisturbed).
        var cpuShare: Double
        /// Why `joules_per_token` is what it is (the RAPL zones read, or why none could be).
        var energyNote: String
        var modelPath: String
        var loadSeconds: Double

        /// The short table `tandem profile` prints.
        func table() -> String {
            var lines: [String] = []
            let p = profile
            lines.append("device profile '\(p.name)': \(p.draftModel) (\(p.quantization ?? "?")), threads \(p.threads ?? 0)")
            lines.append("  hardware: \(p.hardware)")
            lines.append("  model: \(modelPath), load \(String(format: "%.2f", loadSeconds)) s")
            lines.append(String(format: "  decode: %.1f tok/s (%.1f ms/token); cpu share during drafting %.0f%%",
                                p.decodeTokensPerSecond, 1000 / p.decodeTokensPerSecond, cpuShare * 100))
            lines.append("   K   draft ms   ms/token   step ms")
            for (i, ms) in p.draftMs.enumerated() {
                let step = i == 0 ? ms : ms - p.draftMs[i - 1]
                lines.append(String(format: "  %2d  %9.2f  %9.2f  %8.2f", i + 1, ms, ms / Double(i + 1), step))
            }
            lines.append("  peak RSS: " + (p.peakRSSMB.map { String(format: "%.1f MB", $0) } ?? "unknown (no /proc/self/status)"))
            if let j = p.joulesPerToken, let w = p.powerWatts {
                lines.append(String(format: "  energy: %.4f J/token, %.1f W (%@)", j, w, energyNote))
            } else {
                lines.append("  energy: not measured: \(energyNote)")
            }
            lines.append(String(format: "  network (assumed, not measured): rtt %.1f ms, up %.1f Mbit/s, down %.1f Mbit/s",
                                p.network.rttMs, p.network.uplinkMbps, p.network.downlinkMbps))
            lines.append("  source: \(p.source)")
            if cpuShare < 0.9 {
                lines.append("  warning: the process got \(Int(cpuShare * 100))% of its cores; other load slowed these figures.")
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Loads the model and measures; the code path of `run()` without printing (tests call it).
    func measure(logger: Logger) throws -> Report {
        let t0 = ContinuousClock.now
        let loaded = try ModelLoader.loadBlocking(model, logger: logger)
        let loadSeconds = ServiceClock.millis(since: t0) / 1000
        let lm = loaded.model
        let engine = ForwardEngine(model: lm, threads: threads, logger: logger)
        let contextLimit = lm.config.contextLength
        guard promptTokens + max(maxK, decodeTokens) + 1 <= contextLimit else {
            throw ValidationError("--prompt-tokens + max(--max-k, --decode-tokens) exceeds the model's context (\(contextLimit))")
        }

        // A realistic context: the benchmark prompts' tokens, repeated until `promptTokens` long.
        let text = BenchPrompts.all.joined(separator: "\n")
        var promptIDs: [Int32] = []
        let pieces = try loaded.tokenizer.encode(text, addBOS: false, parseSpecial: false)
        guard !pieces.isEmpty else { throw ValidationError("the tokenizer produced no tokens") }
        while promptIDs.count < promptTokens { promptIDs.append(contentsOf: pieces) }
        promptIDs.removeLast(promptIDs.count - promptTokens)

        // The cache holds everything but the last prompt token, which each round feeds as the last
        // committed token (as the drafter does after the verifier's reply).
        let cache = engine.makeCache(capacity: promptTokens + max(maxK, decodeTokens) + 1)
        let lastCommitted = promptIDs[promptTokens - 1]
        if promptTokens > 1 {
            _ = try engine.forward([ForwardRequest(cache: cache, tokens: Array(promptIDs[0..<(promptTokens - 1)]),
                                                   logits: .none)])
        }
        let base = cache.count

        /// One drafting round of `maxK` tokens, returning the elapsed ms after each drafted token.
        /// A K-token round does exactly the first K steps of this one (feed, argmax; feed, argmax; ...;
        /// the K-th drafted token is not fed), so entry K-1 is the time of a K-token round, and one round
        /// per repeat gives every K from the same work without 36 forwards where 8 do.
        func round() throws -> [Double] {
            cache.truncate(to: base)
            var elapsed: [Double] = []
            elapsed.reserveCapacity(maxK)
            let start = ContinuousClock.now
            var logits = try engine.decode(cache: cache, token: lastCommitted)
            for i in 0..<maxK {
                let token = Sampler.argmax(logits: logits)
                elapsed.append(ServiceClock.millis(since: start))
                if i + 1 < maxK { logits = try engine.decode(cache: cache, token: token) }
            }
            return elapsed
        }

        _ = try round()  // warm-up: weights into the page cache and the caches, scratch buffers allocated
        let cpu0 = Self.processCPUSeconds()
        let wall0 = ContinuousClock.now
        var samples: [[Double]] = []
        for _ in 0..<repeats { samples.append(try round()) }
        let cpuShare = (Self.processCPUSeconds() - cpu0) / (ServiceClock.millis(since: wall0) / 1000 * Double(threads))
        // Per-K median; medians of pointwise increasing samples are increasing.
        let draftMs = (0..<maxK).map { k in Self.median(samples.map { $0[k] }) }

        // Steady-state decode after the same context, with the energy counters read around it.
        cache.truncate(to: base)
        let energyBefore = RAPLReader.read()
        let d0 = ContinuousClock.now
        var next = lastCommitted
        for _ in 0..<decodeTokens {
            next = Sampler.argmax(logits: try engine.decode(cache: cache, token: next))
        }
        let decodeSeconds = ServiceClock.millis(since: d0) / 1000
        let energyAfter = RAPLReader.read()
        let energy = RAPLReader.joules(from: energyBefore, to: energyAfter)
        let decodeRate = Double(decodeTokens) / decodeSeconds

        var joulesPerToken: Double?
        var watts: Double?
        let energyNote: String
        switch energy {
        case .measured(let joules, let zones):
            joulesPerToken = joules / Double(decodeTokens)
            watts = joules / decodeSeconds
            energyNote = "RAPL \(zones.joined(separator: "+")), whole package incl. other processes"
        case .unavailable(let why):
            energyNote = why
        }

        // Per-type layer times (tandem plan), the model's own types included: measured after the
        // peak-memory reading, so the probe's weight copies do not count as drafting memory.
        let peak = BenchEngineCommand.statusBytes("VmHWM:").map { Double($0) / 1e6 }
        var layerTimes: [String: [String: Double]]?
        let asked = try matvecTypes.split(separator: ",").map {
            try QuantizationPlan.type(named: $0.trimmingCharacters(in: .whitespaces))
        }
        if !asked.isEmpty {
            let types = LayerMatvecProbe.writtenTypes(in: lm.gguf, layers: [0], asked: asked)
            let table = try LayerMatvecProbe.measure(model: lm, types: types, threads: threads)
            layerTimes = Dictionary(uniqueKeysWithValues: table.map { ($0.key.name, $0.value.mapValues { ($0 * 10_000).rounded() / 10_000 }) })
        }
        let host = ProcessInfo.processInfo.hostName
        let date = ISO8601DateFormatter().string(from: Date())
        #if DEBUG
        let build = "debug build (kernels and engine optimized)"
        #else
        let build = "release build"
        #endif
        let source = "measured: tandem profile on \(host) \(date), \(loaded.name), threads \(threads); "
            + "\(promptTokens)-token context, median of \(repeats) rounds, greedy; the process got "
            + "\(Int((cpuShare * 100).rounded())) % of its \(threads) core(s) while drafting; \(build)"
        var profile = EdgeDeviceProfile(
            name: name ?? "\(host)-\(threads)t",
            hardware: hardware ?? Self.describeHardware(),
            source: source,
            draftModel: loaded.name,
            quantization: lm.gguf.dominantTypeName,
            threads: threads,
            decodeTokensPerSecond: decodeRate,
            draftMs: draftMs.map { ($0 * 100).rounded() / 100 },
            peakRSSMB: peak.map { ($0 * 10).rounded() / 10 },
            joulesPerToken: joulesPerToken,
            powerWatts: watts,
            network: .init(rttMs: rttMs, uplinkMbps: uplinkMbps, downlinkMbps: downlinkMbps))
        profile.layerMatvecMs = layerTimes
        try profile.validate()
        return Report(profile: profile, cpuShare: cpuShare, energyNote: energyNote, modelPath: loaded.path.path,
                      loadSeconds: loadSeconds)
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// "CPU model, N cores, M GB RAM" from /proc (falls back to what Foundation knows), so a profile
    /// written without `--hardware` still says what it was measured on.
    static func describeHardware() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ key: String) -> String? {
            for line in info.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key {
                    let v = parts[1].trimmingCharacters(in: .whitespaces)
                    if !v.isEmpty { return v }
                }
            }
            return nil
        }
        // x86 reports "model name"; ARM boards often only "Model" (e.g. "Raspberry Pi 5 Model B") or "Hardware".
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "aarch64"
        #else
        let arch = "unknown arch"
        #endif
        let cpu = field("model name") ?? field("Model") ?? field("Hardware") ?? arch
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memGB = Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824
        return String(format: "%@ (%@), %d cores, %.1f GiB RAM", cpu, arch, cores, memGB)
    }
}

/// Reads the RAPL package energy counters Linux exposes under /sys/class/powercap (Intel, and AMD
/// Zen through the same `intel-rapl` driver or an `amd-rapl` zone). Only top-level zones
/// (`<driver>:N`) are summed: subzones (`:N:M`, core/uncore/dram) are parts of their package, and
/// `intel-rapl-mmio` duplicates the package zone through another interface.
enum RAPLReader {
    struct Zone: Sendable {
        var name: String
        var energyMicrojoules: UInt64
        var maxRangeMicrojoules: UInt64
    }

    enum Reading: Sendable {
        case zones([Zone])
        case unavailable(String)
    }

    enum Energy: Sendable {
        case measured(joules: Double, zones: [String])
        case unavailable(String)
    }

    static let root = "/sys/class/powercap"

    static func read() -> Reading {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: root) else {
            return .unavailable("no \(root) (this machine, e.g. a VM or a non-x86 board, exposes no RAPL counters)")
        }
        let packages = entries.filter { e in
            !e.contains("mmio") && e.contains("rapl:") && e.split(separator: ":").count == 2
        }.sorted()
        guard !packages.isEmpty else { return .unavailable("\(root) has no RAPL package zone") }
        var zones: [Zone] = []
        for p in packages {
            let dir = root + "/" + p
            guard let energy = readNumber(dir + "/energy_uj") else {
                let exists = fm.fileExists(atPath: dir + "/energy_uj")
                return .unavailable(exists
                    ? "\(dir)/energy_uj is not readable (root only since Linux 5.10; run as root or chmod it)"
                    : "\(dir) has no energy_uj")
            }
            let label = (try? String(contentsOfFile: dir + "/name", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? p
            zones.append(Zone(name: "\(p)(\(label))", energyMicrojoules: energy,
                              maxRangeMicrojoules: readNumber(dir + "/max_energy_range_uj") ?? 0))
        }
        return .zones(zones)
    }

    /// Energy between two readings; a counter that went backwards wrapped at `max_energy_range_uj`.
    static func joules(from before: Reading, to after: Reading) -> Energy {
        switch (before, after) {
        case (.unavailable(let why), _), (_, .unavailable(let why)):
            return .unavailable(why)
        case (.zones(let a), .zones(let b)):
            guard a.map(\.name) == b.map(\.name) else { return .unavailable("RAPL zones changed during the run") }
            var total = 0.0
            for (x, y) in zip(a, b) {
                let delta: UInt64
                if y.energyMicrojoules >= x.energyMicrojoules {
                    delta = y.energyMicrojoules - x.energyMicrojoules
                } else if x.maxRangeMicrojoules > 0 {
                    delta = (x.maxRangeMicrojoules - x.energyMicrojoules) + y.energyMicrojoules
                } else {
                    return .unavailable("\(x.name) went backwards and has no max_energy_range_uj")
                }
                total += Double(delta) / 1e6
            }
            return .measured(joules: total, zones: a.map(\.name))
        }
    }

    private static func readNumber(_ path: String) -> UInt64? {
        guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return UInt64(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
