import Foundation

/// The fleet benchmark's printed table.
enum FleetTable {
    static let header = "mode         N  req err same  thru t/s  good t/s   SLO   TTFT p50/p90/p99 ms      TPOT p50/p90/p99 ms   acc   len    K  K=0%  pos/batch busy wasted s"

    static func line(_ r: FleetRow) -> String {
        func f(_ v: Double?, _ spec: String = "%.0f") -> String { v.map { String(format: spec, $0) } ?? "-" }
        let ttft = "\(f(r.ttftMsP50))/\(f(r.ttftMsP90))/\(f(r.ttftMsP99))"
        let tpot = "\(f(r.tpotMsP50, "%.1f"))/\(f(r.tpotMsP90, "%.1f"))/\(f(r.tpotMsP99, "%.1f"))"
        return String(format: "%-11@ %3d %4d %3d %4d  %8.1f  %8.1f  %3.0f%%  %-22@  %-20@ %5@ %5@ %4@ %5@ %9@ %4@ %8.1f",
                      r.mode, r.devices, r.requests, r.errors, r.identical, r.throughputTPS, r.goodputTPS,
                      r.sloAttainment * 100, ttft, tpot, f(r.acceptance, "%.2f"), f(r.meanAcceptedLength, "%.2f"),
                      f(r.meanK, "%.1f"), f(r.plainRoundFraction.map { $0 * 100 }), f(r.batchPositionsMean, "%.1f"),
                      f(r.verifierBusy.map { $0 * 100 }, "%.0f%%"), r.wastedDraftS)
    }

    static func render(_ report: FleetReport) -> String {
        var out = ["EMULATED edge devices (\(report.profile); drafts replayed from \(report.draftModel)); verifier \(report.targetModel) real, \(report.verifierThreads) threads",
                   "SLO TTFT \(Int(report.sloTTFTMs)) ms, TPOT \(Int(report.sloTPOTMs)) ms; 'same' = text identical to the target-only output",
                   header]
        out += report.rows.map(line)
        let capacity = report.capacity.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        out.append("capacity (largest N with >= 90% SLO attainment): \(capacity)")
        let modes = Set(report.rows.map(\.mode))
        if modes.contains("centralized") {
            for mode in modes.sorted() where mode != "centralized" {
                let ratios = report.rows.filter { $0.mode == mode }.compactMap { row -> String? in
                    guard let base = report.rows.first(where: { $0.mode == "centralized" && $0.devices == row.devices }),
                          base.goodputTPS > 0 else { return nil }
                    return String(format: "N=%d %.2fx", row.devices, row.goodputTPS / base.goodputTPS)
                }
                out.append("\(mode) goodput / centralized goodput: " + ratios.joined(separator: ", "))
            }
        }
        return out.joined(separator: "\n")
    }
}
