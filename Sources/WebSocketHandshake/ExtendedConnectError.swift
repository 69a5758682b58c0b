import HTTPTypes

/// Why a server refuses a request stream that arrives over HTTP/2, in particular a WebSocket opened with the
/// extended CONNECT method (RFC 8441): either a **stream error** (the request is malformed, RFC 9113 §8.1.1:
/// reset the stream with `PROTOCOL_ERROR`, send no response) or an HTTP **response** to answer with.
///
/// One case per rule. Compare with the static members (`error == .missingPseudoHeader`); ``reason`` says what
/// exactly was wrong. ``isStreamError`` tells the two dispositions apart; ``response`` is the ready-made answer
/// of the others.
public struct ExtendedConnectError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case malformedFieldName
        case malformedFieldValue
        case pseudoHeaderAfterRegularField
        case unknownPseudoHeader
        case duplicatePseudoHeader
        case connectionSpecificField
        case missingPseudoHeader
        case emptyPath
        case protocolNotEnabled
        case protocolWithoutConnect
        case methodNotConnect
        case unsupportedProtocol
        case unsupportedVersion
        case malformedSubprotocols
        case malformedExtensions
    }

    private let code: Code
    /// A short human-readable reason, suitable as a `text/plain` response body or a log line.
    public let reason: String

    private init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    static func with(_ kind: Self, _ reason: String) -> Self { Self(kind.code, reason) }

    // MARK: Stream errors (RFC 9113 §8.1.1: malformed requests)

    /// RFC 9113 §8.2.1: a field name with characters outside `token`, or with uppercase letters. Stream error.
    public static let malformedFieldName = Self(.malformedFieldName, "malformed field name")
    /// RFC 9113 §8.2.1: a field value with NUL, CR or LF, or with leading or trailing whitespace. Stream error.
    public static let malformedFieldValue = Self(.malformedFieldValue, "malformed field value")
    /// RFC 9113 §8.3: every pseudo-header field precedes the regular fields. Stream error.
    public static let pseudoHeaderAfterRegularField = Self(
        .pseudoHeaderAfterRegularField, "pseudo-header field after a regular field")
    /// RFC 9113 §8.3: a pseudo-header other than `:method`, `:scheme`, `:authority`, `:path` and (RFC 8441 §4)
    /// `:protocol`, or a response pseudo-header in a request. Stream error.
    public static let unknownPseudoHeader = Self(.unknownPseudoHeader, "unknown pseudo-header field")
    /// RFC 9113 §8.3.1: a pseudo-header field appears more than once. Stream error.
    public static let duplicatePseudoHeader = Self(.duplicatePseudoHeader, "repeated pseudo-header field")
    /// RFC 9113 §8.2.2: `Connection`, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, or `TE`
    /// with a value other than `trailers`. Stream error.
    public static let connectionSpecificField = Self(.connectionSpecificField, "connection-specific header field")
    /// RFC 9113 §8.3.1 and RFC 8441 §4: `:method` is always required; `:scheme` and `:path` on every request but
    /// a classic CONNECT; an extended CONNECT also requires `:authority`. Stream error.
    public static let missingPseudoHeader = Self(.missingPseudoHeader, "missing pseudo-header field")
    /// RFC 9113 §8.3.1: `:path` must not be empty for `http` and `https` URIs. Stream error.
    public static let emptyPath = Self(.emptyPath, "empty :path")
    /// RFC 8441 §3, §5: `:protocol` sent although the server did not advertise
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`; the request is malformed. Stream error.
    public static let protocolNotEnabled = Self(
        .protocolNotEnabled, ":protocol sent without SETTINGS_ENABLE_CONNECT_PROTOCOL")
    /// RFC 8441 §4: `:protocol` on a request whose method is not CONNECT. Stream error.
    public static let protocolWithoutConnect = Self(
        .protocolWithoutConnect, ":protocol on a request that is not CONNECT")

    // MARK: Responses

    /// A request on a WebSocket path that is not an extended CONNECT (RFC 8441 §4). **405 Method Not Allowed**
    /// with `allow: CONNECT`.
    public static let methodNotConnect = Self(.methodNotConnect, "a WebSocket over HTTP/2 is opened with CONNECT")
    /// RFC 8441 §4: `:protocol` names a protocol other than `websocket`. **501 Not Implemented**: this endpoint
    /// speaks no other tunnelled protocol.
    public static let unsupportedProtocol = Self(.unsupportedProtocol, ":protocol must be 'websocket'")
    /// RFC 8441 §5 with RFC 6455 §4.2.2 / §4.4: `sec-websocket-version` is absent or not 13. **400 Bad Request**
    /// with `sec-websocket-version: 13` (426 is not used: its `Upgrade` field does not exist in HTTP/2).
    public static let unsupportedVersion = Self(
        .unsupportedVersion, "unsupported sec-websocket-version; only 13 is supported")
    /// RFC 6455 §4.1 item 10, §11.3.4: an element of `sec-websocket-protocol` is not a token. **400**.
    public static let malformedSubprotocols = Self(.malformedSubprotocols, "malformed sec-websocket-protocol")
    /// RFC 6455 §9.1: `sec-websocket-extensions` does not follow the grammar. **400**.
    public static let malformedExtensions = Self(.malformedExtensions, "malformed sec-websocket-extensions")

    /// Compares the rule only, not the reason text.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// True when the request is malformed (RFC 9113 §8.1.1): the stream is reset with `PROTOCOL_ERROR` and no
    /// response is sent. False when ``response`` is the answer.
    public var isStreamError: Bool {
        switch code {
        case .malformedFieldName, .malformedFieldValue, .pseudoHeaderAfterRegularField, .unknownPseudoHeader,
            .duplicatePseudoHeader, .connectionSpecificField, .missingPseudoHeader, .emptyPath,
            .protocolNotEnabled, .protocolWithoutConnect:
            return true
        case .methodNotConnect, .unsupportedProtocol, .unsupportedVersion, .malformedSubprotocols,
            .malformedExtensions:
            return false
        }
    }

    /// The status to answer with; 400 for stream errors (for logs only: they get no response).
    public var status: HTTPResponse.Status {
        switch code {
        case .methodNotConnect: return .methodNotAllowed
        case .unsupportedProtocol: return .notImplemented
        default: return .badRequest
        }
    }

    /// The response for the errors that are answered (no connection-specific fields: RFC 9113 §8.2.2);
    /// `nil` for stream errors. Send ``reason`` as its `text/plain` body.
    public var response: HTTPResponse? {
        guard !isStreamError else { return nil }
        var fields = HTTPFields()
        switch code {
        case .methodNotConnect: fields[.allow] = "CONNECT"
        case .unsupportedVersion: fields[.secWebSocketVersion] = OpeningHandshake.supportedVersion
        default: break
        }
        return HTTPResponse(status: status, headerFields: fields)
    }

    public var description: String {
        isStreamError ? "stream error (PROTOCOL_ERROR): \(reason)" : "\(status.code) \(status.reasonPhrase): \(reason)"
    }
}
