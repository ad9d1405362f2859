import Foundation

/// API keys: one shared key (`--api-key`) and keys bound to one device each (`--device-keys`).
///
/// Why bind keys to devices: a request that names a device drafts on it, spends its battery and
/// sees its cached session state; with per-device keys, only that device's key may name it, so one
/// user's key cannot drive another user's phone. A device key is also an API key, and a request it
/// carries that names no device is placed on its own device. docs/security.md.
extension Frontend {
    /// Whether `/v1/` needs a bearer key at all.
    var requiresKey: Bool { apiKey != nil || !deviceKeys.isEmpty }

    /// Whether `authorization` carries the shared key or a device key.
    func accepts(authorization: String?) -> Bool {
        guard let bearer = Self.bearer(authorization) else { return false }
        if let apiKey, Self.constantTimeEqual(bearer, apiKey) { return true }
        return keyDevice(bearer: bearer) != nil
    }

    /// The device whose key `authorization` carries (nil for the shared key or none).
    func keyDevice(authorization: String?) -> String? {
        Self.bearer(authorization).flatMap(keyDevice(bearer:))
    }

    /// The device a request may draft on: the one it names, checked against its key, else its key's device.
    func authorizedDevice(named device: String?, authorization: String?) throws -> String? {
        let own = keyDevice(authorization: authorization)
        guard let device else { return own }
        if let own, own != device {
            throw GatewayError.deviceForbidden(device, reason: "this API key belongs to device '\(own)'")
        }
        if deviceKeys[device] != nil && own != device {
            throw GatewayError.deviceForbidden(device, reason: "the device has its own API key")
        }
        return device
    }

    private func keyDevice(bearer: String) -> String? {
        // Every key is compared, so the time taken does not reveal which device matched or where.
        var found: String?
        for (device, key) in deviceKeys where Self.constantTimeEqual(bearer, key) { found = device }
        return found
    }

    private static func bearer(_ authorization: String?) -> String? {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return nil }
        return String(authorization.dropFirst("Bearer ".count))
    }

    /// Equality whose time depends on the lengths only, not on where the texts differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }

    /// Reads a device-keys file: one `DEVICE KEY` pair per line, `#` comments and blank lines skipped.
    static func loadDeviceKeys(path: String) throws -> [String: String] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw DeviceKeysError("cannot read device keys \(path): \(error.localizedDescription)")
        }
        var keys: [String: String] = [:]
        var owners: [String: String] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard parts.count == 2, parts[0].count <= 128, parts[1].count >= 16 else {
                throw DeviceKeysError("\(path):\(number + 1): expected 'DEVICE KEY' with a key of at least 16 characters")
            }
            let (device, key) = (parts[0], parts[1])
            guard keys[device] == nil else { throw DeviceKeysError("\(path):\(number + 1): device '\(device)' listed twice") }
            if let other = owners[key] {
                throw DeviceKeysError("\(path):\(number + 1): devices '\(other)' and '\(device)' share a key")
            }
            keys[device] = key
            owners[key] = device
        }
        return keys
    }
}

struct DeviceKeysError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
