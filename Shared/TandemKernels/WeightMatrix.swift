/// A weight matrix in its GGUF layout: `rows` output features, each row holding `cols` input
/// features (ggml `ne0`) stored as consecutive blocks; rows are contiguous.
///
/// `data` usually points into a memory-mapped model file: no copy is made, so the owner of the
/// mapping must outlive every `WeightMatrix` that refers to it (hence `@unchecked Sendable`:
/// the memory is immutable once mapped).
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer
    /// The same weights in the row-interleaved layout of `WeightPacking` (8 rows per group), when
    /// the matrix has been packed. `MatMul` then reads only this copy; `data` stays valid for
    /// row lookups (token embeddings) and dequantization.
    public let packed: UnsafeRawPointer?

    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, packed: UnsafeRawPointer? = nil) {
        precondition(cols % type.blockSize == 0, "cols \(cols) not a multiple of block size \(type.blockSize)")
        precondition(packed == nil || WeightPacking.hasLayout(type, rows: rows), "\(type.name) matrix cannot be packed")
        self.type = type
        self.rows = rows
        self.cols = cols
        self.data = data
        self.packed = packed
    }

    /// This matrix with its packed copy at `packed` (filled by `WeightPacking.pack`).
    public func withPacked(_ packed: UnsafeRawPointer) -> WeightMatrix {
        WeightMatrix(type: type, rows: rows, cols: cols, data: data, packed: packed)
    }

    /// Bytes occupied by one row.
    @inlinable
    public var rowBytes: Int { (cols / type.blockSize) * type.bytesPerBlock }

    /// Total bytes of the matrix.
    @inlinable
    public var byteCount: Int { rowBytes * rows }

    /// Start of row `r`.
    @inlinable
    public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }
}
