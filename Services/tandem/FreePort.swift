#if canImport(Glibc)
import Glibc
#endif

/// Free TCP ports on 127.0.0.1.
enum FreePort {
    /// Picks a currently free port (bind port 0, read it back, close).
    ///
    /// Racy by nature, and `tandem up --ephemeral` no longer uses it: nothing stops another
    /// socket from taking the port before it is used, and two calls can even return the same port
    /// (the kernel picks bind(0) ports at random: 8 calls in a row repeat a port in ~0.2 % of
    /// trials on Linux 6.x). Prefer binding port 0 in the service itself, or ``reserve()``.
    static func pick() -> Int {
        guard let reservation = Reservation() else { return 0 }
        defer { reservation.release() }
        return reservation.port
    }

    /// Reserves a free port until ``Reservation/release()``: bound with `SO_REUSEADDR` but not
    /// listening. While it is held, the kernel hands the port to no other bind(0) and to no
    /// outgoing connect(), and a plain bind() of it fails; a listener that also sets
    /// `SO_REUSEADDR` (ZeroMQ's TCP listener does) can still bind and listen on it. So the one
    /// endpoint that must be known before its owner starts (the gateway's control socket, which
    /// the metrics-store is told up front) cannot be taken in between.
    static func reserve() -> Reservation? { Reservation() }

    final class Reservation: @unchecked Sendable {
        let port: Int
        private var fd: Int32

        fileprivate init?() {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            var one: Int32 = 1
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = 0
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
                && withUnsafePointer(to: &addr, {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
                }) == 0
                && withUnsafeMutablePointer(to: &addr, {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
                }) == 0
            guard ok else {
                close(fd)
                return nil
            }
            self.fd = fd
            self.port = Int(UInt16(bigEndian: addr.sin_port))
        }

        /// Gives the port back (idempotent).
        func release() {
            if fd >= 0 { close(fd) }
            fd = -1
        }

        deinit { release() }
    }
}
