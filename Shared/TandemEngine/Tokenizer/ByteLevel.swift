/// GPT-2's reversible mapping between bytes and printable Unicode characters.
///
/// Byte-level BPE vocabularies store every token as text in which each byte is replaced by a visible
/// character (a space becomes `Ġ`, a newline `Ċ`), so merges can be written as plain strings. Bytes that
/// are already printable Latin-1 map to themselves; the other 68 map to U+0100 onwards in byte order.
enum ByteLevel {
    /// `byteToScalar[b]` is the character that stands for byte `b` in vocabulary strings.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// Inverse of `byteToScalar`, indexed by scalar value (all mapped scalars are below 0x144).
    /// Entries that are not part of the mapping hold -1.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s)] = Int16(b) }
        return table
    }()

    /// The vocabulary spelling of a single byte.
    static func string(forByte b: UInt8) -> String {
        String(Character(Unicode.Scalar(byteToScalar[Int(b)])!))
    }

    /// Decodes a vocabulary string back to raw bytes. Characters outside the mapping (which a
    /// well-formed byte-level vocabulary never contains) are kept as their UTF-8 encoding.
    static func decode(_ text: String, into out: inout [UInt8]) {
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if v < 0x144, scalarToByte[Int(v)] >= 0 {
                out.append(UInt8(scalarToByte[Int(v)]))
            } else {
                out.append(contentsOf: String(scalar).utf8)
            }
        }
    }

    /// Encodes raw bytes into their vocabulary spelling.
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(byteToScalar[Int(b)])!) }
        return String(s)
    }
}
