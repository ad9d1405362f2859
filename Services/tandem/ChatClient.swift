import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TandemService

/// A small OpenAI-protocol client for `tandem up --demo` and `tandem bench serve`: streams a chat
/// completion over SSE and measures TTFT and per-token times on the client side.
struct ChatClient: Sendable {
    let baseURL: String
    let client: HTTPClient
    var apiKey: String?

    struct Result: Sendable {
        var text = ""
        var finishReason: String?
        var completionTokens = 0
        var promptTokens = 0
        var ttft: Double?
        /// Seconds from request start to the last content chunk.
        var lastTokenAt: Double?
        var drafted = 0
        var accepted = 0
        var rounds = 0
        /// Device drafting time and the part spent on rejected drafts (ms), rounds without drafts.
        var draftMs = 0.0
        var wastedDraftMs = 0.0
        var plainRounds = 0
        /// Rounds drafted ahead during verification, and those confirmed (docs/design.md §7.4).
        var aheadDrafts = 0
        var aheadHits = 0
        var error: String?
        /// The stream ended with `data: [DONE]` (a stream cut short has not).
        var sawDone = false

        /// Mean seconds per output token after the first, as the client saw them (nil below two tokens).
        var tpot: Double? {
            guard let first = ttft, let last = lastTokenAt, completionTokens > 1 else { return nil }
            return (last - first) / Double(completionTokens - 1)
        }
    }

    /// Streams one chat request; `onText` sees each piece of text as it arrives.
    func chat(messages: [[String: String]], maxTokens: Int, temperature: Double, seed: Int?,
              extra: [String: Any] = [:], onText: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        var body: [String: Any] = ["model": NSNull(), "messages": messages, "max_tokens": maxTokens,
                                   "temperature": temperature, "stream": true,
                                   // Tandem reports usage by default; other OpenAI servers (llama-server, vLLM) when asked.
                                   "stream_options": ["include_usage": true]]
        body["model"] = nil
        if let seed { body["seed"] = seed }
        body.merge(extra) { $1 }
        var request = HTTPClientRequest(url: baseURL + "/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        // One connection per request: servers that close idle keep-alive connections early (llama-server
        // after 5 s) would otherwise fail a request sent on a pooled connection they just closed.
        request.headers.add(name: "Connection", value: "close")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.body = .bytes(ByteBuffer(bytes: Array(try JSONSerialization.data(withJSONObject: body))))
        let start = ContinuousClock.now
        let response = try await client.execute(request, timeout: .minutes(30))
        var result = Result()
        guard response.status == .ok else {
            let bytes = try await response.body.collect(upTo: 1 << 20)
            result.error = "HTTP \(response.status.code): \(String(buffer: bytes))"
            return result
        }
        var pending = ""
        for try await buffer in response.body {
            pending += String(buffer: buffer)
            while let range = pending.range(of: "\n\n") {
                let event = String(pending[..<range.lowerBound])
                pending.removeSubrange(..<range.upperBound)
                guard event.hasPrefix("data: ") else { continue }
                let payload = event.dropFirst(6)
                if payload == "[DONE]" {
                    result.sawDone = true
                    return result
                }
                guard let json = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else { continue }
                if let error = json["error"] as? [String: Any] {
                    result.error = error["message"] as? String ?? "error"
                    continue
                }
                let choice = (json["choices"] as? [[String: Any]])?.first
                if let delta = choice?["delta"] as? [String: Any], let text = delta["content"] as? String, !text.isEmpty {
                    let t = Self.seconds(ContinuousClock.now - start)
                    if result.ttft == nil { result.ttft = t }
                    result.lastTokenAt = t
                    result.text += text
                    onText(text)
                }
                if let reason = choice?["finish_reason"] as? String { result.finishReason = reason }
                if let usage = json["usage"] as? [String: Any] {
                    result.completionTokens = usage["completion_tokens"] as? Int ?? 0
                    result.promptTokens = usage["prompt_tokens"] as? Int ?? 0
                }
                if let tandem = json["tandem"] as? [String: Any] {
                    result.drafted = tandem["drafted"] as? Int ?? 0
                    result.accepted = tandem["accepted"] as? Int ?? 0
                    result.rounds = tandem["rounds"] as? Int ?? 0
                    result.draftMs = tandem["draft_ms"] as? Double ?? 0
                    result.wastedDraftMs = tandem["wasted_draft_ms"] as? Double ?? 0
                    result.plainRounds = tandem["plain_rounds"] as? Int ?? 0
                    result.aheadDrafts = tandem["ahead_drafts"] as? Int ?? 0
                    result.aheadHits = tandem["ahead_hits"] as? Int ?? 0
                }
            }
        }
        return result
    }

    static func seconds(_ d: Duration) -> Double { d.milliseconds / 1000 }
}
