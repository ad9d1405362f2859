import Foundation

/// Reads the JSON files Tandem's tools hand to each other (device profiles, fleet traces), so every
/// reader says the same thing for a missing file and for one that is not what it should be.
public enum JSONFile {
    /// Decodes `path` as `T`; `error` turns a message ("cannot read ...", "... is not a NAME: ...")
    /// into the caller's error type.
    public static func decode<T: Decodable, E: Error>(_ type: T.Type, path: String, what: String,
                                                       error: (String) -> E) throws(E) -> T {
        guard let data = FileManager.default.contents(atPath: path) else { throw error("cannot read \(path)") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let decoding {
            throw error("\(path) is not a \(what): \(decoding)")
        }
    }
}
