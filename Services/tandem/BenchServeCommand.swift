import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import TandemWire

/// `tandem bench serve`: drives a running cluster over HTTP with C concurrent sessions and reports
/// throughput, goodput, TTFT/TPOT percentiles, SLO attainment and acceptance — speculative and
/// centralized (no drafting, continuous batching on the verifier) in the same run.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load-test a running cluster: speculative vs centralized, per concurrency level.")

    @Option(help: "Gateway base URL.") var url = "http://127.0.0.1:8080"
    @Option(help: "Concurrency levels (comma separated).") var concurrency = "1,4,8"
    @Option(help: "Requests per concurrency level and mode (default: 2 x C, at least 4).") var requests: Int?
    @Option(help: "max_tokens per request.") var maxTokens = 128
    @Option(help: "Sampling temperature (0 = greedy).") var temperature = 0.0
    @Option(help: "Modes to run: speculative, centralized, or both.") var mode = "both"
    @Option(help: "Draft length K for speculative runs (omit: the drafter's controller decides).") var k: Int?
    @Option(help: "TTFT SLO, ms.") var ttftSlo = 2000.0
    @Option(help: "TPOT SLO, ms.") var tpotSlo = 150.0
    @Option(help: "API key, if the gateway requires one.") var apiKey: String?
    @Option(help: "Prompt set: code (HumanEval), chat, mixed, or a .jsonl file (default: the built-in 14-prompt mix).")
    var prompts: String?

    struct Sample {
        var tokens: Int
        var ttft: Double
        var tpot: Double?
        var met: Bool
        var drafted: Int
        var accepted: Int
        var rounds: Int
    }

    /// The two arms compared: speculative decoding (the gateway's `coupled` mode) and centralized serving.
    enum Arm: String, CaseIterable {
        case speculative, centralized

        var servingMode: ServingMode { self == .centralized ? .centralized : .coupled }
    }

    struct Row {
        var mode: Arm
        var concurrency: Int
        var throughput: Double
        var goodput: Double
        var ttft: [Double]
        var tpot: [Double]
        var attainment: Double
        var acceptance: Double?
        var meanAcceptanceLength: Double?
        var errors: Int
    }

    func run() async throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 >= 1 }) else { throw ValidationError("bad --concurrency") }
        let modes: [Arm] = if mode == "both" { Arm.allCases } else if let arm = Arm(rawValue: mode) { [arm] } else {
            throw ValidationError("--mode must be speculative, centralized or both")
        }
        // Loaded once, before any request, so a bad --prompts fails fast.
        let messages: [[[String: String]]] = if let prompts {
            try await PromptSet.load(prompts, logger: Logger(label: "tandem.bench")).map { $0.messages.map(\.dictionary) }
        } else {
            BenchPrompts.all.map { [["role": "user", "content": $0]] }
        }
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        var rows: [Row] = []
        do {
            let client = ChatClient(baseURL: url, client: http, apiKey: apiKey)
            // Warm-up: one short request so model pages are resident.
            _ = try await client.chat(messages: [["role": "user", "content": "hi"]], maxTokens: 4, temperature: 0, seed: 0)
            for c in levels {
                for m in modes {
                    let row = try await measure(client: client, mode: m, concurrency: c, prompts: messages)
                    rows.append(row)
                    print(format(row))
                }
            }
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
        print("\n" + table(rows))
    }

    private func measure(client: ChatClient, mode: Arm, concurrency c: Int, prompts: [[[String: String]]]) async throws -> Row {
        let total = requests ?? max(4, 2 * c)
        let maxTokens = self.maxTokens, temperature = self.temperature, ttftSlo = self.ttftSlo, tpotSlo = self.tpotSlo
        let k = self.k
        @Sendable func extra() -> [String: Any] {
            var fields: [String: Any] = ["tandem_mode": mode.servingMode.rawValue,
                                         "slo_ttft_ms": ttftSlo, "slo_tpot_ms": tpotSlo]
            if mode == .speculative, let k { fields["k"] = k }
            return fields
        }
        let start = ContinuousClock.now
        let counter = RequestCounter(total: total)
        let results: [Sample?] = try await withThrowingTaskGroup(of: [Sample?].self) { group in
            for _ in 0..<c {
                group.addTask {
                    var samples: [Sample?] = []
                    while let i = await counter.next() {
                        let r = try await client.chat(
                            messages: prompts[i % prompts.count], maxTokens: maxTokens,
                            temperature: temperature, seed: i, extra: extra())
                        guard r.error == nil, let ttft = r.ttft else {
                            samples.append(nil)
                            continue
                        }
                        let tokens = max(r.completionTokens, 1)
                        let tpot = r.tpot
                        let met = ttft * 1000 <= ttftSlo && (tpot ?? 0) * 1000 <= tpotSlo
                        samples.append(Sample(tokens: tokens, ttft: ttft, tpot: tpot, met: met, drafted: r.drafted,
                                              accepted: r.accepted, rounds: r.rounds))
                    }
                    return samples
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let wall = ChatClient.seconds(ContinuousClock.now - start)
        let ok = results.compactMap { $0 }
        let tokens = ok.reduce(0) { $0 + $1.tokens }
        let good = ok.filter(\.met).reduce(0) { $0 + $1.tokens }
        let drafted = ok.reduce(0) { $0 + $1.drafted }, accepted = ok.reduce(0) { $0 + $1.accepted }
        let rounds = ok.reduce(0) { $0 + $1.rounds }
        return Row(mode: mode, concurrency: c, throughput: Double(tokens) / wall, goodput: Double(good) / wall,
                   ttft: ok.map { $0.ttft * 1000 }.sorted(), tpot: ok.compactMap { $0.tpot.map { $0 * 1000 } }.sorted(),
                   attainment: ok.isEmpty ? 0 : Double(ok.filter(\.met).count) / Double(results.count),
                   acceptance: drafted > 0 ? Double(accepted) / Double(drafted) : nil,
                   meanAcceptanceLength: rounds > 0 && drafted > 0 ? 1 + Double(accepted) / Double(rounds) : nil,
                   errors: results.count - ok.count)
    }

    private func pct(_ sorted: [Double], _ p: Double) -> Double {
        NearestRank.percentile(sorted, p / 100) ?? .nan
    }

    private func format(_ r: Row) -> String {
        String(format: "%@ C=%d: %.1f tok/s, goodput %.1f, TTFT p50 %.0f ms, TPOT p50 %.1f ms, SLO %.0f%%, errors %d",
               r.mode.rawValue, r.concurrency, r.throughput, r.goodput, pct(r.ttft, 50), pct(r.tpot, 50), r.attainment * 100, r.errors)
    }

    private func table(_ rows: [Row]) -> String {
        var lines = ["| mode | C | throughput tok/s | goodput tok/s | TTFT p50/p90/p99 ms | TPOT p50/p90/p99 ms | SLO met | acceptance | mean acc. len | errors |",
                     "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows {
            lines.append(String(format: "| %@ | %d | %.1f | %.1f | %.0f / %.0f / %.0f | %.1f / %.1f / %.1f | %.0f%% | %@ | %@ | %d |",
                                r.mode.rawValue, r.concurrency, r.throughput, r.goodput, pct(r.ttft, 50), pct(r.ttft, 90),
                                pct(r.ttft, 99), pct(r.tpot, 50), pct(r.tpot, 90), pct(r.tpot, 99), r.attainment * 100,
                                r.acceptance.map { String(format: "%.2f", $0) } ?? "-",
                                r.meanAcceptanceLength.map { String(format: "%.2f", $0) } ?? "-", r.errors))
        }
        let byC = Dictionary(grouping: rows, by: \.concurrency)
        for c in byC.keys.sorted() {
            if let s = byC[c]?.first(where: { $0.mode == .speculative }), let z = byC[c]?.first(where: { $0.mode == .centralized }),
               z.throughput > 0 {
                lines.append(String(format: "C=%d: speculative/centralized throughput %.2fx, goodput %@", c,
                                    s.throughput / z.throughput,
                                    z.goodput > 0 ? String(format: "%.2fx", s.goodput / z.goodput) : "n/a"))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// Hands out request indices to the closed-loop workers.
actor RequestCounter {
    private var next_ = 0
    let total: Int
    init(total: Int) { self.total = total }
    func next() -> Int? {
        guard next_ < total else { return nil }
        defer { next_ += 1 }
        return next_
    }
}

/// `tandem bench ...`
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (release builds): bus, engine, serve.",
        subcommands: [BenchBusCommand.self, BenchEngineCommand.self, BenchMatMulCommand.self, BenchServeCommand.self,
                      BenchFleetCommand.self])
}
