import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TandemServing

extension ModelShipping.Listing: ResponseEncodable {}

extension Gateway {
    /// `GET /v1/tandem/models` (the models the cluster can ship to drafters) and `GET`/`HEAD`
    /// `/v1/tandem/models/{name}` (one model's bytes; `Range` for resuming, `ETag` = its sha256).
    /// docs/model-shipping.md.
    func addModelRoutes(to router: Router<BasicRequestContext>) {
        guard let shelf else { return }
        router.get(RouterPath(ModelShipping.listPath)) { _, _ -> Response in
            await self.respond {
                do {
                    return self.json(try await shelf.listing())
                } catch {
                    throw GatewayError.internalError("cannot list the model store: \(error)")
                }
            }
        }
        router.get(RouterPath(ModelShipping.listPath + "/{name}")) { request, context -> Response in
            await self.respond { try await self.modelFile(request, context: context, shelf: shelf, head: false) }
        }
        router.head(RouterPath(ModelShipping.listPath + "/{name}")) { request, context -> Response in
            await self.respond { try await self.modelFile(request, context: context, shelf: shelf, head: true) }
        }
    }

    private func modelFile(_ request: Request, context: BasicRequestContext, shelf: ModelShelf,
                           head: Bool) async throws -> Response {
        let name = context.parameters.get("name")?.removingPercentEncoding ?? ""
        let lookup: ModelShelf.Lookup
        do {
            lookup = try await shelf.lookup(name)
        } catch {
            throw GatewayError.internalError("cannot read the model store: \(error)")
        }
        switch lookup {
        case .notFound:
            throw GatewayError.modelNotFound(name)
        case .preparing(let retryAfter):
            throw GatewayError(status: .serviceUnavailable, type: "server_error", code: "model_preparing",
                               message: "The model '\(name)' is being prepared; retry after \(retryAfter) s",
                               retryAfter: retryAfter)
        case .failed(let why):
            throw GatewayError.internalError(why)
        case .ready(let entry, let url):
            guard let size = entry.bytes, let sha = entry.sha256 else {
                throw GatewayError.internalError("the model '\(name)' has no size or digest")
            }
            let etag = "\"\(sha)\""
            var headers: HTTPFields = [.contentType: "application/octet-stream", .eTag: etag, .acceptRanges: "bytes"]
            headers[.contentDisposition] = "attachment; filename=\"\(entry.file)\""
            if let match = request.headers[.ifNoneMatch], match == etag || match == "*" {
                return Response(status: .notModified, headers: headers)
            }
            var range = ByteRange.parse(request.headers[.range], size: size)
            // A resumed download whose copy is of another version gets the whole file (RFC 9110 §13.1.5).
            if let ifRange = request.headers[.ifRange], ifRange != etag { range = .full }
            let body: ClosedRange<Int64>
            var status = HTTPResponse.Status.ok
            switch range {
            case .unsatisfiable:
                var error = errorResponse(GatewayError(
                    status: .rangeNotSatisfiable, type: "invalid_request_error", code: "range_not_satisfiable",
                    message: "the range \(request.headers[.range] ?? "") is outside the file's \(size) bytes"))
                error.headers[.contentRange] = "bytes */\(size)"
                return error
            case .full:
                guard size > 0 else {
                    headers[.contentLength] = "0"
                    return Response(status: .ok, headers: headers)
                }
                body = 0...(size - 1)
            case .partial(let r):
                body = r
                status = .partialContent
                headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(size)"
            }
            let length = body.upperBound - body.lowerBound + 1
            if head {
                headers[.contentLength] = "\(length)"
                return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(length)) { _ in })
            }
            let file = try await FileIO().loadFile(path: url.path, range: Int(body.lowerBound)...Int(body.upperBound),
                                                   context: context)
            return Response(status: status, headers: headers, body: file)
        }
    }
}

/// A `Range: bytes=…` header against a file of `size` bytes (RFC 9110 §14): one range is served
/// (`206`); a header that is not a single byte range is ignored (the whole file, `200`), as the RFC
/// allows; a range starting past the end is `416`.
enum ByteRange: Equatable, Sendable {
    case full
    case partial(ClosedRange<Int64>)
    case unsatisfiable

    static func parse(_ header: String?, size: Int64) -> ByteRange {
        guard let header = header?.trimmingCharacters(in: .whitespaces), header.lowercased().hasPrefix("bytes=") else {
            return .full
        }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .full }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            // Suffix range: the last N bytes.
            guard let n = Int64(last), n >= 0 else { return .full }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .partial(max(0, size - n)...(size - 1))
        }
        guard let start = Int64(first), start >= 0 else { return .full }
        let end: Int64
        if last.isEmpty {
            end = size - 1
        } else {
            guard let e = Int64(last), e >= start else { return .full }
            end = min(e, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .partial(start...end)
    }
}
