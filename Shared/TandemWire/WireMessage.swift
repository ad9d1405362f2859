/// Every message kind on the Tandem bus. The raw value is the `kind` field on the wire.
public enum MessageKind: String, Codable, Sendable, CaseIterable, Hashable {
    // control
    case register, registered, heartbeat, heartbeatAck = "heartbeat_ack"
    case health, healthReply = "health_reply", status, clusterStatus = "cluster_status"
    case error, ack
    // sessions and verification
    case sessionStart = "session_start", sessionOpen = "session_open", sessionOpened = "session_opened"
    case sessionClose = "session_close", verify, verified, tokens
    // events (topic = kind)
    case batch, round, session, profile
    // queries
    case estimate, estimateReply = "estimate_reply", advise, advice
    case metricsQuery = "metrics_query", metricsResult = "metrics_result"
}

/// A message body, typed by kind. One enum keeps dispatch exhaustive: adding a kind makes every
/// `switch` over messages show where it must be handled.
public enum WireMessage: Sendable, Hashable {
    case register(Registration)
    case registered(RegistrationAck)
    case heartbeat(Heartbeat)
    case heartbeatAck(HeartbeatAck)
    case health(HealthQuery)
    case healthReply(HealthReply)
    case status(StatusQuery)
    case clusterStatus(ClusterStatus)
    case error(ErrorReply)
    case ack(Ack)
    case sessionStart(SessionStart)
    case sessionOpen(SessionOpen)
    case sessionOpened(SessionOpened)
    case sessionClose(SessionClose)
    case verify(VerifyRequest)
    case verified(VerifyResult)
    case tokens(TokenReport)
    case batch(BatchEvent)
    case round(RoundEvent)
    case session(SessionEvent)
    case profile(ProfileEvent)
    case estimate(EstimateQuery)
    case estimateReply(EstimateReply)
    case advise(AdvisorQuery)
    case advice(AdvisorRecommendation)
    case metricsQuery(MetricsQuery)
    case metricsResult(MetricsResult)

    public var kind: MessageKind {
        switch self {
        case .register: .register
        case .registered: .registered
        case .heartbeat: .heartbeat
        case .heartbeatAck: .heartbeatAck
        case .health: .health
        case .healthReply: .healthReply
        case .status: .status
        case .clusterStatus: .clusterStatus
        case .error: .error
        case .ack: .ack
        case .sessionStart: .sessionStart
        case .sessionOpen: .sessionOpen
        case .sessionOpened: .sessionOpened
        case .sessionClose: .sessionClose
        case .verify: .verify
        case .verified: .verified
        case .tokens: .tokens
        case .batch: .batch
        case .round: .round
        case .session: .session
        case .profile: .profile
        case .estimate: .estimate
        case .estimateReply: .estimateReply
        case .advise: .advise
        case .advice: .advice
        case .metricsQuery: .metricsQuery
        case .metricsResult: .metricsResult
        }
    }

    func encodeBody(into container: inout KeyedEncodingContainer<Envelope.CodingKeys>) throws {
        let key = Envelope.CodingKeys.body
        switch self {
        case .register(let b): try container.encode(b, forKey: key)
        case .registered(let b): try container.encode(b, forKey: key)
        case .heartbeat(let b): try container.encode(b, forKey: key)
        case .heartbeatAck(let b): try container.encode(b, forKey: key)
        case .health(let b): try container.encode(b, forKey: key)
        case .healthReply(let b): try container.encode(b, forKey: key)
        case .status(let b): try container.encode(b, forKey: key)
        case .clusterStatus(let b): try container.encode(b, forKey: key)
        case .error(let b): try container.encode(b, forKey: key)
        case .ack(let b): try container.encode(b, forKey: key)
        case .sessionStart(let b): try container.encode(b, forKey: key)
        case .sessionOpen(let b): try container.encode(b, forKey: key)
        case .sessionOpened(let b): try container.encode(b, forKey: key)
        case .sessionClose(let b): try container.encode(b, forKey: key)
        case .verify(let b): try container.encode(b, forKey: key)
        case .verified(let b): try container.encode(b, forKey: key)
        case .tokens(let b): try container.encode(b, forKey: key)
        case .batch(let b): try container.encode(b, forKey: key)
        case .round(let b): try container.encode(b, forKey: key)
        case .session(let b): try container.encode(b, forKey: key)
        case .profile(let b): try container.encode(b, forKey: key)
        case .estimate(let b): try container.encode(b, forKey: key)
        case .estimateReply(let b): try container.encode(b, forKey: key)
        case .advise(let b): try container.encode(b, forKey: key)
        case .advice(let b): try container.encode(b, forKey: key)
        case .metricsQuery(let b): try container.encode(b, forKey: key)
        case .metricsResult(let b): try container.encode(b, forKey: key)
        }
    }

    static func decodeBody(kind: MessageKind, from c: KeyedDecodingContainer<Envelope.CodingKeys>) throws -> WireMessage {
        let key = Envelope.CodingKeys.body
        switch kind {
        case .register: return .register(try c.decode(Registration.self, forKey: key))
        case .registered: return .registered(try c.decode(RegistrationAck.self, forKey: key))
        case .heartbeat: return .heartbeat(try c.decode(Heartbeat.self, forKey: key))
        case .heartbeatAck: return .heartbeatAck(try c.decode(HeartbeatAck.self, forKey: key))
        case .health: return .health(try c.decode(HealthQuery.self, forKey: key))
        case .healthReply: return .healthReply(try c.decode(HealthReply.self, forKey: key))
        case .status: return .status(try c.decode(StatusQuery.self, forKey: key))
        case .clusterStatus: return .clusterStatus(try c.decode(ClusterStatus.self, forKey: key))
        case .error: return .error(try c.decode(ErrorReply.self, forKey: key))
        case .ack: return .ack(try c.decode(Ack.self, forKey: key))
        case .sessionStart: return .sessionStart(try c.decode(SessionStart.self, forKey: key))
        case .sessionOpen: return .sessionOpen(try c.decode(SessionOpen.self, forKey: key))
        case .sessionOpened: return .sessionOpened(try c.decode(SessionOpened.self, forKey: key))
        case .sessionClose: return .sessionClose(try c.decode(SessionClose.self, forKey: key))
        case .verify: return .verify(try c.decode(VerifyRequest.self, forKey: key))
        case .verified: return .verified(try c.decode(VerifyResult.self, forKey: key))
        case .tokens: return .tokens(try c.decode(TokenReport.self, forKey: key))
        case .batch: return .batch(try c.decode(BatchEvent.self, forKey: key))
        case .round: return .round(try c.decode(RoundEvent.self, forKey: key))
        case .session: return .session(try c.decode(SessionEvent.self, forKey: key))
        case .profile: return .profile(try c.decode(ProfileEvent.self, forKey: key))
        case .estimate: return .estimate(try c.decode(EstimateQuery.self, forKey: key))
        case .estimateReply: return .estimateReply(try c.decode(EstimateReply.self, forKey: key))
        case .advise: return .advise(try c.decode(AdvisorQuery.self, forKey: key))
        case .advice: return .advice(try c.decode(AdvisorRecommendation.self, forKey: key))
        case .metricsQuery: return .metricsQuery(try c.decode(MetricsQuery.self, forKey: key))
        case .metricsResult: return .metricsResult(try c.decode(MetricsResult.self, forKey: key))
        }
    }
}
