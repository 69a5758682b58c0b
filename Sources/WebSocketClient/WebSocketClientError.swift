import HTTPTypes
import WebSocketHandshake

/// Why ``WebSocketClient`` could not open a WebSocket connection.
///
/// A struct over a private enum (cases can be added without breaking users); compare with the static members
/// (`error == .timedOut`, `error.handshakeError == .acceptMismatch`). Equality compares the kind only.
public struct WebSocketClientError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Kind: Sendable, Equatable {
        case invalidURL
        case connectFailed
        case timedOut
        case closedDuringHandshake
        case malformedResponse
        case responseHeadTooLong
        case handshakeRejected
        case extensionRejected
        case proxyFailed
        case redirectFailed
    }

    private let kind: Kind
    private let detail: String?

    /// The URL's parse error when this is ``invalidURL``.
    public let urlError: WebSocketURLError?
    /// The broken rule when this is ``handshakeRejected`` (RFC 6455 §4.1 response validation).
    public let handshakeError: ClientHandshakeError?
    /// The server's response head when one was read (for example a 401 or a redirect), else nil.
    public let response: HTTPResponse?
    /// The I/O or TLS error when this is ``connectFailed`` or ``closedDuringHandshake``.
    public let underlying: (any Error)?
    /// What went wrong with the proxy when this is ``proxyFailed``.
    public let proxyError: ProxyError?
    /// Why a redirect was not followed when this is ``redirectFailed``.
    public let redirectError: WebSocketRedirectError?

    /// The HTTP proxy's status when it answered `CONNECT` with a non-2xx status (e.g. 407, 403, 502).
    public var proxyStatus: Int? { proxyError?.status }

    private init(
        _ kind: Kind,
        detail: String? = nil,
        urlError: WebSocketURLError? = nil,
        handshakeError: ClientHandshakeError? = nil,
        response: HTTPResponse? = nil,
        underlying: (any Error)? = nil,
        proxyError: ProxyError? = nil,
        redirectError: WebSocketRedirectError? = nil
    ) {
        self.kind = kind
        self.detail = detail
        self.urlError = urlError
        self.handshakeError = handshakeError
        self.response = response
        self.underlying = underlying
        self.proxyError = proxyError
        self.redirectError = redirectError
    }

    /// The URL is not a valid `ws://` / `wss://` URL (RFC 6455 §3).
    public static let invalidURL = Self(.invalidURL)
    /// TCP connect or TLS setup failed (see ``underlying``).
    public static let connectFailed = Self(.connectFailed)
    /// ``WebSocketClientConfiguration/connectTimeout`` expired before the handshake completed.
    public static let timedOut = Self(.timedOut)
    /// The connection ended before a complete response head arrived.
    public static let closedDuringHandshake = Self(.closedDuringHandshake)
    /// The response head is not HTTP/1.1 (bad status line or header field).
    public static let malformedResponse = Self(.malformedResponse)
    /// The response head exceeds ``WebSocketClientConfiguration/maxResponseHeadLength``.
    public static let responseHeadTooLong = Self(.responseHeadTooLong)
    /// The response broke a rule of RFC 6455 §4.1 (see ``handshakeError``; status ≠ 101 is one of them).
    public static let handshakeRejected = Self(.handshakeRejected)
    /// The server accepted permessage-deflate with parameters outside the client's offer (RFC 7692 §7.1); the
    /// client fails the connection (RFC 6455 §4.1).
    public static let extensionRejected = Self(.extensionRejected)

    /// The proxy could not open a tunnel to the server (see ``proxyError``; ``proxyStatus`` holds an HTTP
    /// proxy's refusal status), or the proxy setting is invalid.
    public static let proxyFailed = Self(.proxyFailed)
    /// The server redirected the opening handshake and the redirect was not followed (see ``redirectError``:
    /// a loop, too many redirects, `wss` to `ws`, a bad `Location`); ``response`` is the redirect.
    public static let redirectFailed = Self(.redirectFailed)

    static func proxyFailed(_ error: ProxyError) -> Self {
        Self(.proxyFailed, response: error.response, proxyError: error)
    }

    static func redirectFailed(_ error: WebSocketRedirectError, response: HTTPResponse?) -> Self {
        Self(.redirectFailed, response: response, redirectError: error)
    }

    static func extensionRejected(_ detail: String, response: HTTPResponse) -> Self {
        Self(.extensionRejected, detail: detail, response: response)
    }

    static func invalidURL(_ error: WebSocketURLError) -> Self {
        Self(.invalidURL, urlError: error)
    }

    static func connectFailed(_ error: any Error) -> Self {
        Self(.connectFailed, detail: "\(error)", underlying: error)
    }

    static func closedDuringHandshake(_ error: (any Error)?) -> Self {
        Self(.closedDuringHandshake, detail: error.map { "\($0)" }, underlying: error)
    }

    static func malformedResponse(_ detail: String) -> Self {
        Self(.malformedResponse, detail: detail)
    }

    static func rejected(_ error: ClientHandshakeError, response: HTTPResponse) -> Self {
        Self(.handshakeRejected, handshakeError: error, response: response)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.kind == rhs.kind
    }

    public var description: String {
        let what: String
        switch self.kind {
        case .invalidURL: what = "invalid WebSocket URL"
        case .connectFailed: what = "connection failed"
        case .timedOut: what = "timed out before the handshake completed"
        case .closedDuringHandshake: what = "connection closed during the handshake"
        case .malformedResponse: what = "malformed HTTP response"
        case .responseHeadTooLong: what = "HTTP response head too long"
        case .handshakeRejected: what = "handshake rejected"
        case .extensionRejected: what = "extension response rejected"
        case .proxyFailed: what = "proxy failed"
        case .redirectFailed: what = "redirect not followed"
        }
        let extra =
            self.urlError.map { "\($0)" } ?? self.handshakeError.map { "\($0)" } ?? self.proxyError.map { "\($0)" }
            ?? self.redirectError.map { "\($0)" } ?? self.detail
        return "WebSocket client: \(what)" + (extra.map { ": \($0)" } ?? "")
    }
}
