import Foundation

/// Resolves a setting from a command-line flag, then an environment variable, then a default.
///
/// Every service takes its endpoints and knobs this way so the same binary runs under
/// `tandem up` (flags), docker-compose (environment) and by hand (defaults on loopback).
public enum Setting {
    public static func string(_ flag: String?, env: String, default defaultValue: String,
                              environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let value = environment[env], !value.isEmpty { return value }
        return defaultValue
    }

    public static func optionalString(_ flag: String?, env: String,
                                      environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = environment[env], !value.isEmpty { return value }
        return nil
    }

    public static func int(_ flag: Int?, env: String, default defaultValue: Int,
                           environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        if let flag { return flag }
        if let raw = environment[env], !raw.isEmpty {
            guard let value = Int(raw) else { throw SettingError.invalid(name: env, value: raw, expected: "an integer") }
            return value
        }
        return defaultValue
    }

    public static func double(_ flag: Double?, env: String, default defaultValue: Double,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Double {
        if let flag { return flag }
        if let raw = environment[env], !raw.isEmpty {
            guard let value = Double(raw) else { throw SettingError.invalid(name: env, value: raw, expected: "a number") }
            return value
        }
        return defaultValue
    }
}

public enum SettingError: Error, CustomStringConvertible {
    case invalid(name: String, value: String, expected: String)
    public var description: String {
        switch self {
        case .invalid(let name, let value, let expected): return "\(name)=\(value) is not \(expected)"
        }
    }
}
