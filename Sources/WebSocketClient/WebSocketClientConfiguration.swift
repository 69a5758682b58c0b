import HTTPTypes
import Logging
import NIOCore
import WebSocketDeflate
import WebSocketHandshake
import WebSocketNIO

#if TLS
import NIOSSL
#endif

/// How `WebSocket.connect(to:)` and `WebSocketDelegateConnection.connect(to:makeDelegate:)` connect: handshake options, TLS, timeouts and the WebSocket options.
public struct WebSocketClientConfiguration: Sendable {
    /// Extra request header fields of the opening handshake (e.g. cookies, `User-Agent`, an API key), sent
    /// after the handshake's own fields and before ``origin`` and ``authorization``. An `Authorization` or
    /// `Cookie` field here is dropped, like ``authorization``, when a redirect leads to another origin.
    public var headerFields: HTTPFields

    /// The `Origin` field of the opening request (RFC 6455 §4.1 item 8, RFC 6454), e.g.
    /// `https://app.example.com`: servers use it to refuse cross-site browsers' connections. Non-browser
    /// clients need not send it. Default: nil (not sent).
    public var origin: String?

    /// The `Authorization` field of the opening request (RFC 9110 §11.6.2), e.g. `Bearer <token>` or the
    /// value of ``basicAuthorization(username:password:)``. Sent to the URL's origin only: a redirect to
    /// another scheme, host or port drops it. Default: nil (not sent).
    public var authorization: String?

    /// An explicit proxy for every connection (HTTP `CONNECT` or SOCKS5), e.g.
    /// `try ProxyURL("http://user:secret@proxy.example:3128")`. It takes precedence over
    /// ``proxyEnvironment``. `wss://` through a proxy runs TLS to the server inside the tunnel (SNI = the
    /// server's host). Default: nil.
    public var proxy: ProxyURL?

    /// Opt-in proxy settings from environment variables, read like curl (`http_proxy` for `ws://`,
    /// `https_proxy` for `wss://`, `all_proxy`, `no_proxy`; lower case first, then upper case):
    /// `configuration.proxyEnvironment = .processEnvironment`. Used when ``proxy`` is nil. A variable that
    /// does not parse fails the connection with ``WebSocketClientError/proxyFailed``. Default: nil (the
    /// environment is not read).
    public var proxyEnvironment: ProxyEnvironment?

    /// The most redirects (301, 302, 303, 307, 308) followed for one opening handshake; 0 follows none (a
    /// redirect then fails with ``WebSocketClientError/handshakeRejected`` and its status). `wss` never
    /// redirects to `ws`; a loop or one redirect more fails with ``WebSocketClientError/redirectFailed``.
    /// Default: 5.
    public var maxRedirects: Int

    /// Subprotocols offered in `Sec-WebSocket-Protocol`, most preferred first (RFC 6455 §4.1 item 10).
    /// The server may pick at most one of them; any other answer fails the handshake.
    public var subprotocols: [String]

    #if TLS
    /// TLS settings for `wss://` URLs (custom trust roots, client certificates...). Default:
    /// `TLSConfiguration.makeClientConfiguration()` (system trust roots, full verification). Ignored for `ws://`.
    /// Only with the package trait `TLS` (on by default).
    public var tls: TLSConfiguration
    #endif

    /// Where the connection logs: a failed connection at `info` with its close code and reason, the rest at
    /// `debug`. Default: a logger labelled `websocket-client`.
    public var logger: Logger

    /// Bound on the whole opening, as one deadline: DNS resolution, TCP connect, the proxy negotiation, the TLS
    /// handshake and the HTTP upgrade, over every redirect. When it expires the connection fails with
    /// ``WebSocketClientError/timedOut``. Default: 10 seconds.
    public var connectTimeout: Duration

    /// The largest HTTP response head (status line and header fields) accepted from the server, in bytes.
    /// Default: 16 KiB.
    public var maxResponseHeadLength: Int

    /// The WebSocket options used once connected (limits, heartbeat, buffering).
    public var webSocket: WebSocketConfiguration

    /// permessage-deflate (RFC 7692): when set, the client offers it (``PerMessageDeflate/offer(_:)``) and, when
    /// the server accepts within the offer, compresses and inflates messages; a response outside the offer fails
    /// the connection with ``WebSocketClientError/extensionRejected``. `nil` (the default): not offered.
    public var perMessageDeflate: PerMessageDeflate.Configuration?
    /// WebSockets over HTTP/2 (RFC 8441): ``HTTP2Preference/preferred`` tries ALPN `h2` on `wss://` and an
    /// extended CONNECT when the server advertises it, ``HTTP2Preference/priorKnowledge`` also speaks h2c on
    /// `ws://`; both fall back to the HTTP/1.1 upgrade by themselves. Default ``HTTP2Preference/never``.
    public var http2: HTTP2Preference
    /// With ``http2`` other than ``HTTP2Preference/never``: share HTTP/2 connections among WebSockets to the same
    /// origin through this pool (see ``HTTP2ConnectionPool`` for what is shared and its limits). Not used for a
    /// connection through a proxy. Default nil: each WebSocket over HTTP/2 has a connection of its own.
    public var http2Pool: HTTP2ConnectionPool?

    #if TLS
    /// Creates the default configuration (see each field).
    public init(
        headerFields: HTTPFields = [:],
        subprotocols: [String] = [],
        tls: TLSConfiguration = .makeClientConfiguration(),
        connectTimeout: Duration = .seconds(10),
        webSocket: WebSocketConfiguration = .init()
    ) {
        self.init(defaultsWith: headerFields, subprotocols, connectTimeout, webSocket)
        self.tls = tls
    }
    #else
    /// Creates the default configuration (see each field).
    public init(
        headerFields: HTTPFields = [:],
        subprotocols: [String] = [],
        connectTimeout: Duration = .seconds(10),
        webSocket: WebSocketConfiguration = .init()
    ) {
        self.init(defaultsWith: headerFields, subprotocols, connectTimeout, webSocket)
    }
    #endif

    private init(
        defaultsWith headerFields: HTTPFields,
        _ subprotocols: [String],
        _ connectTimeout: Duration,
        _ webSocket: WebSocketConfiguration
    ) {
        self.headerFields = headerFields
        self.subprotocols = subprotocols
        #if TLS
        self.tls = .makeClientConfiguration()
        #endif
        self.logger = Logger(label: "websocket-client")
        self.connectTimeout = connectTimeout
        self.maxResponseHeadLength = 16 * 1024
        self.webSocket = webSocket
        self.perMessageDeflate = nil
        self.origin = nil
        self.authorization = nil
        self.proxy = nil
        self.proxyEnvironment = nil
        self.maxRedirects = 5
        self.http2 = .never
        self.http2Pool = nil
    }

    /// An `Authorization` value for the Basic scheme (RFC 7617): `Basic ` and base64 of `username:password`.
    /// - Throws: ``ProxyError/invalidCredentials`` when the username holds a colon or either part a control
    ///   character.
    public static func basicAuthorization(username: String, password: String) throws(ProxyError) -> String {
        try ProxyCredentials(username: username, password: password).basicAuthorization()
    }
}
