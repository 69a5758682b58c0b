import HTTPTypes
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketCore
import WebSocketDeflate
import WebSocketHandshake
import WebSocketNIO

/// Opens client WebSocket connections to `ws://` and `wss://` URLs (RFC 6455 §4.1), then runs them with the
/// WebSocketNIO handler in the client role (masked frames, RFC 6455 §5.3).
///
/// ```swift
/// let ws = try await WebSocketClient.connect(to: "ws://127.0.0.1:9001/chat")
/// try await ws.send(text: "hello")
/// for await message in ws.messages { print(message.text) }
/// print(await ws.closeStatus)
/// ```
///
/// The opening: DNS and TCP connect (NIO's happy eyeballs), TLS with SNI for host names (`wss`), the upgrade
/// request built by `WebSocketHandshake.ClientHandshake` (random `Sec-WebSocket-Key`, the offered
/// subprotocols, extra header fields), and the 101 response validated by it: status, `Upgrade`,
/// `Connection`, exact `Sec-WebSocket-Accept`, no subprotocol or extension that was not offered. Bytes that
/// follow the response head in the same read (early frames from the server) are handed to the WebSocket
/// handler before anything read later.
public enum WebSocketClient {
    /// Connects and returns a WebSocket for the **async API**.
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL; host, port (default 80/443), path and query are used.
    ///   - configuration: header fields, subprotocols, TLS, timeout and WebSocket options.
    ///   - eventLoopGroup: where the connection runs. Default: NIO's shared singleton group.
    /// - Returns: the open WebSocket; ``WebSocketNIO/WebSocket/subprotocol`` holds the server's choice.
    /// - Throws: ``WebSocketClientError`` (invalid URL, connect/TLS failure, timeout, rejected handshake).
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(WebSocketClientError) -> WebSocket {
        let parsed: WebSocketURL
        do {
            parsed = try WebSocketURL(url)
        } catch {
            throw .invalidURL(error)
        }
        return try await self.connect(
            to: parsed,
            configuration: configuration,
            eventLoopGroup: eventLoopGroup
        )
    }

    /// Connects to a parsed URL and returns a WebSocket for the async API (see ``connect(to:configuration:eventLoopGroup:)-(String,_,_)``).
    public static func connect(
        to url: WebSocketURL,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(WebSocketClientError) -> WebSocket {
        let webSocketConfiguration = configuration.webSocket
        return try await self.open(
            url: url,
            configuration: configuration,
            eventLoopGroup: eventLoopGroup
        ) {
            pipeline,
            negotiated,
            leftover,
            codec in
            try pipeline.addWebSocket(
                role: .client,
                configuration: webSocketConfiguration,
                subprotocol: negotiated.subprotocol,
                leftoverBytes: leftover,
                codec: codec
            )
        }
    }

    /// Connects and runs the WebSocket with the **callback API** (the fastest path).
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL.
    ///   - configuration: header fields, subprotocols, TLS, timeout and WebSocket options.
    ///   - eventLoopGroup: where the connection runs.
    ///   - makeDelegate: called once on the connection's event loop after a valid 101, with what was
    ///     negotiated; the delegate it returns receives every event there (see `WebSocketDelegate`).
    /// - Returns: the channel, the negotiated subprotocol and a future of the final close status.
    /// - Throws: ``WebSocketClientError``.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        makeDelegate: @escaping @Sendable (NegotiatedHandshake) -> any WebSocketDelegate
    ) async throws(WebSocketClientError) -> WebSocketClientConnection {
        let parsed: WebSocketURL
        do {
            parsed = try WebSocketURL(url)
        } catch {
            throw .invalidURL(error)
        }
        let webSocketConfiguration = configuration.webSocket
        return try await self.open(
            url: parsed,
            configuration: configuration,
            eventLoopGroup: eventLoopGroup
        ) {
            pipeline,
            negotiated,
            leftover,
            codec in
            let closed = pipeline.eventLoop.makePromise(of: CloseStatus.self)
            let context = try pipeline.addWebSocketHandler(
                role: .client,
                configuration: webSocketConfiguration,
                subprotocol: negotiated.subprotocol,
                leftoverBytes: leftover,
                codec: codec,
                delegate: ClosingDelegate(base: makeDelegate(negotiated), closed: closed)
            )
            return WebSocketClientConnection(
                context: context,
                subprotocol: negotiated.subprotocol,
                handshake: negotiated,
                closed: closed.futureResult
            )
        }
    }

    private static func open<Result: Sendable>(
        url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        install:
            @escaping @Sendable (
                ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?, (any MessageCodec)?
            ) throws -> Result
    ) async throws(WebSocketClientError) -> Result {
        let eventLoop = eventLoopGroup.next()
        let promise = eventLoop.makePromise(of: Result.self)
        let deflate = configuration.perMessageDeflate
        let handshake = ClientHandshake(
            url: url,
            subprotocols: configuration.subprotocols,
            extensions: deflate.map { [PerMessageDeflate.offer($0)] } ?? [],
            headerFields: configuration.headerFields
        )
        // RFC 7692 §7.1: check the server's permessage-deflate answer against the offer, then build the codec.
        let installWithExtensions:
            @Sendable (ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?) throws -> Result = {
                pipeline, negotiated, leftover in
                var codec: (any MessageCodec)? = nil
                if let deflate {
                    do {
                        if let parameters = try PerMessageDeflate.accept(response: negotiated.extensions, offered: deflate) {
                            codec = PerMessageDeflateCodec(role: .client, parameters: parameters, configuration: deflate)
                        }
                    } catch {
                        throw WebSocketClientError.extensionRejected("\(error)", response: negotiated.response)
                    }
                }
                return try install(pipeline, negotiated, leftover, codec)
            }
        let sslContext: NIOSSLContext?
        if url.isSecure {
            do {
                sslContext = try NIOSSLContext(configuration: configuration.tls)
            } catch {
                throw .connectFailed(error)
            }
        } else {
            sslContext = nil
        }
        let serverHostname = url.isIPv6Literal || Self.isIPv4Literal(url.host) ? nil : url.host
        let timeout = Self.timeAmount(configuration.connectTimeout)
        let maxHeadLength = configuration.maxResponseHeadLength
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname)
                        )
                    }
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
        let timer = eventLoop.scheduleTask(in: timeout) {
            promise.fail(WebSocketClientError.timedOut)
        }
        let connected = bootstrap.connect(host: url.host, port: url.port)
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
            return try await promise.futureResult.get()
        } catch let error as WebSocketClientError {
            throw error
        } catch {
            throw .connectFailed(error)
        }
    }

    private static func isIPv4Literal(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in UInt8(part) != nil }
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// A client connection run with the callback API.
public struct WebSocketClientConnection: Sendable {
    /// The channel the WebSocket runs on (close it to abort).
    public let channel: any Channel
    private let context: NIOLoopBound<WebSocketContext>
    /// The subprotocol the server chose, nil when none.
    public let subprotocol: String?
    /// What the opening handshake agreed on, with the server's 101 response.
    public let handshake: NegotiatedHandshake
    /// Completes with the final close status when the connection is over.
    public let closed: EventLoopFuture<CloseStatus>

    init(
        context: WebSocketContext,
        subprotocol: String?,
        handshake: NegotiatedHandshake,
        closed: EventLoopFuture<CloseStatus>
    ) {
        self.channel = context.channel
        self.context = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.subprotocol = subprotocol
        self.handshake = handshake
        self.closed = closed
    }

    /// Runs `body` on the connection's event loop with its `WebSocketContext`: the way to send with the
    /// callback API from outside a callback (`try await connection.withContext { try $0.send(text: "hi") }`).
    /// - Throws: what `body` throws.
    public func withContext<Result: Sendable>(
        _ body: @escaping @Sendable (WebSocketContext) throws -> Result
    ) async throws -> Result {
        let context = self.context
        return try await self.channel.eventLoop.submit { try body(context.value) }.get()
    }
}

/// Forwards every event to the user's delegate and completes the `closed` promise at the end.
private struct ClosingDelegate: WebSocketDelegate {
    let base: any WebSocketDelegate
    let closed: EventLoopPromise<CloseStatus>

    func webSocketDidOpen(_ webSocket: WebSocketContext) {
        self.base.webSocketDidOpen(webSocket)
    }

    func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        self.base.webSocket(webSocket, didReceiveMessage: kind, payload: payload)
    }

    func webSocket(
        _ webSocket: WebSocketContext,
        didReceiveFragment kind: MessageKind,
        payload: UnsafeRawBufferPointer,
        isFirst: Bool,
        isFinal: Bool
    ) {
        self.base.webSocket(
            webSocket,
            didReceiveFragment: kind,
            payload: payload,
            isFirst: isFirst,
            isFinal: isFinal
        )
    }

    func webSocket(_ webSocket: WebSocketContext, didReceivePing payload: UnsafeRawBufferPointer) {
        self.base.webSocket(webSocket, didReceivePing: payload)
    }

    func webSocket(_ webSocket: WebSocketContext, didReceivePong payload: UnsafeRawBufferPointer) {
        self.base.webSocket(webSocket, didReceivePong: payload)
    }

    func webSocket(_ webSocket: WebSocketContext, didReceiveClose status: CloseStatus) {
        self.base.webSocket(webSocket, didReceiveClose: status)
    }

    func webSocket(_ webSocket: WebSocketContext, didCloseWith status: CloseStatus) {
        self.base.webSocket(webSocket, didCloseWith: status)
        self.closed.succeed(status)
    }
}
