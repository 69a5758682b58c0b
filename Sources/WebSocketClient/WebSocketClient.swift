import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import WebSocketCore
import WebSocketDeflate
import WebSocketHandshake
import WebSocketNIO

#if TLS
import NIOSSL
#endif

extension WebSocket {
    /// Connects to a `ws://` or `wss://` URL (RFC 6455 §4.1) and returns the open WebSocket (async API).
    ///
    /// ```swift
    /// let ws = try await WebSocket.connect(to: "ws://127.0.0.1:9001/chat")
    /// try await ws.send(text: "hello")
    /// for await message in ws.messages { print(message.text) }
    /// print(await ws.closeStatus)
    /// ```
    ///
    /// The opening: DNS and TCP connect (NIO's happy eyeballs), TLS with SNI for host names (`wss`, with the
    /// package trait `TLS`), the upgrade request built by `WebSocketHandshake.ClientHandshake` (random
    /// `Sec-WebSocket-Key`, the offered subprotocols, extra header fields), and the 101 response validated by
    /// it: status, `Upgrade`, `Connection`, exact `Sec-WebSocket-Accept`, no subprotocol or extension that was
    /// not offered. Bytes that follow the response head in the same read (early frames from the server) are
    /// handed to the WebSocket handler before anything read later. Prefer
    /// ``withConnection(to:configuration:eventLoopGroup:_:)``, which cannot leave a connection open.
    ///
    /// With ``WebSocketClientConfiguration/proxy`` (or ``WebSocketClientConfiguration/proxyEnvironment``) TCP
    /// goes to the proxy, which opens a tunnel (HTTP `CONNECT` or SOCKS5) to the server; TLS then runs inside
    /// the tunnel. A 301/302/303/307/308 answer is followed (``WebSocketClientConfiguration/maxRedirects``).
    /// ``WebSocketClientConfiguration/connectTimeout`` bounds all of it.
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL; host, port (default 80/443), path and query are used.
    ///   - configuration: header fields, subprotocols, TLS, timeout, logger and WebSocket options.
    ///   - eventLoopGroup: where the connection runs. Default: NIO's shared singleton group.
    /// - Returns: the open WebSocket; ``WebSocketNIO/WebSocket/subprotocol`` holds the server's choice.
    /// - Throws: ``WebSocketClientError`` (invalid URL, connect/TLS failure, timeout, rejected handshake,
    ///   ``WebSocketClientError/proxyFailed``, ``WebSocketClientError/redirectFailed``); when the calling task
    ///   is cancelled during the opening, ``WebSocketClientError/connectFailed`` wrapping `CancellationError`.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(WebSocketClientError) -> WebSocket {
        try await self.connect(
            to: ClientConnector.parse(url),
            configuration: configuration,
            eventLoopGroup: eventLoopGroup
        )
    }

    /// Connects to a parsed URL (see ``connect(to:configuration:eventLoopGroup:)-(String,_,_)``).
    /// - Throws: ``WebSocketClientError``.
    public static func connect(
        to url: WebSocketURL,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(WebSocketClientError) -> WebSocket {
        let webSocketConfiguration = configuration.webSocketWithLogger
        return try await ClientConnector.open(
            url: url,
            configuration: configuration,
            eventLoopGroup: eventLoopGroup
        ) { pipeline, negotiated, leftover, codec in
            try pipeline.addAsyncWebSocket(
                role: .client,
                configuration: webSocketConfiguration,
                subprotocol: negotiated.subprotocol,
                leftoverBytes: leftover,
                codec: codec
            )
        }
    }

    /// Connects, runs `body` with the open WebSocket, then closes it: with 1000 (normal closure) when `body`
    /// returns, with 1011 (internal error) when it throws, waiting for the close handshake either way
    /// (bounded by `closeTimeout`). The scoped form of ``connect(to:configuration:eventLoopGroup:)-(String,_,_)``:
    /// no connection outlives the call.
    ///
    /// - Returns: what `body` returns.
    /// - Throws: ``WebSocketClientError`` when the connection cannot be opened, or what `body` throws.
    public static func withConnection<Result: Sendable>(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (WebSocket) async throws -> Result
    ) async throws -> Result {
        let webSocket = try await self.connect(to: url, configuration: configuration, eventLoopGroup: eventLoopGroup)
        let result: Result
        do {
            result = try await body(webSocket)
        } catch {
            await webSocket.close(code: .internalError, reason: "")
            throw error
        }
        await webSocket.close()
        return result
    }
}

/// A client connection run with the delegate API (the fastest path): events arrive on the event loop with
/// borrowed payloads.
public struct WebSocketDelegateConnection: Sendable {
    /// Connects and runs the WebSocket with the **delegate API**.
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL.
    ///   - configuration: header fields, subprotocols, TLS, timeout, logger and WebSocket options.
    ///   - eventLoopGroup: where the connection runs.
    ///   - makeDelegate: called once on the connection's event loop after a valid 101, with what was
    ///     negotiated; the delegate it returns receives every event there (see `WebSocketDelegate`).
    /// - Returns: the connection: its channel, the negotiated subprotocol, a send handle and a future of the
    ///   final close status.
    /// - Throws: ``WebSocketClientError``.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        makeDelegate: @escaping @Sendable (NegotiatedHandshake) -> any WebSocketDelegate
    ) async throws(WebSocketClientError) -> WebSocketDelegateConnection {
        let parsed = try ClientConnector.parse(url)
        let webSocketConfiguration = configuration.webSocketWithLogger
        return try await ClientConnector.open(
            url: parsed,
            configuration: configuration,
            eventLoopGroup: eventLoopGroup
        ) { pipeline, negotiated, leftover, codec in
            let context = try pipeline.addWebSocketDelegate(
                role: .client,
                configuration: webSocketConfiguration,
                subprotocol: negotiated.subprotocol,
                leftoverBytes: leftover,
                codec: codec,
                delegate: makeDelegate(negotiated)
            )
            return WebSocketDelegateConnection(
                context: context,
                subprotocol: negotiated.subprotocol,
                handshake: negotiated,
                closed: context.closed
            )
        }
    }

    /// The channel the WebSocket runs on (close it to abort).
    public let channel: any Channel
    private let context: NIOLoopBound<WebSocketDelegateContext>
    /// A `Sendable` handle to send from any thread or task.
    public let sendHandle: WebSocketSendHandle
    /// The subprotocol the server chose, nil when none.
    public let subprotocol: String?
    /// What the opening handshake agreed on, with the server's 101 response.
    public let handshake: NegotiatedHandshake
    /// Completes with the final close status when the connection is over.
    public let closed: EventLoopFuture<CloseStatus>

    init(
        context: WebSocketDelegateContext,
        subprotocol: String?,
        handshake: NegotiatedHandshake,
        closed: EventLoopFuture<CloseStatus>
    ) {
        self.channel = context.channel
        self.context = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.sendHandle = context.sendHandle
        self.subprotocol = subprotocol
        self.handshake = handshake
        self.closed = closed
    }

    /// Runs `body` on the connection's event loop with its `WebSocketDelegateContext`
    /// (`try await connection.withContext { try $0.send(text: "hi") }`).
    /// - Throws: what `body` throws.
    public func withContext<Result: Sendable>(
        _ body: @escaping @Sendable (WebSocketDelegateContext) throws -> Result
    ) async throws -> Result {
        let context = self.context
        return try await self.channel.eventLoop.submit { try body(context.value) }.get()
    }
}

/// Opens connections for ``WebSocket/connect(to:configuration:eventLoopGroup:)-(String,_,_)`` and
/// ``WebSocketDelegateConnection/connect(to:configuration:eventLoopGroup:makeDelegate:)``.
enum ClientConnector {
    static func parse(_ url: String) throws(WebSocketClientError) -> WebSocketURL {
        do {
            return try WebSocketURL(url)
        } catch {
            throw .invalidURL(error)
        }
    }

    static func open<Result: Sendable>(
        url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        install:
            @escaping @Sendable (
                ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?, (any MessageCodec)?
            ) throws -> Result
    ) async throws(WebSocketClientError) -> Result {
        // One deadline for the whole opening, over every redirect.
        let deadline = NIODeadline.now() + TimeAmount(saturating: configuration.connectTimeout)
        var redirects = WebSocketRedirects(start: url, maxRedirects: configuration.maxRedirects)
        while true {
            let current = redirects.current
            do throws(WebSocketClientError) {
                return try await self.openOnce(
                    url: current,
                    sendsCredentials: current.origin == url.origin,
                    deadline: deadline,
                    configuration: configuration,
                    eventLoopGroup: eventLoopGroup,
                    install: install
                )
            } catch {
                guard error == .handshakeRejected, error.handshakeError == .unexpectedStatus,
                    let response = error.response, WebSocketRedirects.isRedirect(response.status.code),
                    configuration.maxRedirects > 0
                else { throw error }
                do {
                    let next = try redirects.follow(location: response.headerFields[.location])
                    configuration.logger.debug(
                        "redirected",
                        metadata: ["status": "\(response.status.code)", "from": "\(current)", "to": "\(next)"]
                    )
                } catch {
                    throw .redirectFailed(error, response: response)
                }
            }
        }
    }

    /// The request's header fields: the configured ones, `Origin`, and `Authorization` unless a redirect left
    /// the original origin (then `Authorization` and `Cookie` fields are dropped).
    static func headerFields(_ configuration: WebSocketClientConfiguration, sendsCredentials: Bool) -> HTTPFields {
        var fields = configuration.headerFields
        if !sendsCredentials {
            fields[.authorization] = nil
            fields[.cookie] = nil
        }
        if let origin = configuration.origin {
            fields[.origin] = origin
        }
        if sendsCredentials, let authorization = configuration.authorization {
            fields[.authorization] = authorization
        }
        return fields
    }

    /// One connection attempt to `url` (no redirect), bounded by `deadline`.
    private static func openOnce<Result: Sendable>(
        url: WebSocketURL,
        sendsCredentials: Bool,
        deadline: NIODeadline,
        configuration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        install:
            @escaping @Sendable (
                ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?, (any MessageCodec)?
            ) throws -> Result
    ) async throws(WebSocketClientError) -> Result {
        let timeout = deadline - NIODeadline.now()
        guard timeout > .zero else { throw .timedOut }
        if Task.isCancelled { throw .connectFailed(CancellationError()) }
        var proxy = configuration.proxy
        var proxyNegotiation: ProxyHandler.Negotiation?
        do throws(ProxyError) {
            if proxy == nil, let environment = configuration.proxyEnvironment {
                proxy = try environment.proxy(for: url)
            }
            if let proxy {
                proxyNegotiation = try ProxyHandler.negotiation(for: proxy, host: url.host, port: url.port)
            }
        } catch {
            throw .proxyFailed(error)
        }
        let proxyAddress = proxy.map { (host: $0.host, port: $0.port) }
        let negotiation = proxyNegotiation
        let eventLoop = eventLoopGroup.next()
        let deflate = configuration.perMessageDeflate
        let handshake = ClientHandshake(
            url: url,
            subprotocols: configuration.subprotocols,
            extensions: deflate.map { [PerMessageDeflate.offer($0)] } ?? [],
            headerFields: self.headerFields(configuration, sendsCredentials: sendsCredentials)
        )
        // RFC 7692 §7.1: check the server's permessage-deflate answer against the offer, then build the codec.
        let installWithExtensions:
            @Sendable (ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?) throws -> Result = {
                pipeline, negotiated, leftover in
                var codec: (any MessageCodec)? = nil
                if let deflate {
                    do {
                        if let parameters = try PerMessageDeflate.accept(
                            response: negotiated.extensions,
                            offered: deflate
                        ) {
                            codec = PerMessageDeflateCodec(
                                role: .client,
                                parameters: parameters,
                                configuration: deflate
                            )
                        }
                    } catch {
                        throw WebSocketClientError.extensionRejected("\(error)", response: negotiated.response)
                    }
                }
                return try install(pipeline, negotiated, leftover, codec)
            }
        // RFC 8441: try a WebSocket over an HTTP/2 stream first when asked; nil means "not offered, use HTTP/1.1".
        if configuration.http2 == .priorKnowledge || (configuration.http2 == .preferred && url.isSecure),
            let result = try await HTTP2ClientConnector.open(
                url: url,
                configuration: configuration,
                eventLoopGroup: eventLoopGroup,
                handshake: handshake,
                install: installWithExtensions
            )
        {
            return result
        }
        let promise = eventLoop.makePromise(of: Result.self)
        #if TLS
        let sslContext: NIOSSLContext?
        // Through a proxy the name is checked by ProxiedServerIdentityHandler (NIOSSL would also accept the
        // proxy's IP address); the chain is still verified by BoringSSL.
        let checksIdentityItself = negotiation != nil && configuration.tls.certificateVerification == .fullVerification
        if url.isSecure {
            do {
                var tls = configuration.tls
                if checksIdentityItself { tls.certificateVerification = .noHostnameVerification }
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw .connectFailed(error)
            }
        } else {
            sslContext = nil
        }
        let serverHostname = url.isIPv6Literal || url.isIPv4Literal ? nil : url.host
        #else
        if url.isSecure {
            throw .connectFailed(ClientConnectorError.tlsTraitDisabled)
        }
        #endif
        let maxHeadLength = configuration.maxResponseHeadLength
        let failConnection: @Sendable (WebSocketClientError) -> Void = { error in promise.fail(error) }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let negotiation {
                        // First: it holds back channelActive until the tunnel is open.
                        try sync.addHandler(ProxyHandler(negotiation: negotiation, fail: failConnection))
                    }
                    #if TLS
                    if let sslContext {
                        // SNI and certificate check name the server, also through a proxy.
                        try sync.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname)
                        )
                        if checksIdentityItself {
                            try sync.addHandler(ProxiedServerIdentityHandler(url: url, fail: failConnection))
                        }
                    }
                    #endif
                    try sync.addHandler(
                        ClientUpgradeHandler(
                            handshake: handshake,
                            maxHeadLength: maxHeadLength,
                            promise: promise,
                            install: installWithExtensions
                        )
                    )
                }
            }
        let timer = eventLoop.scheduleTask(deadline: deadline) {
            promise.fail(WebSocketClientError.timedOut)
        }
        // Through a proxy, TCP goes to the proxy; the proxy resolves and reaches the server.
        let connected = bootstrap.connect(host: proxyAddress?.host ?? url.host, port: proxyAddress?.port ?? url.port)
        connected.whenFailure { error in
            promise.fail(WebSocketClientError.connectFailed(error))
        }
        promise.futureResult.whenComplete { result in
            timer.cancel()
            if case .failure = result {
                connected.whenSuccess { channel in channel.close(promise: nil) }
            }
        }
        do {
            // Cancelling the calling task ends the attempt at once (the channel is closed as for any failure).
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(WebSocketClientError.connectFailed(CancellationError()))
            }
        } catch let error as WebSocketClientError {
            throw error
        } catch {
            throw .connectFailed(error)
        }
    }
}

extension WebSocketClientConfiguration {
    /// ``webSocket`` with ``logger`` in it.
    var webSocketWithLogger: WebSocketConfiguration {
        var webSocket = self.webSocket
        webSocket.logger = self.logger
        return webSocket
    }
}

/// Why a `wss://` URL cannot be opened when the package trait `TLS` is off.
struct ClientConnectorError: Error, CustomStringConvertible {
    static let tlsTraitDisabled = ClientConnectorError()
    var description: String { "wss:// needs the WebSocketEngine package trait TLS, which is off" }
}
