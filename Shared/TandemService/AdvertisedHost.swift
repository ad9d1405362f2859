#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TandemBus

/// Finds the address other containers/hosts reach this replica at, and rewrites bound
/// endpoints (`tcp://0.0.0.0:5560`) into advertised ones (`tcp://10.0.3.7:5560`).
public enum AdvertisedHost {
    public static func firstNonLoopbackIPv4() -> String? {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return nil }
        defer { freeifaddrs(head) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let addr = entry.pointee.ifa_addr, addr.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let rc = getnameinfo(addr, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count),
                                 nil, 0, NI_NUMERICHOST)
            guard rc == 0 else { continue }
            let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.hasPrefix("127.") { return text }
        }
        return nil
    }

    /// `tcp://0.0.0.0:5560` → `tcp://<host>:5560`; other endpoints are returned unchanged.
    public static func advertise(_ bound: String, host: String) -> String {
        for wildcard in ["tcp://*:", "tcp://0.0.0.0:"] where bound.hasPrefix(wildcard) {
            return "tcp://\(host):" + bound.dropFirst(wildcard.count)
        }
        return bound
    }
}
