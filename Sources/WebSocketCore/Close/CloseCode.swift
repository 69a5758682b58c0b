/// A close status code (RFC 6455 §7.4, IANA "WebSocket Close Code Number Registry").
///
/// Any `UInt16` can be represented, because a peer can put any value on the wire; ``isAllowedOnWire`` says
/// whether a received or sent close frame may carry it.
public struct CloseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The 16-bit status code.
    public var rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Creates a code from its numeric value.
    @inlinable
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection has been fulfilled.
    public static let normalClosure = CloseCode(1000)
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    public static let goingAway = CloseCode(1001)
    /// 1002: the peer violated the protocol.
    public static let protocolError = CloseCode(1002)
    /// 1003: the endpoint received a data type it cannot accept.
    public static let unsupportedData = CloseCode(1003)
    /// 1005: reserved; reported locally when a close frame carried no status code. Never sent.
    public static let noStatusReceived = CloseCode(1005)
    /// 1006: reserved; reported locally when the connection closed without a close frame. Never sent.
    public static let abnormalClosure = CloseCode(1006)
    /// 1007: a message's data was inconsistent with its type (e.g. invalid UTF-8 in a text message, §8.1).
    public static let invalidFramePayloadData = CloseCode(1007)
    /// 1008: the message violated the endpoint's policy.
    public static let policyViolation = CloseCode(1008)
    /// 1009: a message or frame was too big to process.
    public static let messageTooBig = CloseCode(1009)
    /// 1010: the client expected the server to negotiate an extension it did not.
    public static let mandatoryExtension = CloseCode(1010)
    /// 1011: the server hit an unexpected condition.
    public static let internalError = CloseCode(1011)
    /// 1012: the service is restarting (IANA registry).
    public static let serviceRestart = CloseCode(1012)
    /// 1013: try again later (IANA registry).
    public static let tryAgainLater = CloseCode(1013)
    /// 1014: bad gateway (IANA registry).
    public static let badGateway = CloseCode(1014)
    /// 1015: reserved; reported locally when the TLS handshake failed. Never sent.
    public static let tlsHandshake = CloseCode(1015)

    /// Whether a close frame may carry this code (RFC 6455 §7.4.1, §7.4.2).
    ///
    /// Allowed: 1000-1003, 1007-1014 (1012-1014 registered with IANA after RFC 6455), and 3000-4999 (registered
    /// and private use). Not allowed: 0-999, 1004 (reserved), 1005, 1006 and 1015 (local-only), 1016-2999
    /// (reserved for the protocol and extensions, unassigned), and 5000 and above.
    @inlinable
    public var isAllowedOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }
}

/// The status of a closed or closing connection: a close code and a reason.
public struct CloseStatus: Sendable, Hashable, CustomStringConvertible {
    /// The close code: the one the peer sent, ``CloseCode/noStatusReceived`` (1005) when its close frame had
    /// no payload, or ``CloseCode/abnormalClosure`` (1006) when the connection ended without a close frame.
    public var code: CloseCode
    /// The reason: UTF-8 text of at most 123 bytes when it came from a close frame (RFC 6455 §5.5.1), or a
    /// locally generated explanation.
    public var reason: String

    public init(code: CloseCode, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason.isEmpty ? "\(code)" : "\(code) (\(reason))" }
}
