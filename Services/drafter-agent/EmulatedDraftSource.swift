import Foundation
import Logging
import Synchronization
import TandemService
import TandemServing
import TandemWire

/// Emulated edge devices (docs/fleet.md): drafts come from a ``FleetTrace`` recorded with the real draft
/// model, device time from an ``EdgeDeviceProfile``. Nothing is computed and no CPU is burnt waiting:
/// a device's drafting is a sleep of the profile's time for the number of tokens drafted, and each
/// message to or from the device waits the profile's network time. One process stands for many devices;
/// each device drafts one round at a time (its sessions queue for it, as on a real device).
///
/// A session whose committed sequence leaves the trace (a prompt or sampling it was not recorded for)
/// gets no drafts (K = 0 rounds: the verifier decodes it), and is counted in `misses`: the output stays
/// right, only the speed is not that of the emulated device.
final class EmulatedDraftSource: DraftSource, @unchecked Sendable {
    let index: FleetTraceIndex
    let profile: EdgeDeviceProfile
    let devices: [String]?
    let tracePath: String
    private let clocks: [String: DeviceClock]
    private let fallbackClock = DeviceClock()
    private let eog: Set<Int32>
    private let logger: Logger
    private let counters = Mutex<(rounds: Int, misses: Int)>((0, 0))

    init(trace: FleetTrace, tracePath: String, profile: EdgeDeviceProfile, devices: [String], logger: Logger) {
        index = FleetTraceIndex(trace)
        self.profile = profile
        self.devices = devices
        self.tracePath = tracePath
        clocks = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceClock()) })
        eog = Set(trace.endOfGeneration)
        self.logger = logger
    }

    var modelName: String { index.trace.draftModel }
    var quantization: String { "trace" }
    var contextLength: Int { index.trace.contextLength }
    /// Nothing is computed from token ids here (they are only looked up in the trace): any id is accepted.
    var vocabularySize: Int { Int(Int32.max) }
    var backlog: Int { 0 }
    var attributes: [String: String] {
        ["draft_source": "emulated", "trace": tracePath, "profile": profile.name, "profile_source": profile.source]
    }

    /// Rounds served from the trace and rounds that found no recorded drafts.
    var replayCounts: (rounds: Int, misses: Int) { counters.withLock { $0 } }

    func isEndOfGeneration(_ token: Int32) -> Bool { eog.contains(token) }

    func draft(_ session: DrafterSession, _ call: DraftCall) async throws -> DraftOutput {
        let s = session.start.sampling
        var call = call
        let k = call.k
        let clock = session.start.device.flatMap { clocks[$0] } ?? fallbackClock
        guard let entry = index.entry(prompt: session.start.promptTokens),
              index.matches(temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed),
              session.start.mode == .coupled || s.temperature == 0,
              call.base.count >= session.promptLength,
              let recorded = index.drafts(entry: entry, generated: call.base[session.promptLength...]) else {
            if call.ahead != nil {
                // Drafting ahead after a draft that leaves the target's output: the trace has nothing recorded
                // there (the real model would draft tokens that cannot be used, as the verifier will reject part
                // of the draft assumed). The device spends the time all the same.
                let seconds = await clock.occupy(seconds: profile.draftSeconds(k: k))
                return DraftOutput(tokens: [], distributions: [], seconds: seconds, planned: k)
            }
            let misses = counters.withLock { c -> Int in c.misses += 1; return c.misses }
            if misses == 1 || misses % 100 == 0 {
                logger.warning("session left the trace; drafting nothing this round",
                               metadata: ["session": "\(session.start.session)", "misses": "\(misses)"])
            }
            return DraftOutput(tokens: [], distributions: [], seconds: 0, planned: k)
        }
        counters.withLock { $0.rounds += 1 }
        var tokens: [Int32] = []
        var confidences: [Float] = []
        for i in 0..<min(k, recorded.tokens.count) {
            tokens.append(recorded.tokens[i])
            confidences.append(recorded.confidences[i])
            let more = call.ahead == nil
                ? session.controller.shouldContinue(confidence: recorded.confidences[i])
                : call.aheadContinues(after: i, confidence: recorded.confidences[i])
            if !more { break }
        }
        let seconds = await clock.occupy(seconds: profile.draftSeconds(k: tokens.count))
        if seconds < profile.draftSeconds(k: tokens.count) {
            // Aborted (a draft ahead the verifier made useless): the device drafted only this far.
            var done = 0
            while done < tokens.count && profile.draftSeconds(k: done + 1) <= seconds { done += 1 }
            tokens.removeLast(tokens.count - done)
            confidences.removeLast(confidences.count - done)
        }
        return DraftOutput(tokens: tokens, distributions: [], confidences: confidences, seconds: seconds, planned: k)
    }

    /// Each emulated device drafts on its own clock; sessions naming no device share the fallback clock.
    func computeKey(_ session: DrafterSession) -> String {
        session.start.device.flatMap { clocks[$0] == nil ? nil : $0 } ?? ""
    }

    func transfer(_ session: DrafterSession, bytes: Int, up: Bool) async {
        let seconds = profile.network.oneWaySeconds(bytes: bytes, up: up)
        guard seconds > 0 else { return }
        try? await Task.sleep(for: .seconds(seconds))
    }

    func shutdown() {}
}

/// One emulated device's compute: a round of drafting occupies it for the profile's time; rounds of
/// its sessions take turns (a device drafts one thing at a time).
///
/// A draft cancelled while it waits (an aborted draft ahead) gives the device back at once if nothing was
/// queued behind it, and reports the device time it used.
actor DeviceClock {
    private var busyUntil = ContinuousClock.now

    /// Occupies the device for `seconds` after what is queued; returns the device time used (less than
    /// `seconds` when the calling task was cancelled).
    @discardableResult
    func occupy(seconds: Double) async -> Double {
        guard seconds > 0 else { return 0 }
        let start = max(ContinuousClock.now, busyUntil)
        busyUntil = start + .seconds(seconds)
        let until = busyUntil
        do {
            try await Task.sleep(until: until, clock: .continuous)
            return seconds
        } catch {
            let now = ContinuousClock.now
            if busyUntil == until { busyUntil = max(start, now) }
            let used = now > start ? now - start : .zero
            return min(seconds, used.milliseconds / 1000)
        }
    }
}
