#if canImport(Glibc)
import Glibc
#endif

/// Picks a currently free TCP port on 127.0.0.1 (bind port 0, read it back, close).
/// Another process could take it before we use it; `tandem up --ephemeral` accepts that small race
/// in exchange for telling every service every endpoint up front.
enum FreePort {
    static func pick() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0 else { return 0 }
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { return 0 }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
