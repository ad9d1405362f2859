import Foundation

/// Draws the fleet benchmark's figure with matplotlib (a real plotting library, run by python3):
/// goodput and SLO attainment against the device count, one line per mode.
enum FleetPlot {
    static let script = """
        import json, sys
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        report = json.load(open(sys.argv[1]))
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
        for mode in sorted({r["mode"] for r in report["rows"]}):
            rows = sorted((r for r in report["rows"] if r["mode"] == mode), key=lambda r: r["devices"])
            n = [r["devices"] for r in rows]
            a.plot(n, [r["goodput_tps"] for r in rows], marker="o", label=mode)
            b.plot(n, [100 * r["slo_attainment"] for r in rows], marker="o", label=mode)
        for ax in (a, b):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("emulated edge devices (N)")
            ax.grid(True, alpha=0.3)
            ax.legend()
        a.set_ylabel("goodput (tokens/s of requests meeting the SLO)")
        b.set_ylabel("SLO attainment (%)")
        b.axhline(90, color="gray", linestyle="--", linewidth=1)
        fig.suptitle("Tandem fleet: %s verifier, EMULATED devices (%s), SLO TTFT %d ms / TPOT %d ms" % (
            report["target_model"], report["profile"], report["slo_ttft_ms"], report["slo_tpot_ms"]), fontsize=9)
        fig.tight_layout()
        fig.savefig(sys.argv[2], dpi=120)
        """

    static func render(json: String, png: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, json, png]
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus == 0 {
            say("plot: \(png)")
        } else {
            sayError("plot failed (python3 with matplotlib needed: pip install matplotlib); the JSON has every figure")
        }
    }
}
