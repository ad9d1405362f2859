import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TandemEngine
import TandemWire

extension Gateway {
    /// `/v1/chat/completions`, `/v1/completions`, `/v1/models`.
    func addCompletionRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/chat/completions") { request, _ -> Response in
            await self.respond {
                let body = try await self.readBody(request)
                let chat = try self.decode(ChatCompletionRequest.self, from: body)
                guard !chat.messages.isEmpty else { throw GatewayError.invalid("messages must not be empty", param: "messages") }
                let messages = try chat.messages.map { m -> ChatMessage in
                    guard ["system", "user", "assistant", "developer", "tool"].contains(m.role) else {
                        throw GatewayError.invalid("unknown role '\(m.role)'", param: "messages")
                    }
                    return ChatMessage(role: m.role == "developer" ? "system" : m.role,
                                       content: m.content?.values.joined() ?? "")
                }
                let text = self.frontend.chatTemplate.render(messages: messages, addGenerationPrompt: true)
                let tokens = self.frontend.tokenizer.encode(text, parseSpecial: true)
                var generation = try self.validate(chat.fields, promptTokens: tokens)
                generation.device = try self.device(of: request, fields: chat.fields)
                return try await self.serve(generation, fields: chat.fields, chat: true)
            }
        }
        router.post("/v1/completions") { request, _ -> Response in
            await self.respond {
                let body = try await self.readBody(request)
                let completion = try self.decode(CompletionRequest.self, from: body)
                let tokens = try CompletionPrompt.tokens(completion.prompt, tokenizer: self.frontend.tokenizer)
                var generation = try self.validate(completion.fields, promptTokens: tokens, defaultMaxTokens: 16)
                generation.device = try self.device(of: request, fields: completion.fields)
                return try await self.serve(generation, fields: completion.fields, chat: false)
            }
        }
        router.get("/v1/models") { _, _ -> Response in
            let list = ModelList(data: [ModelList.Model(id: self.frontend.modelName, created: self.frontend.created)])
            return self.json(list)
        }
    }

    // MARK: Request handling

    /// Runs `body`, turning any error into an OpenAI-style error response.
    func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as GatewayError {
            return errorResponse(error)
        } catch {
            return errorResponse(.internalError("\(error)"))
        }
    }

    func readBody(_ request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: frontend.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw GatewayError(status: .contentTooLarge, type: "invalid_request_error", code: "body_too_large",
                               message: "request body exceeds \(frontend.maxBodyBytes) bytes")
        }
    }

    func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        do {
            return try OpenAICoding.decoder().decode(T.self, from: Data(buffer: buffer))
        } catch let DecodingError.keyNotFound(key, _) {
            throw GatewayError.invalid("missing required field '\(key.stringValue)'", param: key.stringValue)
        } catch let DecodingError.typeMismatch(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw GatewayError.invalid("field '\(path)' has the wrong type", param: path)
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw GatewayError.invalid("field '\(path)': \(context.debugDescription)", param: path)
        } catch {
            throw GatewayError.invalid("request body is not valid JSON (UTF-8)")
        }
    }

    /// Checks every parameter against its range and the model's context.
    func validate(_ f: SamplingFields, promptTokens: [Int32], defaultMaxTokens: Int? = nil) throws -> GenerationRequest {
        if let model = f.model, !frontend.servedNames.contains(model) { throw GatewayError.modelNotFound(model) }
        let context = frontend.contextLength
        guard promptTokens.count < context else {
            throw GatewayError.contextTooLong(
                "This model's maximum context length is \(context) tokens; the prompt has \(promptTokens.count)")
        }
        let room = context - promptTokens.count
        let requested = f.maxCompletionTokens ?? f.maxTokens
        if let requested {
            guard requested >= 1 else { throw GatewayError.invalid("max_tokens must be at least 1", param: "max_tokens") }
            guard requested <= room else {
                throw GatewayError.invalid(
                    "max_tokens \(requested) + prompt \(promptTokens.count) tokens exceed the context of \(context)",
                    param: "max_tokens")
            }
        }
        let maxTokens = requested ?? min(room, defaultMaxTokens ?? frontend.defaultMaxTokens)
        let temperature = f.temperature ?? 1
        guard (0...2).contains(temperature) else { throw GatewayError.invalid("temperature must be in [0, 2]", param: "temperature") }
        let topP = f.topP ?? 1
        guard topP > 0, topP <= 1 else { throw GatewayError.invalid("top_p must be in (0, 1]", param: "top_p") }
        let topK = f.topK ?? 0
        guard topK >= -1 else { throw GatewayError.invalid("top_k must be -1 (off), 0 (off) or positive", param: "top_k") }
        let minP = f.minP ?? 0
        guard (0...1).contains(minP) else { throw GatewayError.invalid("min_p must be in [0, 1]", param: "min_p") }
        let penalty = f.repetitionPenalty ?? 1
        guard penalty > 0, penalty <= 10 else {
            throw GatewayError.invalid("repetition_penalty must be in (0, 10]", param: "repetition_penalty")
        }
        guard (f.n ?? 1) == 1 else { throw GatewayError.invalid("only n = 1 is supported", param: "n") }
        let stop = f.stop?.values ?? []
        guard stop.count <= 4, stop.allSatisfy({ !$0.isEmpty }) else {
            throw GatewayError.invalid("stop takes at most 4 non-empty strings", param: "stop")
        }
        if let k = f.k, !(0...16).contains(k) { throw GatewayError.invalid("k must be in 0...16", param: "k") }
        let mode = try f.tandemMode.map {
            guard let mode = ServingMode(parsing: $0) else {
                throw GatewayError.invalid(ServingMode.invalid("tandem_mode"), param: "tandem_mode")
            }
            return mode
        } ?? frontend.defaultMode
        let ttft = f.sloTtftMs ?? frontend.slo.ttftMs
        let tpot = f.sloTpotMs ?? frontend.slo.tpotMs
        guard ttft > 0 else { throw GatewayError.invalid("slo_ttft_ms must be positive", param: "slo_ttft_ms") }
        guard tpot > 0 else { throw GatewayError.invalid("slo_tpot_ms must be positive", param: "slo_tpot_ms") }
        let seed = f.seed.map { UInt64(bitPattern: $0) } ?? UInt64.random(in: 0...UInt64.max)
        return GenerationRequest(
            promptTokens: promptTokens,
            sampling: WireSampling(temperature: Float(temperature), topK: max(0, topK), topP: Float(topP),
                                   minP: Float(minP), repetitionPenalty: Float(penalty), seed: seed),
            maxTokens: maxTokens, stop: stop, slo: SLO(ttftMs: ttft, tpotMs: tpot), mode: mode,
            k: mode.draftLength(requested: f.k))
    }

    /// The device a request names: header `X-Tandem-Device`, else the body's `tandem_device`; both must agree,
    /// and a device with its own API key only with that key (a device key naming nothing names its device).
    func device(of request: Request, fields: SamplingFields) throws -> String? {
        let header = HTTPField.Name("X-Tandem-Device").flatMap { request.headers[$0] }
        if let header, let body = fields.tandemDevice, header != body {
            throw GatewayError.invalid("X-Tandem-Device '\(header)' and tandem_device '\(body)' differ", param: "tandem_device")
        }
        let device = header ?? fields.tandemDevice
        if let device, device.isEmpty || device.count > 128 {
            throw GatewayError.invalid("a device id has 1 to 128 characters", param: "tandem_device")
        }
        return try frontend.authorizedDevice(named: device, authorization: request.headers[.authorization])
    }

    // MARK: Responses

    func serve(_ generation: GenerationRequest, fields: SamplingFields, chat: Bool) async throws -> Response {
        let (id, updates) = try await sessions.start(generation)
        let created = Int(Date().timeIntervalSince1970)
        let object = chat ? "chat.completion" : "text_completion"
        if fields.stream == true {
            let includeUsage = fields.streamOptions?.includeUsage ?? true
            let manager = sessions
            let model = frontend.modelName
            let body = ResponseBody { writer in
                func send(_ data: Data) async throws {
                    var buffer = ByteBuffer(string: "data: ")
                    buffer.writeBytes(data)
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                }
                func chunk(_ choice: ChatChoice, usage: Usage? = nil, tandem: TandemStats? = nil) -> Data {
                    OpenAICoding.encode(CompletionResponse(
                        id: id, object: chat ? "chat.completion.chunk" : "text_completion", created: created,
                        model: model, choices: [choice], usage: usage, tandem: tandem))
                }
                do {
                    if chat {
                        try await send(chunk(ChatChoice(index: 0, delta: ChatMessageOut(role: "assistant", content: ""))))
                    }
                    for await update in updates {
                        switch update {
                        case .text(let text):
                            try await send(chunk(chat ? ChatChoice(index: 0, delta: ChatMessageOut(content: text))
                                                      : ChatChoice(index: 0, text: text)))
                        case .finished(let summary):
                            let usage = Usage(promptTokens: summary.promptTokens, completionTokens: summary.completionTokens,
                                              totalTokens: summary.promptTokens + summary.completionTokens)
                            let last = chat
                                ? ChatChoice(index: 0, delta: ChatMessageOut(), finishReason: summary.finishReason.rawValue)
                                : ChatChoice(index: 0, text: "", finishReason: summary.finishReason.rawValue)
                            try await send(chunk(last, usage: includeUsage ? usage : nil, tandem: TandemStats(summary)))
                        case .failed(let error):
                            try await send(OpenAICoding.encode(OpenAIErrorBody(error: .init(
                                message: error.message, type: error.type, param: error.param, code: error.code))))
                        }
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                } catch {
                    // The client went away (or the connection failed): stop the session everywhere.
                    await manager.cancel(id)
                    throw error
                }
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: body)
        }
        var text = ""
        var summary: SessionSummary?
        for await update in updates {
            switch update {
            case .text(let t): text += t
            case .finished(let s): summary = s
            case .failed(let error): throw error
            }
        }
        guard let summary else {
            await sessions.cancel(id)
            throw GatewayError.internalError("session ended without a result")
        }
        let usage = Usage(promptTokens: summary.promptTokens, completionTokens: summary.completionTokens,
                          totalTokens: summary.promptTokens + summary.completionTokens)
        let choice = chat
            ? ChatChoice(index: 0, message: ChatMessageOut(role: "assistant", content: text),
                         finishReason: summary.finishReason.rawValue)
            : ChatChoice(index: 0, text: text, finishReason: summary.finishReason.rawValue)
        return json(CompletionResponse(id: id, object: object, created: created, model: frontend.modelName,
                                       choices: [choice], usage: usage, tandem: TandemStats(summary)))
    }

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(data: OpenAICoding.encode(value))))
    }

    func errorResponse(_ error: GatewayError) -> Response {
        var response = json(OpenAIErrorBody(error: .init(message: error.message, type: error.type, param: error.param,
                                                         code: error.code)), status: error.status)
        if let retry = error.retryAfter { response.headers[.retryAfter] = "\(retry)" }
        return response
    }
}
