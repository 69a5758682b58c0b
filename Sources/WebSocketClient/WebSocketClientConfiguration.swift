import HTTPTypes
import NIOCore
import NIOSSL
import WebSocketDeflate
import WebSocketNIO

/// How ``WebSocketClient`` connects: handshake options, TLS, timeouts and the WebSocket options.
public struct WebSocketClientConfiguration: Sendable {
    /// Extra request header fields (e.g. `Authorization`, `Origin`, cookies), sent after the handshake fields.
    public var headerFields: HTTPFields

    /// Subprotocols offered in `Sec-WebSocket-Protocol`, most preferred first (RFC 6455 §4.1 item 10).
    /// The server may pick at most one of them; any other answer fails the handshake.
    public var subprotocols: [String]

    /// TLS settings for `wss://` URLs (custom trust roots, client certificates...). Default:
    /// `TLSConfiguration.makeClientConfiguration()` (system trust roots, full verification). Ignored for `ws://`.
    public var tls: TLSConfiguration

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

    /// Creates the default configuration (see each field).
    public init(
        headerFields: HTTPFields = [:],
        subprotocols: [String] = [],
        tls: TLSConfiguration = .makeClientConfiguration(),
        connectTimeout: Duration = .seconds(10),
        webSocket: WebSocketConfiguration = .init()
    ) {
        self.headerFields = headerFields
        self.subprotocols = subprotocols
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.maxResponseHeadLength = 16 * 1024
        self.webSocket = webSocket
        self.perMessageDeflate = nil
    }
}
