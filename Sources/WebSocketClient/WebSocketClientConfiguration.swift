import HTTPTypes
import Logging
import NIOCore
import WebSocketDeflate
import WebSocketNIO

#if TLS
import NIOSSL
#endif

/// How `WebSocket.connect(to:)` and `WebSocketDelegateConnection.connect(to:makeDelegate:)` connect: handshake options, TLS, timeouts and the WebSocket options.
public struct WebSocketClientConfiguration: Sendable {
    /// Extra request header fields (e.g. `Authorization`, `Origin`, cookies), sent after the handshake fields.
    public var headerFields: HTTPFields

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

    /// Bound on the whole opening: TCP connect, TLS handshake and the HTTP upgrade, in that order.
    /// Default: 10 seconds.
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
        self.http2 = .never
    }
}
