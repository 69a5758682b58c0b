import HTTPTypes

/// Why a server refuses an opening handshake (RFC 6455 §4.2.1, §4.2.2), with the HTTP status to answer.
///
/// One case per rule of the RFC. Compare with the static members (`error == .missingKey`); the
/// ``description`` and ``reason`` say what exactly was wrong. ``response`` is the ready-made rejection.
public struct ServerHandshakeError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Sendable, Hashable {
        case methodNotGet
        case httpVersionTooOld
        case missingHost
        case multipleHosts
        case missingPath
        case missingUpgradeWebSocket
        case missingConnectionUpgrade
        case unsupportedVersion
        case missingKey
        case multipleKeys
        case malformedKey
        case malformedSubprotocols
        case malformedExtensions
        case subprotocolNotOffered
        case extensionNotOffered
    }

    private let code: Code
    /// A short human-readable reason, suitable as a `text/plain` response body.
    public let reason: String

    private init(_ code: Code, _ reason: String? = nil) {
        self.code = code
        self.reason = reason ?? Self.defaultReason(code)
    }

    private static func defaultReason(_ code: Code) -> String {
        switch code {
        case .methodNotGet: return "the WebSocket handshake requires the GET method"
        case .httpVersionTooOld: return "the WebSocket handshake requires HTTP/1.1 or higher"
        case .missingHost: return "missing Host header"
        case .multipleHosts: return "conflicting Host headers"
        case .missingPath: return "missing request path"
        case .missingUpgradeWebSocket: return "Upgrade header does not contain 'websocket'"
        case .missingConnectionUpgrade: return "Connection header does not contain 'upgrade'"
        case .unsupportedVersion: return "unsupported Sec-WebSocket-Version; only 13 is supported"
        case .missingKey: return "missing Sec-WebSocket-Key header"
        case .multipleKeys: return "more than one Sec-WebSocket-Key header"
        case .malformedKey: return "Sec-WebSocket-Key is not base64 of 16 bytes"
        case .malformedSubprotocols: return "malformed Sec-WebSocket-Protocol header"
        case .malformedExtensions: return "malformed Sec-WebSocket-Extensions header"
        case .subprotocolNotOffered: return "the server chose a subprotocol the client did not offer"
        case .extensionNotOffered: return "the server accepted an extension the client did not offer"
        }
    }

    /// RFC 6455 §4.2.1 item 1: the method is not `GET`. Answered with **405 Method Not Allowed** and
    /// `Allow: GET`: the target is a WebSocket endpoint whose only method is GET, which is exactly what 405
    /// means (RFC 9110 §15.5.6); the required `Allow` field tells the client what would work.
    public static let methodNotGet = Self(.methodNotGet)
    /// RFC 6455 §4.2.1 item 1 / §4.1 item 2: the request is older than HTTP/1.1. **400 Bad Request**.
    public static let httpVersionTooOld = Self(.httpVersionTooOld)
    /// RFC 6455 §4.2.1 item 2: no (or an empty) `Host`. **400 Bad Request**.
    public static let missingHost = Self(.missingHost)
    /// RFC 9112 §3.2: several `Host` field lines that disagree. **400 Bad Request**.
    public static let multipleHosts = Self(.multipleHosts)
    /// The request has no path (request-target). **400 Bad Request**.
    public static let missingPath = Self(.missingPath)
    /// RFC 6455 §4.2.1 item 3: `Upgrade` does not list the `websocket` token. **400 Bad Request**.
    public static let missingUpgradeWebSocket = Self(.missingUpgradeWebSocket)
    /// RFC 6455 §4.2.1 item 4: `Connection` does not list the `upgrade` token. **400 Bad Request**.
    public static let missingConnectionUpgrade = Self(.missingConnectionUpgrade)
    /// RFC 6455 §4.2.1 item 6 and §4.4: `Sec-WebSocket-Version` is absent or not 13. **426 Upgrade Required**
    /// with `Sec-WebSocket-Version: 13`.
    public static let unsupportedVersion = Self(.unsupportedVersion)
    /// RFC 6455 §4.2.1 item 5: no `Sec-WebSocket-Key`. **400 Bad Request**.
    public static let missingKey = Self(.missingKey)
    /// RFC 6455 §11.3.1: `Sec-WebSocket-Key` must not appear more than once. **400 Bad Request**.
    public static let multipleKeys = Self(.multipleKeys)
    /// RFC 6455 §4.2.1 item 5: `Sec-WebSocket-Key` is not base64 of exactly 16 bytes. **400 Bad Request**.
    public static let malformedKey = Self(.malformedKey)
    /// RFC 6455 §4.1 item 10, §11.3.4: an element of `Sec-WebSocket-Protocol` is not a token.
    /// **400 Bad Request**.
    public static let malformedSubprotocols = Self(.malformedSubprotocols)
    /// RFC 6455 §9.1: `Sec-WebSocket-Extensions` does not follow the grammar. **400 Bad Request**.
    public static let malformedExtensions = Self(.malformedExtensions)
    /// RFC 6455 §4.2.2 item 5.4 (`/subprotocol/`): the application chose a subprotocol the client did not
    /// offer. A server bug: **500 Internal Server Error**.
    public static let subprotocolNotOffered = Self(.subprotocolNotOffered)
    /// RFC 6455 §4.2.2 item 5.4 (`/extensions/`): the application accepted an extension the client did not
    /// offer. A server bug: **500 Internal Server Error**.
    public static let extensionNotOffered = Self(.extensionNotOffered)

    static func with(_ kind: Self, _ reason: String) -> Self { Self(kind.code, reason) }

    /// Compares the rule only, not the reason text.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The status to answer with.
    public var status: HTTPResponse.Status {
        switch code {
        case .methodNotGet: return .methodNotAllowed
        case .unsupportedVersion: return .init(code: 426, reasonPhrase: "Upgrade Required")
        case .subprotocolNotOffered, .extensionNotOffered: return .internalServerError
        case .httpVersionTooOld, .missingHost, .multipleHosts, .missingPath, .missingUpgradeWebSocket,
            .missingConnectionUpgrade, .missingKey, .multipleKeys, .malformedKey, .malformedSubprotocols,
            .malformedExtensions:
            return .badRequest
        }
    }

    /// The header fields the rejection must carry: `Sec-WebSocket-Version: 13` for 426 (RFC 6455 §4.4),
    /// `Allow: GET` for 405 (RFC 9110 §15.5.6), and always `Connection: close`.
    public var headerFields: HTTPFields {
        var fields = HTTPFields()
        switch code {
        case .methodNotGet: fields[.allow] = "GET"
        case .unsupportedVersion:
            fields[.secWebSocketVersion] = OpeningHandshake.supportedVersion
            fields[.upgrade] = "websocket"
        default: break
        }
        fields[.connection] = "close"
        return fields
    }

    /// The rejection response (status and ``headerFields``); send ``reason`` as its `text/plain` body.
    public var response: HTTPResponse {
        HTTPResponse(status: status, headerFields: headerFields)
    }

    public var description: String { "\(status.code) \(status.reasonPhrase): \(reason)" }
}
