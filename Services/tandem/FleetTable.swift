import Foundation

/// The fleet benchmark's printed table.
enum FleetTable {
    static let header = "mode          N  req err same  thru t/s  good t/s   SLO    TTFT p50/p90/p99 ms  TPOT p50/p90/p99 ms   acc   len    K  K=0% pos/batch  busy wasted s ahead hit"

    static func line(_ r: FleetRow) -> String {
        func f(_ v: Double?, _ spec: String = "%.0f") -> String { v.map { String(format: spec, $0) } ?? "-" }
        func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, width - s.count))
            return left ? s + fill : fill + s
        }
        let ttft = "\(f(r.ttftMsP50))/\(f(r.ttftMsP90))/\(f(r.ttftMsP99))"
        let tpot = "\(f(r.tpotMsP50, "%.1f"))/\(f(r.tpotMsP90, "%.1f"))/\(f(r.tpotMsP99, "%.1f"))"
        let cells: [String] = [
            pad(r.mode, 11, left: true), pad("\(r.devices)", 3), pad("\(r.requests)", 4), pad("\(r.errors)", 3),
            pad("\(r.identical)", 4), pad(f(r.throughputTPS, "%.1f"), 9), pad(f(r.goodputTPS, "%.1f"), 9),
            pad(f(r.sloAttainment * 100) + "%", 5), pad(ttft, 22), pad(tpot, 20), pad(f(r.acceptance, "%.2f"), 5),
            pad(f(r.meanAcceptedLength, "%.2f"), 5), pad(f(r.meanK, "%.1f"), 4), pad(f(r.plainRoundFraction.map { $0 * 100 }), 5),
            pad(f(r.batchPositionsMean, "%.1f"), 9), pad(f(r.verifierBusy.map { $0 * 100 }) + "%", 5),
            pad(String(format: "%.1f", r.wastedDraftS), 8),
            pad(f(r.aheadFraction.map { $0 * 100 }) + "%", 5), pad(f(r.aheadHitRate.map { $0 * 100 }) + "%", 4),
        ]
        return cells.joined(separator: " ")
    }

    static func render(_ report: FleetReport) -> String {
        var out = ["EMULATED edge devices (\(report.profile); drafts replayed from \(report.draftModel)); verifier \(report.targetModel) real, \(report.verifierThreads) threads",
                   "SLO TTFT \(Int(report.sloTTFTMs)) ms, TPOT \(Int(report.sloTPOTMs)) ms; 'same' = text identical to the target-only output",
                   header]
        out += report.rows.map(line)
        let capacity = report.capacity.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        out.append("capacity (largest N with >= 90% SLO attainment): \(capacity)")
        let modes = Set(report.rows.map(\.mode))
        let centralized = FleetMode.centralized.rawValue
        if modes.contains(centralized) {
            for mode in modes.sorted() where mode != centralized {
                let ratios = report.rows.filter { $0.mode == mode }.compactMap { row -> String? in
                    guard let base = report.rows.first(where: { $0.mode == centralized && $0.devices == row.devices }),
                          base.goodputTPS > 0 else { return nil }
                    return String(format: "N=%d %.2fx", row.devices, row.goodputTPS / base.goodputTPS)
                }
                out.append("\(mode) goodput / centralized goodput: " + ratios.joined(separator: ", "))
            }
        }
        return out.joined(separator: "\n")
    }
}
