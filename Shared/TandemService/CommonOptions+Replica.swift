import TandemWire

extension CommonOptions {
    /// This process's replica id in `role` (`--replica-id`, else `<role>-<host>-<pid>`), the id it
    /// registers under and prints in its READY line.
    public func replicaID(of role: Role) -> String {
        resolvedReplicaID(role: role.rawValue)
    }

    /// A bound endpoint as other hosts reach it (`--advertise-host`), for registration.
    public func advertise(_ bound: String) -> String {
        AdvertisedHost.advertise(bound, host: resolvedAdvertiseHost())
    }
}
