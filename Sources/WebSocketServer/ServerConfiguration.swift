import CoreMetrics
import Logging
import NIOCore
import WebSocketDeflate
import WebSocketNIO

#if TLS
import NIOSSL
#endif

extension Server {
    /// Server settings. Every limit has a default that suits a public-facing server.
    public struct Configuration: Sendable {
        /// The address to bind. Default `127.0.0.1`; use `0.0.0.0` or `::` to listen on every interface.
        public var host: String
        /// The TCP port; 0 picks a free port (read it back from ``Server/port``). Default 8080.
        public var port: Int
        #if TLS
        /// TLS settings for `wss`; `nil` (the default) serves plain `ws`. Only with the package trait `TLS`
        /// (on by default).
        public var tls: TLSConfiguration?
        #endif
        /// How long a client has, from accept to the end of the upgrade (or of a plain HTTP exchange; for an
        /// ``HTTPRoute``, of its request), before it is dropped without an answer. Protects against clients that
        /// never finish their request.
        /// Default 10 s.
        public var handshakeTimeout: Duration
        /// The longest request head (request line plus header fields) accepted, in bytes; a longer one is
        /// answered 431 Request Header Fields Too Large. Default 16 KiB (16 384).
        public var maxRequestHeadLength: Int
        /// The WebSocket settings passed to every upgraded connection: frame and message length limits,
        /// heartbeat (ping interval, pong timeout) and close timeout in `webSocket.connection`
        /// (`WebSocketCore.Connection.Configuration`), buffering in the rest. Its `logger` is replaced by
        /// ``logger``.
        public var webSocket: WebSocketConfiguration
        /// On shutdown, how long open WebSocket connections get to answer the 1001 close frame (and route
        /// tasks to return) before they are closed. Default 5 s.
        public var shutdownGracePeriod: Duration
        /// The size, in bytes, of the buffer a new connection's first read goes into. Values outside 64...16 MiB are
        /// clamped to that range (NIO traps on them), then rounded down to a power of two.
        ///
        /// SwiftNIO's adaptive receive allocator (`AdaptiveRecvByteBufferAllocator`, minimum 64 bytes, maximum
        /// 64 KiB or this size if larger) doubles the next read's buffer after a read that filled it and halves it
        /// after two reads that used less than half. NIO keeps the buffer in the channel for the channel's
        /// lifetime and reuses it, so this is what an idle connection holds in read buffer when its request head
        /// fit in one read. Default 1024 bytes: an opening handshake from a browser or a WebSocket library fits; a
        /// larger request head (many cookies) takes more reads of growing size, and the channel may then keep the
        /// larger buffers too. NIO's own default is 2048.
        public var initialReceiveBufferSize: Int
        /// The listen backlog, in connections. Default 256.
        public var backlog: Int32
        /// permessage-deflate (RFC 7692): when set, the server accepts a client's permessage-deflate offer with
        /// these wishes (``PerMessageDeflate/negotiate(offers:configuration:)``), answers with exactly what was
        /// agreed, and compresses and inflates messages on that connection. `nil` (the default): never
        /// negotiated. ``PerMessageDeflate/Configuration/lowMemory`` keeps no zlib state between messages.
        public var perMessageDeflate: PerMessageDeflate.Configuration?
        /// Where the server and its connections log: the listening address and stop at `info`, failed
        /// connections, failed TLS handshakes and refused requests at `info`, the rest at `debug`.
        /// Default: a logger labelled `websocket-server`.
        public var logger: Logger
        /// The swift-metrics backend for the counters listed in `WebSocketMetrics` (connections, upgrades by
        /// status, messages and bytes each way, close codes, deflate ratio). Default: `MetricsSystem.factory`
        /// as bootstrapped when the server is created; `nil`, or swift-metrics' no-op factory (what
        /// `MetricsSystem.factory` is until a backend is bootstrapped), reports nothing and costs nothing per
        /// message.
        public var metricsFactory: (any MetricsFactory)?
        /// HTTP/2 (RFC 9113) beside HTTP/1.1, with WebSockets over HTTP/2 streams (RFC 8441): ALPN `h2` over TLS,
        /// h2c with prior knowledge on a plain port when asked. `nil` (the default): HTTP/1.1 only.
        public var http2: HTTP2Configuration?

        #if TLS
        /// Creates a configuration with the defaults of every field.
        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            tls: TLSConfiguration? = nil,
            webSocket: WebSocketConfiguration = .init()
        ) {
            self.init(defaultsWithHost: host, port: port, webSocket: webSocket)
            self.tls = tls
        }
        #else
        /// Creates a configuration with the defaults of every field (plain `ws`; the `TLS` trait is off).
        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            webSocket: WebSocketConfiguration = .init()
        ) {
            self.init(defaultsWithHost: host, port: port, webSocket: webSocket)
        }
        #endif

        private init(defaultsWithHost host: String, port: Int, webSocket: WebSocketConfiguration) {
            self.host = host
            self.port = port
            #if TLS
            self.tls = nil
            #endif
            self.handshakeTimeout = .seconds(10)
            self.maxRequestHeadLength = 16 * 1024
            self.webSocket = webSocket
            self.shutdownGracePeriod = .seconds(5)
            self.backlog = 256
            self.initialReceiveBufferSize = 1024
            self.perMessageDeflate = nil
            self.logger = Logger(label: "websocket-server")
            self.metricsFactory = MetricsSystem.factory
            self.http2 = nil
        }
    }
}
