/// A GGUF file could not be opened or is malformed.
///
/// Every problem found while reading a file is reported as a `GGUFError` whose `message` names what is
/// wrong (which field, which tensor, which offset), so an operator can tell a truncated download from an
/// unsupported quantization without a debugger. The reader never traps on bad input.
public struct GGUFError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The broad category of the problem, for programmatic handling and tests.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened, stat'ed or memory-mapped.
        case io
        /// The first four bytes are not `GGUF`.
        case badMagic
        /// The format version is not 2 or 3.
        case unsupportedVersion
        /// The file ends before a header field, metadata value or tensor info.
        case truncated
        /// A count or length is larger than the file could possibly hold.
        case implausibleCount
        /// A metadata value has an unknown type, or a string is not valid.
        case badMetadata
        /// A tensor has zero, too many, or overflowing dimensions.
        case badDimensions
        /// A tensor uses a ggml type this reader does not support.
        case unsupportedType
        /// A tensor's data offset is not aligned, or its data lies outside the file.
        case badOffset
        /// Two tensors share a name.
        case duplicateTensor
        /// A tensor or metadata key the caller needs is missing or has the wrong shape/type.
        case missing
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "GGUF error (\(kind.rawValue)): \(message)" }
}
