import ArgumentParser
import WebSocketServer

/// Echoes every WebSocket message back with its type, on the delegate API (one copy per message: the payload is
/// copied right behind the frame header into a single outbound buffer).
struct EchoDelegate: WebSocketDelegate {
    let logger: Logger

    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        do {
            try webSocket.send(kind, copying: payload)
        } catch {
            self.logger.debug("echo not sent: \(error)")
        }
    }
}

@main
struct WSEcho: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-echo",
        abstract: "A WebSocket echo server (RFC 6455): every message comes back with its type.",
        discussion: """
            Serves the path / (any other path gets 404) until SIGINT or SIGTERM, then sends close 1001 to every \
            connection and waits up to 5 seconds for them to close.
            """
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on (0 picks a free one; the chosen port is logged).")
    var port = 9001

    @Option(help: "PEM certificate chain: serve wss:// (needs --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    @Option(help: "The longest message (and frame) accepted, in bytes; longer ones fail with 1009.")
    var maxMessageLength = 16 * 1024 * 1024

    @Option(help: "Send a ping after this many idle seconds and drop peers that do not answer (0: no heartbeat).")
    var pingInterval = 0

    @Option(
        help: "With --ping-interval: seconds to wait for the pong (or any traffic) before dropping the peer (default 20)."
    )
    var pongTimeout: Int?

    @Flag(help: "Accept permessage-deflate (RFC 7692) offers and compress echoed messages.")
    var deflate = false

    @Flag(help: "With --deflate: no context takeover and 512-byte windows (least memory per connection).")
    var deflateLowMemory = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Flag(help: "Serve HTTP/2 too (RFC 9113), with WebSockets over HTTP/2 streams (RFC 8441): ALPN h2 with TLS.")
    var http2 = false

    @Flag(help: "Accept h2c (HTTP/2 with prior knowledge) on the plain port besides HTTP/1.1; implies --http2.")
    var h2c = false

    @Option(help: "With --http2: SETTINGS_MAX_CONCURRENT_STREAMS, streams per HTTP/2 connection.")
    var maxConcurrentStreams = 100

    @Option(
        name: .customLong("max-websockets-per-connection"),
        help: "With --http2: WebSockets one HTTP/2 connection may carry at once."
    )
    var maxWebSocketsPerConnection = 100

    @Flag(
        name: .customLong("no-websocket-routes"),
        help: "With --http2: no WebSocket route (tests of an HTTP/2 server that must not offer extended CONNECT)."
    )
    var noWebSocketRoutes = false

    @Option(help: "With --http2: an HTML file served at /page (for browser tests); GET /stats answers HTTP/2 counters.")
    var page: String?

    @Option(
        help: """
            With --http2: also serve Server-Sent Events at /events (a numbered ticker per client, resumable with \
            Last-Event-ID) and /broadcast (one shared ticker), one tick every this many milliseconds.
            """
    )
    var eventInterval: Int?

    @Option(help: "With --event-interval: pad each tick's data to this many bytes.")
    var eventSize = 0

    @Option(help: "With --event-interval: seconds between heartbeat comments on the event streams (0: none).")
    var eventHeartbeat = 15

    @Option(help: "With --event-interval: send this reconnection time (milliseconds) first on each event stream.")
    var eventRetry: Int?

    @Flag(
        help: """
            With --event-interval: also serve the WebSocket route /ws-broadcast, which sends /broadcast's ticks as \
            text messages to every connected WebSocket (the fan-out benchmark's WebSocket side).
            """
    )
    var wsBroadcast = false

    @Flag(
        help: """
            Also serve /chat?room=R&user=U: every text message goes to everyone in room R, '@U text' to user U's \
            connections (an example of WebSocketGroups).
            """
    )
    var groups = false

    func validate() throws {
        if (self.tlsCert == nil) != (self.tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if !(0...65535).contains(self.port) {
            throw ValidationError("--port must be 0...65535 (0 picks a free port)")
        }
        if self.pingInterval < 0 {
            throw ValidationError("--ping-interval must be >= 0 (0: no heartbeat)")
        }
        if let pongTimeout = self.pongTimeout {
            guard self.pingInterval > 0 else { throw ValidationError("--pong-timeout needs --ping-interval") }
            guard pongTimeout >= 1 else { throw ValidationError("--pong-timeout must be >= 1") }
        }
        if self.maxMessageLength < 1 {
            throw ValidationError("--max-message-length must be positive")
        }
        if (self.page != nil || self.noWebSocketRoutes) && !(self.http2 || self.h2c) {
            throw ValidationError("--page and --no-websocket-routes need --http2 or --h2c")
        }
        if self.eventInterval != nil && !(self.http2 || self.h2c) {
            throw ValidationError("--event-interval needs --http2 or --h2c")
        }
        if self.wsBroadcast && self.eventInterval == nil {
            throw ValidationError("--ws-broadcast needs --event-interval")
        }
        if let eventInterval = self.eventInterval, eventInterval < 1 {
            throw ValidationError("--event-interval must be at least 1 (milliseconds)")
        }
        if self.eventSize < 0 || self.eventHeartbeat < 0 || (self.eventRetry ?? 0) < 0 {
            throw ValidationError("--event-size, --event-heartbeat and --event-retry must be >= 0")
        }
        if self.maxConcurrentStreams < 1 || self.maxWebSocketsPerConnection < 1 {
            throw ValidationError("--max-concurrent-streams and --max-websockets-per-connection must be positive")
        }
        if self.deflateLowMemory && !self.deflate {
            throw ValidationError("--deflate-low-memory needs --deflate")
        }
        if Logger.Level(rawValue: self.logLevel) == nil {
            throw ValidationError(
                "unknown --log-level '\(self.logLevel)' (trace, debug, info, notice, warning, error, critical)"
            )
        }
    }

    func run() async throws {
        var logger = Logger(label: "ws-echo")
        logger.logLevel = Logger.Level(rawValue: self.logLevel) ?? .info

        var webSocket = WebSocketConfiguration()
        webSocket.connection.maxMessageLength = self.maxMessageLength
        webSocket.connection.maxFramePayloadLength = self.maxMessageLength
        // The echo delegate is the final consumer of inbound bytes: unmask in NIO's buffer, no copy per read.
        webSocket.unmasksInReceivedBuffer = true
        if self.pingInterval > 0 {
            webSocket.connection.pingInterval = .seconds(self.pingInterval)
            webSocket.connection.pongTimeout = .seconds(self.pongTimeout ?? 20)
        }

        var configuration = Server.Configuration(host: self.host, port: self.port, webSocket: webSocket)
        configuration.logger = logger
        if let tlsCert, let tlsKey {
            #if TLS
            let chain: [NIOSSLCertificate]
            let key: NIOSSLPrivateKey
            do {
                chain = try NIOSSLCertificate.fromPEMFile(tlsCert)
            } catch {
                throw ValidationError("cannot load --tls-cert \(tlsCert): \(error)")
            }
            do {
                key = try NIOSSLPrivateKey(file: tlsKey, format: .pem)
            } catch {
                throw ValidationError("cannot load --tls-key \(tlsKey): \(error)")
            }
            configuration.tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key)
            )
            #else
            _ = (tlsCert, tlsKey)
            throw ValidationError("--tls-cert/--tls-key: this build has no TLS (the package trait TLS is off)")
            #endif
        }
        if self.deflate {
            configuration.perMessageDeflate = self.deflateLowMemory ? .lowMemory : .init()
        }
        if self.http2 || self.h2c {
            var http2 = Server.HTTP2Configuration(
                cleartextPriorKnowledge: self.h2c,
                maxConcurrentStreams: self.maxConcurrentStreams,
                maxWebSocketsPerConnection: self.maxWebSocketsPerConnection
            )
            http2.maxHeaderListSize = 16 * 1024
            configuration.http2 = http2
        }
        let delegateLogger = logger
        var routes = [WebSocketRoute(path: "/", handler: .delegate { _ in EchoDelegate(logger: delegateLogger) })]
        if self.noWebSocketRoutes { routes = [] }
        if self.groups { routes.append(EchoChat.route(WebSocketGroups(scope: "/chat"))) }
        let server: Server
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if self.http2 || self.h2c {
            var eventStreamRoutes: [EventStreamRoute] = []
            if let eventInterval = self.eventInterval {
                let broadcaster = EventStreamBroadcaster()
                let interval = Duration.milliseconds(eventInterval)
                eventStreamRoutes = EchoEventStreams.routes(
                    interval: interval,
                    dataSize: self.eventSize,
                    heartbeat: self.eventHeartbeat > 0 ? .seconds(self.eventHeartbeat) : nil,
                    retry: self.eventRetry,
                    broadcaster: broadcaster,
                    logger: logger
                )
                let ticker = EchoBroadcastTicker(interval: interval, dataSize: self.eventSize) { tick, data in
                    broadcaster.publish(try ServerSentEvent(data: data, id: String(tick)))
                }
                services.append(.init(service: ticker))
                if self.wsBroadcast {
                    let webSocketBroadcaster = EchoWebSocketBroadcaster()
                    routes.append(webSocketBroadcaster.route())
                    let webSocketTicker = EchoBroadcastTicker(interval: interval, dataSize: self.eventSize) { _, data in
                        webSocketBroadcaster.publish(ByteBuffer(string: data))
                    }
                    services.append(.init(service: webSocketTicker))
                }
            }
            server = try EchoPages.server(
                configuration: configuration,
                routes: routes,
                eventStreamRoutes: eventStreamRoutes,
                pageFile: self.page
            )
        } else {
            server = Server(configuration: configuration, routes: routes)
        }
        logger.info(
            "serving WebSocket echo on path /",
            metadata: [
                "scheme": "\(self.tlsCert == nil ? "ws" : "wss")",
                "permessage-deflate": "\(self.deflate ? (self.deflateLowMemory ? "low-memory" : "on") : "off")",
                "http2": "\(self.h2c ? "h2c and h2" : (self.http2 ? "h2" : "off"))",
            ]
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server)] + services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
