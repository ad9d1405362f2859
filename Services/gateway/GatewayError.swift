import Foundation
import Hummingbird

/// An error the gateway returns to an HTTP client, in OpenAI's error shape.
struct GatewayError: Error, Sendable, CustomStringConvertible {
    var status: HTTPResponse.Status
    var type: String
    var code: String?
    var param: String?
    var message: String
    /// Seconds, for 429 (`Retry-After`).
    var retryAfter: Int?

    var description: String { "\(status.code) \(type): \(message)" }

    static func invalid(_ message: String, param: String? = nil) -> GatewayError {
        GatewayError(status: .badRequest, type: "invalid_request_error", code: "invalid_value", param: param,
                     message: message)
    }
    static func modelNotFound(_ model: String) -> GatewayError {
        GatewayError(status: .notFound, type: "invalid_request_error", code: "model_not_found", param: "model",
                     message: "The model '\(model)' does not exist or is not served here")
    }
    static func deviceNotFound(_ device: String) -> GatewayError {
        GatewayError(status: .notFound, type: "invalid_request_error", code: "device_not_found", param: "tandem_device",
                     message: "No drafter has registered the device '\(device)'")
    }
    static func deviceForbidden(_ device: String, reason: String) -> GatewayError {
        GatewayError(status: .forbidden, type: "invalid_request_error", code: "device_forbidden", param: "tandem_device",
                     message: "This API key may not use the device '\(device)': \(reason)")
    }
    static func contextTooLong(_ message: String) -> GatewayError {
        GatewayError(status: .contentTooLarge, type: "invalid_request_error", code: "context_length_exceeded",
                     param: "messages", message: message)
    }
    static func unavailable(_ message: String) -> GatewayError {
        GatewayError(status: .serviceUnavailable, type: "server_error", code: "no_capacity", message: message)
    }
    static func overloaded(retryAfter: Int) -> GatewayError {
        GatewayError(status: .tooManyRequests, type: "rate_limit_error", code: "rate_limit_exceeded",
                     message: "The server is at capacity; retry after \(retryAfter) s", retryAfter: retryAfter)
    }
    /// Every verifier that could take the session refused it for memory (`resource_exhausted`: its KV cache
    /// budget is held by active sessions; docs/protocol.md, "Admission by memory"). 429 like `overloaded`,
    /// with the soonest retry a verifier suggested.
    static func kvCacheFull(retryAfterMs: Int?) -> GatewayError {
        let seconds = max(1, ((retryAfterMs ?? 1_000) + 999) / 1_000)
        return GatewayError(status: .tooManyRequests, type: "rate_limit_error", code: kvCacheFullCode,
                            message: "The server has no KV cache memory for this request now; retry after \(seconds) s",
                            retryAfter: seconds)
    }
    static let kvCacheFullCode = "kv_cache_full"
    var isKVCacheFull: Bool { code == Self.kvCacheFullCode }

    /// No token report arrived for `seconds`: the replicas serving the session stopped making progress
    /// (a lost report, a stuck or fenced-off replica). 504 like a gateway whose upstream timed out.
    static func inactive(seconds: Double) -> GatewayError {
        GatewayError(status: .gatewayTimeout, type: "server_error", code: "session_inactive",
                     message: "No tokens were generated for \(seconds.formatted()) s; the session was ended. Try again.")
    }
    static func internalError(_ message: String) -> GatewayError {
        GatewayError(status: .internalServerError, type: "server_error", code: "internal_error", message: message)
    }
}
