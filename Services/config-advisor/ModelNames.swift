import Foundation
import TandemEngine

/// Model names as the advisor compares them.
///
/// Drafters and verifiers report a catalog name (`qwen2.5-coder-0.5b-instruct`), a file name
/// (`Qwen2.5-Coder-0.5B-Instruct.gguf`) or a path for the same model; all map to one key: the
/// catalog name when the file is in ``ModelCatalog``, else the lowercased last path component
/// without `.gguf`.
enum ModelNames {
    static func canonical(_ name: String) -> String {
        var base = Substring(name.trimmingCharacters(in: .whitespaces))
        if let slash = base.lastIndex(of: "/") { base = base[base.index(after: slash)...] }
        if let spec = ModelCatalog.spec(named: String(base)) { return spec.name }
        var lowered = base.lowercased()
        if lowered.hasSuffix(".gguf") { lowered.removeLast(5) }
        if let spec = ModelCatalog.spec(named: lowered) { return spec.name }
        return lowered
    }
}
