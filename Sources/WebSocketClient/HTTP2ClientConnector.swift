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
/// The HTTP/2 connection carries this one WebSocket and closes with it.
enum HTTP2ClientConnector {
    typealias Install<Result> =
        @Sendable (ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?) throws -> Result

    static func open<Result: Sendable>(
        url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        handshake: ClientHandshake,
        install: @escaping Install<Result>
    ) async throws(WebSocketClientError) -> Result? {
        let eventLoop = eventLoopGroup.next()
        /// Completed with the connection's stream multiplexer when the server's SETTINGS enable extended CONNECT,
        /// with nil when HTTP/2 is not available.
        let ready = eventLoop.makePromise(of: NIOHTTP2Handler.StreamMultiplexer?.self)
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
                                    try Self.configureHTTP2(channel: channel, ready: ready)
                                }
                            }
                        )
                        return
                    }
                    #endif
                    try Self.configureHTTP2(channel: channel, ready: ready)
                }
            }
        let timer = eventLoop.scheduleTask(in: timeout) { ready.fail(WebSocketClientError.timedOut) }
        let connected = bootstrap.connect(host: url.host, port: url.port)
        connected.whenFailure { error in ready.fail(WebSocketClientError.connectFailed(error)) }
        connected.whenSuccess { channel in
            channel.closeFuture.whenComplete { _ in ready.fail(WebSocketClientError.closedDuringHandshake(nil)) }
        }

        let multiplexer: NIOHTTP2Handler.StreamMultiplexer?
        do {
            multiplexer = try await ready.futureResult.get()
        } catch {
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
            throw (error as? WebSocketClientError) ?? .connectFailed(error)
        }
        guard let multiplexer else {
            timer.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
            return nil
        }

        let opened = eventLoop.makePromise(of: Result.self)
        multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    ExtendedConnectClientHandler(handshake: handshake, promise: opened, install: install)
                )
                // One WebSocket per connection: the connection ends with its stream, after a GOAWAY whose flush
                // also sends what the stream wrote last (its END_STREAM).
                stream.closeFuture.whenComplete { _ in
                    guard let parent = stream.parent else { return }
                    let goAway = HTTP2Frame(
                        streamID: .rootStream,
                        payload: .goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil)
                    )
                    parent.writeAndFlush(goAway).whenComplete { _ in parent.close(promise: nil) }
                }
            }
        }.whenFailure { error in opened.fail(WebSocketClientError.closedDuringHandshake(error)) }
        let timer2 = eventLoop.scheduleTask(in: timeout) { opened.fail(WebSocketClientError.timedOut) }
        do {
            let result = try await opened.futureResult.get()
            timer.cancel()
            timer2.cancel()
            return result
        } catch {
            timer.cancel()
            timer2.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
            throw (error as? WebSocketClientError) ?? .closedDuringHandshake(error)
        }
    }

    private static func configureHTTP2(
        channel: any Channel,
        ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer?>
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
        try channel.pipeline.syncOperations.addHandler(ServerSettingsObserver(ready: ready, multiplexer: multiplexer))
    }
}

/// Waits for the server's first SETTINGS frame and tells whether it enables extended CONNECT (RFC 8441 §3).
private final class ServerSettingsObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    private let ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer?>
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    init(ready: EventLoopPromise<NIOHTTP2Handler.StreamMultiplexer?>, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.ready = ready
        self.multiplexer = multiplexer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .settings(.settings(let settings)) = frame.payload {
            let enabled = settings.contains { $0.parameter == .enableConnectProtocol && $0.value == 1 }
            ready.succeed(enabled ? multiplexer : nil)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
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
