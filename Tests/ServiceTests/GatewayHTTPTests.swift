import Foundation
@testable import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TandemEngine
import TandemWire
import Testing

/// The gateway's HTTP behaviour, in process: the application `GatewayCommand` runs (`buildApplication`)
/// driven with Hummingbird's test client, over a real session manager, registry and control socket,
/// with fake replicas (``InProcessGateway``). Whole-cluster behaviour with real models (output identity,
/// failover, shutdown) stays in the process tests (`ServingTests`, `FailoverTests`, ...).
@Suite(.timeLimit(.minutes(2)))
struct GatewayHTTPTests {
    /// Checks an OpenAI-style error: the status, and a body `{"error": {"message", "type", "param", "code"}}`
    /// with exactly these four keys (`param`/`code` may be null) and the expected values.
    func expectError(_ r: TestResponse, _ status: HTTPResponse.Status, type: String = "invalid_request_error",
                     code: String? = "invalid_value", param: String?, _ what: Comment,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "\(what): \(r.status) \(r.text.prefix(300))", sourceLocation: sourceLocation)
        #expect(r.headers[.contentType] == "application/json", "\(what)", sourceLocation: sourceLocation)
        guard let error = r.json?["error"] as? [String: Any] else {
            Issue.record("\(what): no OpenAI error body in \(r.text.prefix(300))", sourceLocation: sourceLocation)
            return
        }
        #expect(Set(error.keys) == ["message", "type", "param", "code"], "\(what)", sourceLocation: sourceLocation)
        #expect((error["message"] as? String)?.isEmpty == false, "\(what)", sourceLocation: sourceLocation)
        #expect(error["type"] as? String == type, "\(what)", sourceLocation: sourceLocation)
        #expect(error["code"] as? String == code, "\(what): code", sourceLocation: sourceLocation)
        #expect(error["param"] as? String == param, "\(what): param", sourceLocation: sourceLocation)
    }

    static var hi: [String: Any] { ["messages": [["role": "user", "content": "hi"]]] }

    @Test func operationalRoutesAnswer() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.addDrafter("d2")
        try await g.test { client in
            let health = try await client.get("/health")
            #expect(health.status == .ok)
            #expect(health.json?["status"] as? String == "ok")
            #expect(health.json?["alive"] as? [String: Int] == ["verifier": 1, "drafter-agent": 2])

            let models = try await client.get("/v1/models")
            #expect(models.status == .ok)
            let data = try #require(models.json?["data"] as? [[String: Any]])
            #expect(data.count == 1 && data.first?["id"] as? String == InProcessGateway.modelName)
            #expect(data.first?["object"] as? String == "model")

            let cluster = try await client.get("/v1/cluster")
            #expect(cluster.status == .ok)
            let ids = (cluster.json?["replicas"] as? [[String: Any]])?
                .compactMap { ($0["registration"] as? [String: Any])?["replicaID"] as? String }
            #expect(ids.map(Set.init) == ["v1", "d1", "d2"])

            let metrics = try await client.get("/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            #expect(metrics.text.contains("tandem_spec_decode_num_draft_tokens"))

            #expect(try await client.get("/v1/nothing-here").status == .notFound)
        }
    }

    /// Each bad request gets its exact status and OpenAI error, and the gateway keeps serving afterwards.
    /// (This was a process test that started a whole cluster, in `ServingTests`.)
    @Test func badInputGetsOpenAIStyleErrorsAndTheGatewayKeepsServing() async throws {
        let g = try InProcessGateway(contextLength: 64, maxBodyBytes: 1 << 20)
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            let chat = "/v1/chat/completions", completions = "/v1/completions"
            expectError(try await client.post(chat, raw: Array("{not json".utf8)), .badRequest, param: nil, "malformed JSON")
            expectError(try await client.post(completions, raw: Array(#"{"prompt":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)),
                        .badRequest, param: "prompt", "invalid UTF-8 in the prompt")
            var garbage = [UInt8](repeating: 0, count: 1 << 19)
            for i in garbage.indices { garbage[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
            expectError(try await client.post(chat, raw: garbage), .badRequest, param: nil, "512 KB of garbage")
            expectError(try await client.post(chat, raw: [UInt8](repeating: 0x20, count: (1 << 20) + 1)),
                        .contentTooLarge, code: "body_too_large", param: nil, "a body over the limit")
            expectError(try await client.post(chat, ["model": "gpt-17", "messages": [["role": "user", "content": "x"]]]),
                        .notFound, code: "model_not_found", param: "model", "unknown model")
            expectError(try await client.post(completions, ["prompt": [Int32](repeating: 72, count: 100)]),
                        .contentTooLarge, code: "context_length_exceeded", param: "messages", "prompt longer than the context")
            expectError(try await client.post(completions, ["max_tokens": 4]), .badRequest, param: "prompt", "no prompt")
            expectError(try await client.post(chat, ["messages": []]), .badRequest, param: "messages", "no messages")
            expectError(try await client.post(chat, ["messages": [["role": "robot", "content": "x"]]]),
                        .badRequest, param: "messages", "unknown role")
            let invalid: [(String, [String: Any], String)] = [
                ("temperature", ["temperature": -1], "negative temperature"),
                ("temperature", ["temperature": 5], "temperature above 2"),
                ("temperature", ["temperature": "hot"], "temperature of the wrong type"),
                ("top_p", ["top_p": 0], "top_p 0"),
                ("top_k", ["top_k": -2], "top_k -2"),
                ("min_p", ["min_p": 1.5], "min_p above 1"),
                ("repetition_penalty", ["repetition_penalty": 0], "repetition_penalty 0"),
                ("max_tokens", ["max_tokens": 0], "max_tokens 0"),
                ("max_tokens", ["max_tokens": -3], "negative max_tokens"),
                ("max_tokens", ["max_tokens": 64], "max_tokens past the context"),
                ("max_tokens", ["max_completion_tokens": 0], "max_completion_tokens 0"),
                ("n", ["n": 2], "n = 2"),
                ("stop", ["stop": ["a", "b", "c", "d", "e"]], "five stop strings"),
                ("stop", ["stop": [""]], "an empty stop string"),
                ("k", ["k": 17], "k above 16"),
                ("tandem_mode", ["tandem_mode": "turbo"], "unknown tandem_mode"),
                ("slo_ttft_ms", ["slo_ttft_ms": 0], "zero TTFT SLO"),
                ("slo_tpot_ms", ["slo_tpot_ms": -5], "negative TPOT SLO"),
                ("tandem_device", ["tandem_device": String(repeating: "x", count: 129)], "a device id of 129 characters"),
            ]
            for (param, fields, what) in invalid {
                expectError(try await client.post(completions, fields.merging(["prompt": "x"]) { $1 }),
                            .badRequest, param: param, "\(what) (completions)")
                expectError(try await client.post(chat, fields.merging(Self.hi) { $1 }),
                            .badRequest, param: param, "\(what) (chat)")
            }
            // Header and body naming different devices.
            expectError(try await client.post(completions, ["prompt": "x", "tandem_device": "a"],
                                              headers: [HTTPField.Name("X-Tandem-Device")!: "b"]),
                        .badRequest, param: "tandem_device", "X-Tandem-Device and tandem_device differ")

            // Still serving.
            let ok = try await client.post(completions, ["prompt": "Hi", "max_tokens": 5, "temperature": 0])
            #expect(ok.status == .ok, "\(ok.text)")
            #expect((ok.json?["choices"] as? [[String: Any]])?.first?["text"] as? String == "Hello")
            let models = try await client.get("/v1/models")
            #expect(models.status == .ok && (models.json?["data"] as? [Any])?.count == 1)
            let metrics = try await client.get("/metrics")
            #expect(metrics.status == .ok && metrics.text.contains("tandem_spec_decode_num_draft_tokens"))
        }
    }

    /// The frontend as `GatewayCommand` makes it, from a GGUF file (the synthetic target model): the
    /// model answers to its name, file name and path, and its context length bounds prompts.
    @Test func aFrontendFromAGGUFFileServesItsNamesAndContext() async throws {
        let pair = try await SyntheticPair.make()
        let g = try InProcessGateway(model: pair.target)
        let file = URL(fileURLWithPath: pair.target)
        let stem = file.deletingPathExtension().lastPathComponent
        #expect(g.gateway.frontend.modelName == stem)
        #expect(g.gateway.frontend.contextLength == 2048)
        try await g.test { client in
            let models = try await client.get("/v1/models")
            #expect((models.json?["data"] as? [[String: Any]])?.map { $0["id"] as? String } == [stem])
            expectError(try await client.post("/v1/completions", ["prompt": [Int32](repeating: 72, count: 2100)]),
                        .contentTooLarge, code: "context_length_exceeded", param: "messages", "prompt longer than the context")
            expectError(try await client.post("/v1/completions", ["prompt": [72], "max_tokens": 2048]),
                        .badRequest, param: "max_tokens", "max_tokens past the context")
            expectError(try await client.post("/v1/completions", ["prompt": [72], "model": "gpt-17"]),
                        .notFound, code: "model_not_found", param: "model", "unknown model")
            // Every served name passes validation and reaches placement (no replicas here: 503).
            for name in [stem, file.lastPathComponent, pair.target] {
                expectError(try await client.post("/v1/completions", ["prompt": [72], "model": name]),
                            .serviceUnavailable, type: "server_error", code: "no_capacity", param: nil, "model \(name)")
            }
        }
    }

    @Test func anAPIKeyGuardsTheV1Routes() async throws {
        let g = try InProcessGateway(apiKey: "sekret")
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            expectError(try await client.get("/v1/models"), .unauthorized, code: "invalid_api_key", param: nil, "no key")
            expectError(try await client.get("/v1/models", headers: [.authorization: "Bearer wrong"]),
                        .unauthorized, code: "invalid_api_key", param: nil, "wrong key")
            expectError(try await client.get("/v1/models", headers: [.authorization: "sekret"]),
                        .unauthorized, code: "invalid_api_key", param: nil, "key without Bearer")
            expectError(try await client.post("/v1/completions", ["prompt": "Hi"]),
                        .unauthorized, code: "invalid_api_key", param: nil, "completion without a key")
            #expect(try await client.get("/v1/models", headers: [.authorization: "Bearer sekret"]).status == .ok)
            let served = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 2],
                                               headers: [.authorization: "Bearer sekret"])
            #expect(served.status == .ok, "\(served.text)")
            // Operators' routes stay open.
            #expect(try await client.get("/health").status == .ok)
            #expect(try await client.get("/metrics").status == .ok)
        }
    }

    @Test func aDeviceKeyAloneMayNameItsDevice() async throws {
        let keys = ["phone-1": "key-of-phone-one-0001", "phone-2": "key-of-phone-two-0002"]
        let g = try InProcessGateway(apiKey: "shared-key", deviceKeys: keys)
        try await g.addVerifier("v1")
        try await g.addDrafter("d1", devices: ["phone-1"])
        try await g.addDrafter("d2", devices: ["phone-2", "phone-3"])
        try await g.test { client in
            let device = HTTPField.Name("X-Tandem-Device")!
            func bearer(_ key: String) -> HTTPFields { [.authorization: "Bearer \(key)"] }
            // Each device key is an API key; naming nothing, it drafts on its own device.
            let own = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 2], headers: bearer(keys["phone-2"]!))
            #expect(own.status == .ok, "\(own.text)")
            #expect((own.json?["tandem"] as? [String: Any])?["device"] as? String == "phone-2")
            // Another device's key, or the shared key, cannot name a device that has a key of its own.
            var headers = bearer(keys["phone-2"]!)
            headers[device] = "phone-1"
            expectError(try await client.post("/v1/completions", ["prompt": "Hi"], headers: headers),
                        .forbidden, code: "device_forbidden", param: "tandem_device", "phone-2's key names phone-1")
            expectError(try await client.post("/v1/chat/completions", Self.hi.merging(["tandem_device": "phone-1"]) { $1 },
                                              headers: bearer("shared-key")),
                        .forbidden, code: "device_forbidden", param: "tandem_device", "shared key names phone-1")
            // A device key is bound to its device even where the other device has no key.
            headers[device] = "phone-3"
            expectError(try await client.post("/v1/completions", ["prompt": "Hi"], headers: headers),
                        .forbidden, code: "device_forbidden", param: "tandem_device", "phone-2's key names phone-3")
            // The right key names its device; the shared key still names keyless devices and none.
            headers = bearer(keys["phone-1"]!)
            headers[device] = "phone-1"
            #expect(try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 2], headers: headers).status == .ok)
            headers = bearer("shared-key")
            headers[device] = "phone-3"
            #expect(try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 2], headers: headers).status == .ok)
            #expect(try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 2], headers: bearer("shared-key")).status == .ok)
            expectError(try await client.get("/v1/models", headers: bearer("key-of-phone-one-000")),
                        .unauthorized, code: "invalid_api_key", param: nil, "a prefix of a device key")
        }
    }

    @Test func devicesArePlacedOnTheirDrafterAndAnUnknownDeviceIsA404() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1", devices: ["phone-1"])
        try await g.addDrafter("d2", devices: ["phone-2", "phone-3"])
        try await g.test { client in
            let device = HTTPField.Name("X-Tandem-Device")!
            expectError(try await client.post("/v1/completions", ["prompt": "Hi"], headers: [device: "phone-9"]),
                        .notFound, code: "device_not_found", param: "tandem_device", "unknown device (header)")
            expectError(try await client.post("/v1/chat/completions", Self.hi.merging(["tandem_device": "phone-9"]) { $1 }),
                        .notFound, code: "device_not_found", param: "tandem_device", "unknown device (body)")
            for (name, drafter) in [("phone-3", "d2"), ("phone-1", "d1")] {
                let r = try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 3], headers: [device: name])
                #expect(r.status == .ok, "\(r.text)")
                let tandem = r.json?["tandem"] as? [String: Any]
                #expect(tandem?["drafter"] as? String == drafter && tandem?["device"] as? String == name)
            }
            // A known device whose drafter is dead: 503, not 404.
            await g.gateway.registry.markDead("d1")
            expectError(try await client.post("/v1/completions", ["prompt": "Hi"], headers: [device: "phone-1"]),
                        .serviceUnavailable, type: "server_error", code: "no_capacity", param: nil, "dead device drafter")
        }
    }

    @Test func noLiveVerifierIsA503() async throws {
        let g = try InProcessGateway()
        try await g.addDrafter("d1")
        try await g.test { client in
            let r = try await client.post("/v1/completions", ["prompt": "Hi"])
            expectError(r, .serviceUnavailable, type: "server_error", code: "no_capacity", param: nil, "no verifier at all")
            #expect((r.json?["error"] as? [String: Any])?["message"] as? String == "no live verifier; try again later")
        }
        let dead = try InProcessGateway()
        try await dead.addVerifier("v1")
        try await dead.addDrafter("d1")
        try await dead.test { client in
            #expect(try await client.post("/v1/completions", ["prompt": "Hi", "max_tokens": 1]).status == .ok)
            await dead.gateway.registry.markDead("v1")
            expectError(try await client.post("/v1/chat/completions", Self.hi), .serviceUnavailable, type: "server_error",
                        code: "no_capacity", param: nil, "the only verifier died")
            let health = try await client.get("/health")
            #expect(health.json?["alive"] as? [String: Int] == ["drafter-agent": 1])
        }
    }

    /// A completion through the whole gateway: placement on the fake verifier and drafter, token reports
    /// over the control socket, detokenization, usage and Tandem statistics, session close on both replicas.
    @Test func aCompletionIsServedEndToEnd() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            let cut = try await client.post("/v1/completions", ["prompt": "abc", "max_tokens": 5, "temperature": 0])
            #expect(cut.status == .ok, "\(cut.text)")
            let body = try #require(cut.json)
            #expect(body["object"] as? String == "text_completion")
            #expect(body["model"] as? String == InProcessGateway.modelName)
            #expect((body["id"] as? String)?.hasPrefix("cmpl-") == true)
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect(choice["text"] as? String == "Hello" && choice["finish_reason"] as? String == "length")
            #expect(body["usage"] as? [String: Int] == ["prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8])
            let tandem = try #require(body["tandem"] as? [String: Any])
            // Two rounds (4 + 1 tokens), 4 drafted and 3 accepted each: the last report's statistics.
            #expect(tandem["rounds"] as? Int == 2 && tandem["drafted"] as? Int == 8 && tandem["accepted"] as? Int == 6)
            #expect(tandem["verifier"] as? String == "v1" && tandem["drafter"] as? String == "d1")
            #expect(tandem["mode"] as? String == "coupled")
            #expect(try await g.waitForCloses(["v1", "d1"]) == ["v1", "d1"])

            let whole = try await client.post("/v1/chat/completions", Self.hi.merging(["max_tokens": 50]) { $1 })
            #expect(whole.status == .ok, "\(whole.text)")
            let chatChoice = try #require((whole.json?["choices"] as? [[String: Any]])?.first)
            #expect((chatChoice["message"] as? [String: Any])?["content"] as? String == InProcessGateway.reply)
            #expect((chatChoice["message"] as? [String: Any])?["role"] as? String == "assistant")
            #expect(chatChoice["finish_reason"] as? String == "stop")
            #expect(whole.json?["object"] as? String == "chat.completion")
            let usage = try #require(whole.json?["usage"] as? [String: Int])
            let rendered = g.gateway.frontend.chatTemplate.render(messages: [ChatMessage(role: "user", content: "hi")],
                                                                  addGenerationPrompt: true)
            #expect(usage["prompt_tokens"] == g.vocabulary.tokenizer.encode(rendered, parseSpecial: true).count)
            #expect(usage["completion_tokens"] == InProcessGateway.reply.utf8.count)

            // The session manager's counters, served on /metrics: 8 + 16 drafted tokens (2 and 4 rounds).
            let metrics = try await client.get("/metrics").text
            #expect(metrics.contains("tandem_spec_decode_num_draft_tokens 24"), "\(metrics)")
            #expect(metrics.contains("tandem_generation_tokens_total 18"))
        }
    }

    @Test func aStreamedCompletionEndsWithUsageAndDone() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            let r = try await client.post("/v1/chat/completions", Self.hi.merging(["stream": true, "max_tokens": 9]) { $1 })
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "text/event-stream")
            let events = r.events
            #expect(events.last == "[DONE]")
            let chunks = events.dropLast().compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
            #expect(chunks.count == events.count - 1, "every event but [DONE] is JSON: \(events)")
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
            #expect(Set(chunks.compactMap { $0["id"] as? String }).count == 1, "one id for the whole stream")
            let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
            #expect(deltas.first?["role"] as? String == "assistant")
            #expect(deltas.compactMap { $0["content"] as? String }.joined() == "Hello, wo")
            let last = try #require(chunks.last)
            #expect((last["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "length")
            let usage = try #require(last["usage"] as? [String: Int])
            #expect(usage["completion_tokens"] == 9 && usage["total_tokens"] == usage["prompt_tokens"].map { $0 + 9 })
            #expect(chunks.dropLast().allSatisfy { $0["usage"] == nil }, "usage only on the final chunk")

            let plain = try await client.post("/v1/completions", [
                "prompt": "abc", "stream": true, "stream_options": ["include_usage": false],
            ])
            let plainEvents = plain.events
            #expect(plainEvents.last == "[DONE]")
            let plainChunks = plainEvents.dropLast().compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
            // The completions default of 16 tokens is more than the reply: it ends with `stop`.
            #expect(plainChunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined()
                        == InProcessGateway.reply)
            #expect((plainChunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "stop")
            #expect(plainChunks.allSatisfy { $0["usage"] == nil }, "include_usage false")
        }
    }

    /// The gateway ends the text at a stop string completed across tokens, whatever the drafter reports
    /// after it: streamed and non-streamed alike, `finish_reason` "stop", usage counting up to the token
    /// that completed the stop string. (This was a process test on a whole cluster, `StopStringServingTests`:
    /// the drafter ignores stop strings, so where the text ends was the gateway's decision there too.)
    @Test func aStopStringCutsStreamedAndNonStreamedOutputAlike() async throws {
        let pieces = ["Hello S", "TO", "P and more", "tail"]
        let g = try InProcessGateway(extraTokens: pieces)
        try await g.addVerifier("v1")
        try await g.addDrafter("d1", reply: (pieces + ["tail"]).map { g.vocabulary.id($0) })
        try await g.test { client in
            for path in ["/v1/completions", "/v1/chat/completions"] {
                let chat = path.contains("chat")
                var body: [String: Any] = ["max_tokens": 20, "stop": ["STOP", "\u{1}never"]]
                body[chat ? "messages" : "prompt"] = chat ? [["role": "user", "content": "hi"]] : "abc" as Any
                let whole = try await client.post(path, body)
                #expect(whole.status == .ok, "\(whole.text)")
                let choice = (whole.json?["choices"] as? [[String: Any]])?.first
                let text = chat ? (choice?["message"] as? [String: Any])?["content"] as? String : choice?["text"] as? String
                #expect(text == "Hello ", "\(path)")
                #expect(choice?["finish_reason"] as? String == "stop")
                #expect((whole.json?["usage"] as? [String: Int])?["completion_tokens"] == 3, "up to the stopping token")

                body["stream"] = true
                body["stream_options"] = ["include_usage": true]
                let events = try await client.post(path, body).events
                #expect(events.last == "[DONE]")
                let chunks = events.dropLast().compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
                }
                let streamed = chunks.compactMap { chunk -> String? in
                    let c = (chunk["choices"] as? [[String: Any]])?.first
                    return chat ? (c?["delta"] as? [String: Any])?["content"] as? String : c?["text"] as? String
                }.joined()
                #expect(streamed == "Hello ", "\(path) streamed")
                #expect((chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String == "stop")
                #expect((chunks.last?["usage"] as? [String: Int])?["completion_tokens"] == 3)
            }
            // The drafter was told the stop strings (it stops drafting there; the gateway decides).
            #expect(g.sent.starts.withLock { $0.map(\.stop) } == Array(repeating: ["STOP", "\u{1}never"], count: 4))
        }
    }

    /// Every sampling and Tandem field of a request reaches the replicas as the wire messages carry it.
    @Test func requestFieldsReachTheReplicas() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            let r = try await client.post("/v1/completions", [
                "prompt": "abcd", "max_tokens": 7, "temperature": 0.5, "top_k": 40, "top_p": 0.75, "min_p": 0.25,
                "repetition_penalty": 1.5, "seed": -1, "k": 3, "stop": ["zz"], "tandem_mode": "exact",
                "slo_ttft_ms": 500, "slo_tpot_ms": 40,
            ])
            #expect(r.status == .ok, "\(r.text)")
            let start = try #require(g.sent.starts.withLock { $0.first })
            let open = try #require(g.sent.opens.withLock { $0.first })
            let prompt = "abcd".utf8.map { g.vocabulary.id([$0]) }
            let sampling = WireSampling(temperature: 0.5, topK: 40, topP: 0.75, minP: 0.25, repetitionPenalty: 1.5,
                                        seed: UInt64.max)
            #expect(start.promptTokens == prompt && start.generated.isEmpty)
            #expect(start.sampling == sampling && open.sampling == sampling)
            #expect(start.maxTokens == 7 && start.k == 3 && start.stop == ["zz"])
            #expect(start.mode == .exact && open.mode == .exact)
            #expect(start.slo.ttftMs == 500 && start.slo.tpotMs == 40 && open.slo == start.slo)
            #expect(start.verifierID == "v1" && start.verifierEndpoint == "tcp://127.0.0.1:1")
            #expect(open.session == start.session && open.tokens == prompt && open.promptLength == 4)
            #expect(open.capacity == 4 + 7 + 16)
            #expect((r.json?["tandem"] as? [String: Any])?["mode"] as? String == "exact")

            // Centralized serving: coupled verification with no drafting (K = 0).
            let central = try await client.post("/v1/completions", ["prompt": "abcd", "max_tokens": 2,
                                                                     "tandem_mode": "centralized"])
            #expect(central.status == .ok)
            let second = try #require(g.sent.starts.withLock { $0.last })
            #expect(second.mode == .coupled && second.k == 0)
            #expect((central.json?["tandem"] as? [String: Any])?["mode"] as? String == "centralized")
        }
    }

    /// The official `openai` Python client against the gateway served on a port in this process: models,
    /// a chat completion and the same one streamed. (This was a whole-cluster process test in
    /// `FailoverTests`, which needed SmolLM2 downloaded; only the client is a process here.)
    @Test func officialOpenAIPythonClientWorks() async throws {
        let g = try InProcessGateway()
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test(.live) { client in
            let port = try #require(client.port)
            let (status, data) = try await runProcess(
                ["python3", referenceDirectory.appendingPathComponent("openai_client_check.py").path,
                 "http://localhost:\(port)/v1"],
                mergeStandardError: true)
            let output = String(decoding: data, as: UTF8.self)
            #expect(status == 0, "\(output)")
            #expect(output.contains("OK non-stream: 'Hello, world!'") && output.contains("OK stream: 'Hello, world!'"),
                    "\(output)")
        }
    }

    @Test func moreSessionsThanAllowedAreA429WithRetryAfter() async throws {
        let g = try InProcessGateway(maxSessions: 0)
        try await g.addVerifier("v1")
        try await g.addDrafter("d1")
        try await g.test { client in
            let r = try await client.post("/v1/completions", ["prompt": "Hi"])
            expectError(r, .tooManyRequests, type: "rate_limit_error", code: "rate_limit_exceeded", param: nil, "at capacity")
            #expect(r.headers[.retryAfter] == "1")
        }
    }
}
