import Foundation
import Logging
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// The verifier measures its batch-time curve (a calibration at start, then its verification batches) and
/// sends it with every verification result. In-process, on the synthetic target.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct VerifierCostCurveTests {
    static func verify(_ core: VerifierCore, session: String, draft: [Int32] = []) async throws -> VerifyResult {
        try await VerifierDecodeStepsTests.open(core, session: session)
        let prompt = VerifierDecodeStepsTests.prompt
        let reply = await core.handle(.verify(VerifyRequest(
            session: session, position: prompt.count, tokens: draft, lastToken: prompt.last!,
            deadline: ServiceClock.nowMillis() + 10_000, draftMs: 0, k: draft.count)))
        guard case .verified(let result)? = reply else { throw ReferenceError("verify failed: \(String(describing: reply))") }
        return result
    }

    @Test func aCalibratedVerifierSendsItsCurveWithEveryResult() async throws {
        let (core, _) = try await VerifierDecodeStepsTests.core()
        defer { core.shutdown() }
        let measured = try await core.calibrate(maxPositions: 16)
        #expect(measured.map(\.positions) == [1, 2, 3, 4, 6, 8, 12, 16])
        #expect(measured.allSatisfy { $0.ms > 0 })
        let result = try await Self.verify(core, session: "a", draft: [1, 2, 3])
        let curve = try #require(result.timings.costCurve, "a verification result carries the cost curve")
        #expect(curve.problem == nil)
        #expect(curve.positions.first == 1 && curve.positions.count >= 8)
        #expect(zip(curve.ms, curve.ms.dropFirst()).allSatisfy { $0 <= $1 }, "the curve never falls: \(curve.ms)")
        // Four calibration passes of 8 sizes, then this batch.
        #expect(curve.samples == 4 * measured.count + 1)
        // The largest calibrated forward takes longer than one position.
        #expect(curve.ms[curve.positions.firstIndex(of: 16)!] > curve.ms[0])
    }

    @Test func withoutCalibrationTheCurveStartsAtTheFirstBatch() async throws {
        let (core, _) = try await VerifierDecodeStepsTests.core()
        defer { core.shutdown() }
        #expect(try await core.calibrate(maxPositions: 0).isEmpty)
        let result = try await Self.verify(core, session: "b")
        #expect(result.timings.costCurve?.samples == 1)
    }
}
