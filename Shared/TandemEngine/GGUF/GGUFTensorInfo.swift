/// One tensor described in a GGUF file: its name, shape, element type and where its bytes are.
///
/// `dimensions` are in ggml order: `dimensions[0]` is the contiguous (innermost) axis. For a weight matrix
/// used as `y = W x`, `dimensions[0]` is the input width (columns) and `dimensions[1]` the output rows.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    public let dimensions: [Int]
    public let type: GGUFTensorType
    /// Offset of the tensor's data from the start of the file (already validated to lie inside it).
    public let fileOffset: Int
    /// Size of the tensor's data in bytes.
    public let byteCount: Int

    /// Total number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Elements per row (`dimensions[0]`).
    public var columns: Int { dimensions[0] }
    /// Number of rows (product of all dimensions but the first).
    public var rows: Int { dimensions.dropFirst().reduce(1, *) }
}
