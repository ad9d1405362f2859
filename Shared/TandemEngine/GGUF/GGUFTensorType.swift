import TandemKernels

/// The ggml element type of a tensor stored in a GGUF file.
///
/// It is the kernels' ``GGMLType`` (raw values are ggml's `ggml_type` numbers as written in the
/// file): one definition of block geometry serves both validating a file and multiplying its weights.
public typealias GGUFTensorType = GGMLType

extension GGMLType: CustomStringConvertible {
    /// Bytes of one row of `elements` elements (a multiple of `blockSize`).
    public func rowBytes(_ elements: Int) -> Int { elements / blockSize * bytesPerBlock }

    /// The type's name as llama.cpp prints it (`Q4_K`, `F32`, ...).
    public var description: String { name }
}
