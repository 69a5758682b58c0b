import HTTPTypes
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOTLS
import WebSocketHandshake
import WebSocketNIO

#if TLS
import NIOSSL
#endif

/// Whether and how the client tries HTTP/2 (RFC 8441: a WebSocket on one stream of an HTTP/2 connection).
public enum HTTP2Preference: Sendable, Hashable {
    /// HTTP/1.1 upgrade only (RFC 6455 §4). The default.
    case never
    /// `wss://`: offer `h2` and `http/1.1` by ALPN; when the server picks `h2` and advertises
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL`, open the WebSocket with an extended CONNECT; otherwise fall back to
    /// the HTTP/1.1 upgrade on a new connection. `ws://`: HTTP/1.1 (browsers never use h2c either).
    case preferred
    /// As ``preferred`` for `wss://`; `ws://` speaks HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3), falling
    /// back to HTTP/1.1 when the server does not advertise extended CONNECT.
    case priorKnowledge
}

/// Opens a WebSocket over an HTTP/2 stream. Returns nil when the server does not offer it (no `h2` by ALPN, or
/// no `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` in its first SETTINGS): the caller then falls back to HTTP/1.1.
/// Without a pool (``open(url:configuration:eventLoopGroup:handshake:install:)``) the HTTP/2 connection carries
/// one WebSocket and closes with it; ``HTTP2ConnectionPool`` uses ``connect(url:configuration:eventLoopGroup:
/// observe:)`` and ``openStream(on:handshake:timeout:install:)`` to share one connection among several.
enum HTTP2ClientConnector {
    typealias Install<Result> =
        @Sendable (ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?) throws -> Result

    /// An HTTP/2 connection whose server enabled extended CONNECT.
    struct Connection: Sendable {
        var channel: any Channel
        var multiplexer: NIOHTTP2Handler.StreamMultiplexer
    }

    static func open<Result: Sendable>(
        url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        handshake: ClientHandshake,
        install: @escaping Install<Result>
    ) async throws(WebSocketClientError) -> Result? {
        guard let connection = try await connect(url: url, configuration: configuration, eventLoopGroup: eventLoopGroup)
        else { return nil }
        let parent = connection.channel
        do {
            return try await openStream(
                on: connection,
                handshake: handshake,
                timeout: TimeAmount(saturating: configuration.connectTimeout),
                install: install,
                onStreamClose: {
                    // One WebSocket per connection: the connection ends with its stream, after a GOAWAY whose
                    // flush also sends what the stream wrote last (its END_STREAM).
                    goAwayAndClose(parent)
                }
            )
        } catch {
            parent.close(promise: nil)
            throw error
        }
    }

    /// Sends GOAWAY (NO_ERROR, no stream processed: servers do not open streams here, RFC 9113 §6.8) and closes
    /// the connection once it is written.
    static func goAwayAndClose(_ channel: any Channel) {
        let goAway = HTTP2Frame(
            streamID: .rootStream,
            payload: .goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil)
        )
        channel.writeAndFlush(goAway).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Connects to `url`'s host and port (TLS with ALPN `h2` for `wss://`, h2c prior knowledge for `ws://`) and
    /// waits for the server's first SETTINGS frame. Returns nil when the server did not pick `h2` or did not
    /// enable extended CONNECT (the connection is then closed). `observe` sees every frame of the connection's
    /// stream 0 from the first SETTINGS on (SETTINGS updates, GOAWAY), on its event loop. When `abandon`
    /// succeeds first, the attempt fails with ``HTTP2ConnectionPoolError/shutDown`` and its connection is closed.
    /// - Throws: ``WebSocketClientError/connectFailed(_:)`` (with `CancellationError` when the task is cancelled:
    ///   the connection is then closed), ``WebSocketClientError/timedOut`` (after
    ///   ``WebSocketClientConfiguration/connectTimeout``), ``WebSocketClientError/closedDuringHandshake(_:)``.
    static func connect(
        url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        observe: (@Sendable (HTTP2Frame.FramePayload) -> Void)? = nil,
        abandon: EventLoopFuture<Void>? = nil
    ) async throws(WebSocketClientError) -> Connection? {
        let eventLoop = eventLoopGroup.next()
        /// Completed with the connection when the server's SETTINGS enable extended CONNECT, with nil when
        /// HTTP/2 is not available.
        let ready = eventLoop.makePromise(of: Connection?.self)
        #if TLS
        let sslContext: NIOSSLContext?
        if url.isSecure {
            var tls = configuration.tls
            tls.applicationProtocols = ["h2", "http/1.1"]
            do {
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw .connectFailed(error)
            }
        } else {
            sslContext = nil
        }
        let serverHostname = url.isIPv6Literal || url.isIPv4Literal ? nil : url.host
        #else
        if url.isSecure { return nil }
        #endif
        let timeout = TimeAmount(saturating: configuration.connectTimeout)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    #if TLS
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                        try sync.addHandler(
                            ApplicationProtocolNegotiationHandler { result, channel in
                                guard case .negotiated("h2") = result else {
                                    ready.succeed(nil)
                                    return channel.close()
                                }
                                return channel.eventLoop.makeCompletedFuture {
                                    try Self.configureHTTP2(channel: channel, ready: ready, observe: observe)
                                }
                            }
                        )
                        return
                    }
                    #endif
                    try Self.configureHTTP2(channel: channel, ready: ready, observe: observe)
                }
            }
        let timer = eventLoop.scheduleTask(in: timeout) { ready.fail(WebSocketClientError.timedOut) }
        abandon?.whenSuccess { ready.fail(WebSocketClientError.connectFailed(HTTP2ConnectionPoolError.shutDown)) }
        let connected = bootstrap.connect(host: url.host, port: url.port)
        connected.whenFailure { error in ready.fail(WebSocketClientError.connectFailed(error)) }
        connected.whenSuccess { channel in
            channel.closeFuture.whenComplete { _ in ready.fail(WebSocketClientError.closedDuringHandshake(nil)) }
        }
        let connection: Connection?
        do {
            connection = try await withTaskCancellationHandler {
                try await ready.futureResult.get()
            } onCancel: {
                ready.fail(WebSocketClientError.connectFailed(CancellationError()))
            }
        } catch {
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
            throw (error as? WebSocketClientError) ?? .connectFailed(error)
        }
        timer.cancel()
        if connection == nil { connected.whenSuccess { $0.close(promise: nil) } }
        return connection
    }

    /// Opens one extended CONNECT stream on `connection` and installs the WebSocket on it. A failure (refusal,
    /// reset, `timeout`) ends that stream only. `onStreamClose` runs when the stream channel closes (also after
    /// a failure).
    /// - Throws: ``WebSocketClientError/rejected(_:response:)`` and the other handshake errors,
    ///   ``WebSocketClientError/timedOut``, ``WebSocketClientError/closedDuringHandshake(_:)`` (e.g. RST_STREAM
    ///   `REFUSED_STREAM`, whose underlying error is NIOHTTP2's `StreamClosed`),
    ///   ``WebSocketClientError/connectFailed(_:)`` with `CancellationError` when the task is cancelled (the
    ///   stream is then reset).
    static func openStream<Result: Sendable>(
        on connection: Connection,
        handshake: ClientHandshake,
        timeout: TimeAmount,
        install: @escaping Install<Result>,
        onStreamClose: @escaping @Sendable () -> Void
    ) async throws(WebSocketClientError) -> Result {
        let eventLoop = connection.channel.eventLoop
        let opened = eventLoop.makePromise(of: Result.self)
        let created = eventLoop.makePromise(of: (any Channel).self)
        connection.multiplexer.createStreamChannel(promise: created) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    ExtendedConnectClientHandler(handshake: handshake, promise: opened, install: install)
                )
                stream.closeFuture.whenComplete { _ in onStreamClose() }
            }
        }
        created.futureResult.whenFailure { error in
            opened.fail(WebSocketClientError.closedDuringHandshake(error))
            onStreamClose()
        }
        let timer = eventLoop.scheduleTask(in: timeout) {
            opened.fail(WebSocketClientError.timedOut)
            created.futureResult.whenSuccess { $0.close(promise: nil) }
        }
        do {
            let result = try await withTaskCancellationHandler {
                try await opened.futureResult.get()
            } onCancel: {
                // As for the timeout: the stream is reset, the caller gets the error at once.
                opened.fail(WebSocketClientError.connectFailed(CancellationError()))
                created.futureResult.whenSuccess { $0.close(promise: nil) }
            }
            timer.cancel()
            return result
        } catch {
            timer.cancel()
            throw (error as? WebSocketClientError) ?? .closedDuringHandshake(error)
        }
    }

    private static func configureHTTP2(
        channel: any Channel,
        ready: EventLoopPromise<Connection?>,
        observe: (@Sendable (HTTP2Frame.FramePayload) -> Void)?
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 16_384),
        ]
        let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: connection,
            streamConfiguration: .init(),
            inboundStreamInitializer: { stream in stream.close() }  // servers do not open streams here
        )
        try channel.pipeline.syncOperations.addHandler(
            ServerSettingsObserver(
                ready: ready,
                connection: Connection(channel: channel, multiplexer: multiplexer),
                observe: observe
            )
        )
    }
}

/// Waits for the server's first SETTINGS frame and tells whether it enables extended CONNECT (RFC 8441 §3); then
/// hands the later frames of stream 0 to `observe`, if any (else it leaves the pipeline).
private final class ServerSettingsObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    private let ready: EventLoopPromise<HTTP2ClientConnector.Connection?>
    private let connection: HTTP2ClientConnector.Connection
    private let observe: (@Sendable (HTTP2Frame.FramePayload) -> Void)?
    private var settled = false

    init(
        ready: EventLoopPromise<HTTP2ClientConnector.Connection?>,
        connection: HTTP2ClientConnector.Connection,
        observe: (@Sendable (HTTP2Frame.FramePayload) -> Void)?
    ) {
        self.ready = ready
        self.connection = connection
        self.observe = observe
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if !settled, case .settings(.settings(let settings)) = frame.payload {
            settled = true
            let enabled = settings.contains { $0.parameter == .enableConnectProtocol && $0.value == 1 }
            if enabled { observe?(frame.payload) }
            ready.succeed(enabled ? connection : nil)
            if observe == nil || !enabled {
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            }
        } else if settled, frame.streamID == .rootStream {
            observe?(frame.payload)
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(WebSocketClientError.closedDuringHandshake(error))
        context.close(promise: nil)
    }
}

/// The client side of one extended CONNECT stream: sends the request, validates the `200`, then installs the
/// DATA-frame adapter and the WebSocket handler in the stream channel.
private final class ExtendedConnectClientHandler<Result: Sendable>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let handshake: ClientHandshake
    private let promise: EventLoopPromise<Result>
    private var install: HTTP2ClientConnector.Install<Result>?

    init(
        handshake: ClientHandshake,
        promise: EventLoopPromise<Result>,
        install: @escaping HTTP2ClientConnector.Install<Result>
    ) {
        self.handshake = handshake
        self.promise = promise
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private var requestSent = false

    private func sendRequest(context: ChannelHandlerContext) {
        guard !requestSent else { return }
        requestSent = true
        let request = handshake.extendedConnectRequest
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "CONNECT")
        headers.add(name: ":protocol", value: request.extendedConnectProtocol ?? ExtendedConnect.webSocketProtocol)
        headers.add(name: ":scheme", value: request.scheme ?? "https")
        headers.add(name: ":path", value: request.path ?? "/")
        headers.add(name: ":authority", value: request.authority ?? "")
        for field in request.headerFields {
            headers.add(name: field.name.canonicalName, value: field.value)
        }
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .headers(let payload) = unwrapInboundIn(data), let install else { return }
        var status: Int?
        var fields = HTTPFields()
        for (name, value, _) in payload.headers {
            if name == ":status" {
                status = Int(value)
            } else if !name.hasPrefix(":"), let fieldName = HTTPField.Name(name) {
                fields.append(HTTPField(name: fieldName, value: value))
            }
        }
        guard let code = status, (100...599).contains(code) else {
            fail(context: context, .malformedResponse("no valid :status in the response to the extended CONNECT"))
            return
        }
        if (100...199).contains(code) { return }  // interim responses
        let response = HTTPResponse(status: .init(code: code), headerFields: fields)
        let negotiated: NegotiatedHandshake
        do {
            negotiated = try handshake.validateExtendedConnect(response)
        } catch {
            fail(context: context, .rejected(error, response: response))
            return
        }
        self.install = nil
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandler(HTTP2StreamBytesHandler(), position: .after(self))
            pipeline.removeHandler(context: context, promise: nil)
            promise.succeed(try install(pipeline, negotiated, nil))
        } catch let error as WebSocketClientError {
            promise.fail(error)
            context.close(promise: nil)
        } catch {
            promise.fail(WebSocketClientError.closedDuringHandshake(error))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if install != nil {
            install = nil
            promise.fail(WebSocketClientError.closedDuringHandshake(nil))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if install != nil {
            install = nil
            promise.fail(WebSocketClientError.closedDuringHandshake(error))
        }
        context.close(promise: nil)
    }

    private func fail(context: ChannelHandlerContext, _ error: WebSocketClientError) {
        guard install != nil else { return }
        install = nil
        promise.fail(error)
        context.close(promise: nil)
    }
}
