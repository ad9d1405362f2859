import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemModels

/// `tandem bench engine`: measures the local inference engine on one model file and compares it with
/// llama.cpp's numbers on this machine class (docs/models.md, "Reference speeds").
///
/// Measures load time, batch-1 decode, single forward calls of 8 and 32 new positions (one sequence, as a
/// verifier checking drafts, and several sequences of one position each, as continuous batching), a
/// 512-token prefill (`--prefill-tokens`), decode at the end of that prompt (where attention and the KV
/// type `--kv-type` matter), and the process's peak RSS. Use a release build.
struct BenchEngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Benchmark the local forward engine (decode, batched forward, prefill, memory).")

    @Option(help: "Catalog name (see `tandem models list`), cached file name, or path to a GGUF file.")
    var model: String

    @Option(help: "Compute threads.")
    var threads = 2

    @Option(name: .customLong("kv-type"), help: "KV cache element type: f16 or f32 [TANDEM_KV_TYPE] (default: \(KVCacheType.default)).")
    var kvType: String?

    @Option(name: .customLong("decode-tokens"), help: "Tokens generated for the decode measurement.")
    var decodeTokens = 64

    @Option(help: "Repetitions of each batched measurement.")
    var repeats = 8

    @Option(name: .customLong("prefill-tokens"), help: "Prompt length for the prefill measurement.")
    var prefillTokens = 512

    /// llama.cpp, 2 threads, same files (models.md): decode, 8-token batch, 32-token batch tokens/s.
    static let reference: [(match: String, name: String, decode: Double, b8: Double, b32: Double)] = [
        ("1.5b", "Qwen2.5-Coder-1.5B Q4_K_M", 35, 78, 148),
        ("0.5b", "Qwen2.5-Coder-0.5B", 61, 155, 258),
        ("smollm2", "SmolLM2-135M Q4_1", 166, 290, 450),
    ]

    func run() async throws {
        var logger = Logger(label: "tandem.bench")
        logger.logLevel = .warning
        let path = (model as NSString).expandingTildeInPath

        let t0 = now()
        // The process before the model (Swift runtime, Foundation, ICU data): ~40 MB, which the
        // budget below (model file + KV + 10 %) leaves out; printed so small models can be judged.
        let baseline = Self.statusBytes("VmRSS:") ?? 0
        let lm = try LanguageModel.load(path: try ModelStore(logger: logger).resolve(path).path, logger: logger)
        let loadTime = now() - t0
        let engine = ForwardEngine(model: lm, threads: threads, kvType: try KVCacheType(flag: kvType, environment: ProcessInfo.processInfo.environment["TANDEM_KV_TYPE"]))
        let V = lm.config.vocabularySize
        func token(_ i: Int) -> Int32 { Int32((i &* 7919 &+ 13) % V) }

        print("model: \(path)")
        print("  \(lm.config.architecture), \(lm.config.layerCount) layers, width \(lm.config.embeddingWidth), "
              + "heads \(lm.config.headCount)/\(lm.config.kvHeadCount), ffn \(lm.config.feedForwardWidth), "
              + "vocab \(V), weights \(lm.weightBytes / 1_000_000) MB, threads \(threads)")
        print(String(format: "load time: %.3f s (mmap + validation)", loadTime))

        // Warm-up: touch all weights once (page cache -> RSS) so the first timed call is not a disk read.
        let cache = engine.makeCache(capacity: max(prefillTokens, 128 + decodeTokens + 64) + 8)
        _ = try engine.forward([ForwardRequest(cache: cache, tokens: (0..<16).map(token), logits: .last)])

        // Decode, batch 1: greedy continuation after a 16-token prompt.
        var next = Sampler.argmax(logits: try engine.decode(cache: cache, token: token(16)))
        let decodeRate = try measure(decodeTokens) {
            for _ in 0..<decodeTokens {
                next = Sampler.argmax(logits: try engine.decode(cache: cache, token: next))
            }
        }

        // One sequence, N new positions in one call, rolled back after each repeat. `.all` is the
        // verification shape (logits for every position); `.last` is what llama.cpp's batch
        // figures (prompt processing) compute.
        func batchedSingle(_ n: Int, logits: LogitsSelection = .all) throws -> Measurement {
            let base = cache.count
            let toks = (0..<n).map { token(base + $0) }
            _ = try engine.forward([ForwardRequest(cache: cache, tokens: toks, logits: logits)])
            cache.truncate(to: base)
            return try measure(n * repeats) {
                for _ in 0..<repeats {
                    _ = try engine.forward([ForwardRequest(cache: cache, tokens: toks, logits: logits)])
                    cache.truncate(to: base)
                }
            }
        }
        var kvPeak = cache.byteCount
        // N sequences with one new position each (continuous-batching decode shape), 64 cached positions each.
        func batchedMulti(_ n: Int) throws -> Measurement {
            let caches = (0..<n).map { _ in engine.makeCache(capacity: 80) }
            for (i, c) in caches.enumerated() {
                _ = try engine.forward([ForwardRequest(cache: c, tokens: (0..<64).map { token($0 + i) }, logits: .none)])
            }
            kvPeak = max(kvPeak, cache.byteCount + caches.reduce(0) { $0 + $1.byteCount })
            let reqs = caches.enumerated().map { ForwardRequest(cache: $1, tokens: [token($0)], logits: .last) }
            _ = try engine.forward(reqs)
            for c in caches { c.truncate(to: 64) }
            return try measure(n * repeats) {
                for _ in 0..<repeats {
                    _ = try engine.forward(reqs)
                    for c in caches { c.truncate(to: 64) }
                }
            }
        }
        let b8 = try batchedSingle(8)
        let b32 = try batchedSingle(32)
        let b8Last = try batchedSingle(8, logits: .last)
        let b32Last = try batchedSingle(32, logits: .last)
        let m8 = try batchedMulti(8)
        let m32 = try batchedMulti(32)

        // Prefill: one call with the whole prompt, logits for the last position only.
        let pcache = engine.makeCache(capacity: prefillTokens + decodeTokens + 1)
        let prompt = (0..<prefillTokens).map(token)
        let rssBeforePrefill = Self.statusBytes("VmRSS:") ?? 0
        let anonBeforePrefill = Self.statusBytes("RssAnon:") ?? 0
        let prefillRate = try measure(prefillTokens) {
            _ = try engine.forward([ForwardRequest(cache: pcache, tokens: prompt, logits: .last)])
        }
        let rssAfterPrefill = Self.statusBytes("VmRSS:") ?? 0
        let anonAfterPrefill = Self.statusBytes("RssAnon:") ?? 0
        // Decode at the end of that prompt: attention reads every cached position, so the KV type shows here.
        var after = Sampler.argmax(logits: try engine.decode(cache: pcache, token: token(prefillTokens)))
        let longDecodeRate = try measure(decodeTokens) {
            for _ in 0..<decodeTokens {
                after = Sampler.argmax(logits: try engine.decode(cache: pcache, token: after))
            }
        }
        // Caches commit memory in blocks as they fill: count what they hold now.
        kvPeak = max(kvPeak, cache.byteCount + pcache.byteCount)

        let ref = Self.reference.first { path.lowercased().contains($0.match) }
        func line(_ label: String, _ m: Measurement, _ refValue: Double?) {
            let padded = label.padding(toLength: 46, withPad: " ", startingAt: 0)
            var text = padded + String(format: "%8.1f tok/s  (cpu %3.0f%%)", m.rate, m.utilization * 100)
            if let r = refValue { text += String(format: "   llama.cpp %6.1f   ratio %.2f", r, m.rate / r) }
            print(text)
        }
        line("decode (batch 1)", decodeRate, ref?.decode)
        line("forward, 1 sequence x 8 new positions", b8, ref?.b8)
        line("forward, 1 sequence x 32 new positions", b32, ref?.b32)
        line("forward, 8 sequences x 1 new position", m8, ref?.b8)
        line("forward, 32 sequences x 1 new position", m32, ref?.b32)
        line("forward, 1 seq x 8 positions, last logits", b8Last, ref?.b8)
        line("forward, 1 seq x 32 positions, last logits", b32Last, ref?.b32)
        line("prefill (\(prefillTokens)-token prompt, one call)", prefillRate, nil)
        line("decode after the \(prefillTokens)-token prompt", longDecodeRate, nil)
        let fileBytes = lm.gguf.fileSize
        let budget = Double(fileBytes + kvPeak) * 1.1
        if let rss = Self.statusBytes("VmHWM:") {
            print(String(format: "peak RSS (VmHWM): %.1f MB; budget file %.1f MB + KV caches %.1f MB + 10%% = %.1f MB: %@",
                         Double(rss) / 1e6, Double(fileBytes) / 1e6, Double(kvPeak) / 1e6, budget / 1e6,
                         Double(rss) <= budget ? "within" : "over"))
            print(String(format: "  RSS before loading the model: %.1f MB; peak minus that: %.1f MB (%@ the budget)",
                         Double(baseline) / 1e6, Double(rss - baseline) / 1e6,
                         Double(rss - baseline) <= budget ? "within" : "over"))
        } else {
            print("peak RSS: unknown (no /proc/self/status)")
        }
        print("KV cache: \(engine.kvType), \(engine.kvBytesPerPosition) bytes per position; the prefill's cache holds "
              + String(format: "%.1f MB; RSS grew %.1f MB during the prefill (%.1f MB beyond its cache)",
                       Double(pcache.residentBytes) / 1e6, Double(rssAfterPrefill - rssBeforePrefill) / 1e6,
                       Double(rssAfterPrefill - rssBeforePrefill - pcache.residentBytes) / 1e6))
        // Anonymous memory is what the process allocated; the rest of the growth is file pages of the model
        // (embedding rows of the prompt's tokens) mapped back in, shared with the page cache and reclaimable.
        print(String(format: "  of which anonymous (allocated) %.1f MB, %.1f MB beyond the cache; the rest file pages of the model",
                     Double(anonAfterPrefill - anonBeforePrefill) / 1e6,
                     Double(anonAfterPrefill - anonBeforePrefill - pcache.residentBytes) / 1e6))
        if let ref { print("reference: \(ref.name), llama.cpp CPU 2 threads (models.md)") }
        print("cpu = process CPU time / (wall time x threads) during the measurement: well below 100% means")
        print("other processes took the cores, and the tok/s figures understate the engine by about that factor.")
    }

    struct Measurement {
        var rate: Double
        var utilization: Double
    }

    /// Runs `body`, returning `items` per wall second and the share of `threads` cores the process got.
    private func measure(_ items: Int, _ body: () throws -> Void) rethrows -> Measurement {
        let w0 = now(), c0 = cpuTime()
        try body()
        let wall = now() - w0, cpu = cpuTime() - c0
        return Measurement(rate: Double(items) / wall, utilization: cpu / (wall * Double(threads)))
    }

    private func cpuTime() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// A memory figure of `/proc/self/status` in bytes (`VmHWM:` peak RSS, `VmRSS:` current), if reported.
    static func statusBytes(_ key: String) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for l in s.split(separator: "\n") where l.hasPrefix(key) {
            let kb = l.dropFirst(key.count).trimmingCharacters(in: .whitespaces).split(separator: " ").first.flatMap { Int($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }
}
