import Foundation

/// The one line a service prints to stdout once its sockets are bound:
/// `READY key=value key=value...`. `tandem up` and the integration tests parse it to learn
/// ephemeral ports. Written unbuffered so a parent process sees it at once.
public enum ReadyLine {
    public static func announce(_ fields: KeyValuePairs<String, String>) {
        let line = "READY " + fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        FileHandle.standardOutput.write(Data(line.utf8))
    }

    /// Parses a READY line into its fields; nil for any other line.
    public static func parse(_ line: String) -> [String: String]? {
        guard line.hasPrefix("READY ") else { return nil }
        var fields: [String: String] = [:]
        for part in line.dropFirst(6).split(separator: " ") {
            guard let eq = part.firstIndex(of: "=") else { continue }
            fields[String(part[..<eq])] = String(part[part.index(after: eq)...])
        }
        return fields
    }
}
