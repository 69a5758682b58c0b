import NIOCore
import NIOSSL
import WebSocketDeflate
import WebSocketNIO

extension WebSocketServer {
    /// Server settings. Every limit has a default that suits a public-facing server.
    public struct Configuration: Sendable {
        /// The address to bind. Default `127.0.0.1`; use `0.0.0.0` or `::` to listen on every interface.
        public var host: String
        /// The TCP port; 0 picks a free port (read it back from ``WebSocketServer/port``). Default 8080.
        public var port: Int
        /// TLS settings for `wss`; `nil` (the default) serves plain `ws`.
        public var tls: TLSConfiguration?
        /// How long a client has, from accept to the end of the upgrade (or of a plain HTTP exchange), before
        /// it is dropped without an answer. Protects against clients that never finish their request.
        /// Default 10 s.
        public var handshakeTimeout: TimeAmount
        /// The largest request head (request line plus header fields) accepted, in bytes; a larger one is
        /// answered 431 Request Header Fields Too Large. Default 16 KiB.
        public var maxRequestHeadSize: Int
        /// The WebSocket settings passed to every upgraded connection: frame and message size limits,
        /// heartbeat (ping interval, pong timeout) and close timeout in `webSocket.connection`
        /// (`WebSocketCore.Connection.Configuration`), buffering in the rest.
        public var webSocket: WebSocketConfiguration
        /// On ``WebSocketServer/shutdown()``, how long open WebSocket connections get to answer the 1001
        /// close frame before they are closed. Default 5 s.
        public var shutdownGracePeriod: TimeAmount
        /// The listen backlog. Default 256.
        public var backlog: Int32
        /// permessage-deflate (RFC 7692): when set, the server accepts a client's permessage-deflate offer with
        /// these wishes (``PerMessageDeflate/negotiate(offers:configuration:)``), answers with exactly what was
        /// agreed, and compresses and inflates messages on that connection. `nil` (the default): never
        /// negotiated. ``PerMessageDeflate/Configuration/lowMemory`` keeps no zlib state between messages.
        public var perMessageDeflate: PerMessageDeflate.Configuration?

        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            tls: TLSConfiguration? = nil,
            webSocket: WebSocketConfiguration = .init()
        ) {
            self.host = host
            self.port = port
            self.tls = tls
            self.handshakeTimeout = .seconds(10)
            self.maxRequestHeadSize = 16 * 1024
            self.webSocket = webSocket
            self.shutdownGracePeriod = .seconds(5)
            self.backlog = 256
            self.perMessageDeflate = nil
        }
    }
}
