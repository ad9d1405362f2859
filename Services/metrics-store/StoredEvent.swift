import TandemWire

/// One bus event as the store keeps it: the columns shared by every kind (the `events` table),
/// the typed body (its kind's table) and the envelope's JSON text, kept verbatim so nothing a
/// newer publisher sent is lost even when the typed columns do not capture it.
struct StoredEvent: Sendable, Hashable {
    enum Body: Sendable, Hashable {
        case batch(BatchEvent)
        case round(RoundEvent)
        case session(SessionEvent)
        case profile(ProfileEvent)
    }

    var body: Body
    /// The envelope JSON (`{v, kind, id, sentAt, body}`) as it travelled.
    var json: String
    /// When the metrics-store received it (epoch ms); `at` is the publisher's clock.
    var receivedAt: EpochMillis

    var topic: EventTopic {
        switch body {
        case .batch: .batch
        case .round: .round
        case .session: .session
        case .profile: .profile
        }
    }

    /// The event's own timestamp (publisher clock, epoch ms).
    var at: EpochMillis {
        switch body {
        case .batch(let e): e.at
        case .round(let e): e.at
        case .session(let e): e.at
        case .profile(let e): e.at
        }
    }

    /// The replica the event is about (verifier for a batch, drafter for a round).
    var replica: ReplicaID? {
        switch body {
        case .batch(let e): e.verifierID
        case .round(let e): e.drafterID
        case .session, .profile: nil
        }
    }

    var session: SessionID? {
        switch body {
        case .round(let e): e.session
        case .session(let e): e.session
        case .batch, .profile: nil
        }
    }

    /// Wraps an event message; nil for messages that are not events (they are not stored).
    init?(_ envelope: Envelope, json: String, receivedAt: EpochMillis) {
        switch envelope.message {
        case .batch(let e): body = .batch(e)
        case .round(let e): body = .round(e)
        case .session(let e): body = .session(e)
        case .profile(let e): body = .profile(e)
        default: return nil
        }
        self.json = json
        self.receivedAt = receivedAt
    }

    /// Decodes one wire frame (as published on the bus). Returns nil for a valid message that is
    /// not an event; throws for a frame that does not decode.
    static func decode(frame: [UInt8], receivedAt: EpochMillis) throws(WireError) -> StoredEvent? {
        let envelope = try WireCodec.decode(frame)
        let json = String(decoding: frame[WireCodec.headerSize...], as: UTF8.self)
        return StoredEvent(envelope, json: json, receivedAt: receivedAt)
    }

    /// Builds the stored form of an event message (tests and tools that write without the bus).
    init?(_ message: WireMessage, receivedAt: EpochMillis = Envelope.now()) {
        let frame = WireCodec.encode(Envelope(message))
        let json = String(decoding: frame[WireCodec.headerSize...], as: UTF8.self)
        guard let event = try? WireCodec.decode(frame) else { return nil }
        self.init(event, json: json, receivedAt: receivedAt)
    }
}
