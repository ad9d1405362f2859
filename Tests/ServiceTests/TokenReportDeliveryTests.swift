import Foundation
@testable import DrafterAgent
@testable import Gateway
import Logging
import Synchronization
import TandemBus
import TandemEngine
import TandemService
import TandemWire
import Testing
@testable import Verifier

/// A token report counts as delivered only once the gateway acknowledged it; a lost one is repaired by the
/// next report (which carries every unacknowledged token), so the session completes with the full, right
/// text instead of hanging on a gap. In process: the real gateway session manager and control socket, a
/// verifier core and a drafter core with their control agents, and a lossy report path that drops one report.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct TokenReportDeliveryTests {
    /// Drops report number `drop` (counting from 1) as a lost message would: not delivered, no acknowledgement.
    final class LossyPath: Sendable {
        let drop: Int
        let sent = Mutex<Int>(0)
        let dropped = Mutex<[TokenReport]>([])
        init(drop: Int) { self.drop = drop }
    }

    @Test(arguments: [1, 2, 3])
    func aLostReportIsRepairedAndTheSessionCompletesWithTheFullText(drop: Int) async throws {
        var drafterConfig = DrafterCore.Configuration()
        drafterConfig.dynamic = false
        drafterConfig.defaultK = 2
        let cluster = try await InProcessSpeculativeCluster(drafter: drafterConfig)
        // The drafter's reports take the lossy path to the gateway's control socket.
        let lossy = LossyPath(drop: drop)
        let agent = cluster.drafterAgent
        cluster.drafterCore.setReportTransport { report in
            let n = lossy.sent.withLock { $0 += 1; return $0 }
            if n == lossy.drop {
                lossy.dropped.withLock { $0.append(report) }
                throw BusError.timeout(peer: nil, correlation: 0, after: .seconds(2))
            }
            _ = try await agent.endpoint.call(.tokens(report), timeout: .seconds(2))
        }
        try await cluster.start()

        let prompt: [Int32] = [72, 101, 108, 108, 111, 44, 32, 119]
        let maxTokens = 24
        let (text, summary) = try await cluster.generate(prompt: prompt, maxTokens: maxTokens)
        let expected = try cluster.targetOnly(prompt: prompt, maxTokens: maxTokens)
        let dropped = lossy.dropped.withLock { $0 }
        #expect(dropped.count == 1 && dropped.first.map { !$0.tokens.isEmpty } == true,
                "the lossy path did not drop a report with tokens")
        #expect(lossy.sent.withLock { $0 } > drop, "no report followed the dropped one")
        #expect(summary?.completionTokens == expected.count)
        #expect(text == cluster.tokenizer.decode(expected))
        await cluster.stop()
    }
}
