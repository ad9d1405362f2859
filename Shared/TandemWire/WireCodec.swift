import Foundation

/// Turns envelopes into frames and back. Decoding never traps: any failure is a ``WireError``.
///
/// Frame layout (little endian): `"T" "W"`, format byte (1 = JSON), 4-byte body length,
/// 4-byte CRC-32 of the body, then the body.
public enum WireCodec {
    static let magic: (UInt8, UInt8) = (0x54, 0x57)  // "TW"
    static let formatJSON: UInt8 = 1
    public static let headerSize = 11
    /// Frames larger than this are refused before any allocation (a 64k-token prompt is ~0.5 MB of JSON).
    public static let maxBodySize = 64 << 20

    public static func encode(_ envelope: Envelope) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        // Every type in the schema is plain data: encoding cannot fail except for a programming error.
        let body: Data
        do {
            body = try encoder.encode(envelope)
        } catch {
            preconditionFailure("wire schema type failed to encode: \(error)")
        }
        var out = [UInt8]()
        out.reserveCapacity(headerSize + body.count)
        out.append(magic.0)
        out.append(magic.1)
        out.append(formatJSON)
        appendLE(UInt32(body.count), to: &out)
        appendLE(CRC32.checksum(body), to: &out)
        out.append(contentsOf: body)
        return out
    }

    public static func encode(_ message: WireMessage) -> [UInt8] { encode(Envelope(message)) }

    public static func decode<C: Collection>(_ bytes: C) throws(WireError) -> Envelope where C.Element == UInt8 {
        let frame = Array(bytes)
        guard frame.count >= headerSize else {
            throw .truncated(expected: headerSize, actual: frame.count)
        }
        guard frame[0] == magic.0, frame[1] == magic.1 else { throw .corrupted("bad magic bytes") }
        guard frame[2] == formatJSON else { throw .corrupted("unknown frame format \(frame[2])") }
        let length = Int(readLE(frame, at: 3))
        guard length <= maxBodySize else { throw .corrupted("declared body length \(length) exceeds the limit") }
        let actual = frame.count - headerSize
        guard actual >= length else { throw .truncated(expected: headerSize + length, actual: frame.count) }
        guard actual == length else { throw .corrupted("\(actual - length) trailing bytes after the body") }
        let body = frame[headerSize...]
        guard CRC32.checksum(body) == readLE(frame, at: 7) else { throw .corrupted("checksum mismatch") }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(Envelope.self, from: Data(body))
        } catch let error as WireError {
            throw error
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw .malformed("missing field '\(path(ctx.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw .malformed("wrong type at '\(path(ctx.codingPath))': \(ctx.debugDescription)")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw .malformed("null at '\(path(ctx.codingPath))'")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw .malformed("invalid JSON at '\(path(ctx.codingPath))': \(ctx.debugDescription)")
        } catch {
            throw .malformed("\(error)")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    private static func appendLE(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func readLE(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << UInt32(8 * i) }
        return v
    }
}
