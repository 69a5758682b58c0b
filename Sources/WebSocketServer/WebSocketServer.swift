import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO

/// An HTTP/1.1 server on SwiftNIO that upgrades to WebSocket (RFC 6455) on the paths the application
/// registers, and answers every other request as plain HTTP (404 unless an HTTP handler is given).
///
/// ```swift
/// let server = try await WebSocketServer.start(
///     configuration: .init(port: 0),
///     routes: [WebSocketRoute(path: "/echo", handler: .async { ws, _ in
///         for await message in ws.messages { try? await ws.send(message.kind, message.payload) }
///     })]
/// )
/// print(server.port)
/// await server.shutdown()      // 1001 to every connection, bounded wait, then stop
/// ```
///
/// The upgrade is done by the server itself (no `HTTPServerUpgradeHandler`): the request head is read by
/// NIOHTTP1's decoder configured with `leftOverBytesStrategy: .forwardBytes`, so bytes the client sent right
/// behind its head (an early first frame) are handed to the WebSocket handler, never dropped. Every non-101
/// answer carries `Connection: close` and the connection is closed after it.
public final class WebSocketServer: Sendable {
    /// State shared by every connection's handlers.
    final class Shared: Sendable {
        let configuration: Configuration
        let routes: [String: WebSocketRoute]
        let httpHandler: @Sendable (HTTPRequest, ConnectionInfo) async -> PlainHTTPResponse
        let registry = WebSocketConnectionRegistry()
        let tracker = ConnectionTracker()
        private let shuttingDown = NIOLockedValueBox(false)

        init(
            configuration: Configuration,
            routes: [String: WebSocketRoute],
            httpHandler: @escaping @Sendable (HTTPRequest, ConnectionInfo) async -> PlainHTTPResponse
        ) {
            self.configuration = configuration
            self.routes = routes
            self.httpHandler = httpHandler
        }

        var isShuttingDown: Bool {
            get { shuttingDown.withLockedValue { $0 } }
            set { shuttingDown.withLockedValue { $0 = newValue } }
        }
    }

    private let shared: Shared
    private let serverChannel: any Channel

    /// The address the server listens on.
    public let localAddress: SocketAddress

    /// The port the server listens on (useful with `port: 0`).
    public var port: Int { localAddress.port ?? 0 }

    /// The number of open WebSocket connections.
    public var webSocketCount: Int { shared.registry.count }

    /// Succeeds when the listening socket is closed.
    public var closeFuture: EventLoopFuture<Void> { serverChannel.closeFuture }

    private init(shared: Shared, serverChannel: any Channel, localAddress: SocketAddress) {
        self.shared = shared
        self.serverChannel = serverChannel
        self.localAddress = localAddress
    }

    /// Binds and starts serving.
    ///
    /// - Parameters:
    ///   - configuration: address, TLS, limits and WebSocket settings.
    ///   - routes: the WebSocket paths (exact match on the path without query). A later route with the same
    ///     path replaces an earlier one.
    ///   - httpHandler: answers requests on other paths; by default 404.
    ///   - group: the event loops to run on.
    /// - Throws: TLS context creation or bind errors.
    public static func start(
        configuration: Configuration,
        routes: [WebSocketRoute],
        httpHandler: @escaping @Sendable (HTTPRequest, ConnectionInfo) async -> PlainHTTPResponse = { _, _ in
            .notFound
        },
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> WebSocketServer {
        let sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        var table: [String: WebSocketRoute] = [:]
        for route in routes { table[route.path] = route }
        let shared = Shared(configuration: configuration, routes: table, httpHandler: httpHandler)

        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.initialize(channel: channel, shared: shared, sslContext: sslContext)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        guard let address = channel.localAddress else {
            try? await channel.close()
            throw ChannelError.unknownLocalAddress
        }
        return WebSocketServer(shared: shared, serverChannel: channel, localAddress: address)
    }

    private static func initialize(channel: any Channel, shared: Shared, sslContext: NIOSSLContext?) throws {
        let pipeline = channel.pipeline.syncOperations
        if let sslContext {
            try pipeline.addHandler(NIOSSLServerHandler(context: sslContext))
        }
        let headLimiter = RequestHeadLimitHandler(limit: shared.configuration.maxRequestHeadSize)
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = shared.configuration.maxRequestHeadSize
        limits.maxHeaderListSize = shared.configuration.maxRequestHeadSize
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits)
        )
        let encoder = HTTPResponseEncoder()
        let upgrader = HTTPUpgradeHandler(
            shared: shared,
            headLimiter: headLimiter,
            decoder: decoder,
            encoder: encoder,
            isSecure: sslContext != nil
        )
        try pipeline.addHandler(headLimiter)
        try pipeline.addHandler(decoder)
        try pipeline.addHandler(encoder)
        try pipeline.addHandler(upgrader)
        shared.tracker.add(channel)
    }

    /// Stops the server gracefully:
    ///
    /// 1. the listening socket is closed (no new connections) and new upgrades are refused with 503;
    /// 2. connections still in their HTTP exchange are closed;
    /// 3. every open WebSocket gets a close frame 1001 "going away" (RFC 6455 §7.4.1) and up to
    ///    `gracePeriod` (default: the configuration's ``Configuration/shutdownGracePeriod``) to answer;
    /// 4. whatever is still open then is closed.
    ///
    /// Returns when every connection is closed.
    public func shutdown(gracePeriod: TimeAmount? = nil) async {
        shared.isShuttingDown = true
        try? await serverChannel.close()
        shared.tracker.closeHTTPConnections()

        let loop = serverChannel.eventLoop
        let grace = gracePeriod ?? shared.configuration.shutdownGracePeriod
        let finished = loop.makePromise(of: Void.self)
        let once = NIOLockedValueBox<EventLoopPromise<Void>?>(finished)
        let complete: @Sendable () -> Void = {
            once.withLockedValue { promise -> EventLoopPromise<Void>? in
                defer { promise = nil }
                return promise
            }?.succeed()
        }
        shared.registry.closeAll(code: .goingAway, reason: "server shutting down", on: loop).whenComplete { _ in
            complete()
        }
        let timer = loop.scheduleTask(in: grace) { complete() }
        try? await finished.futureResult.get()
        timer.cancel()
        await shared.tracker.closeAll()
    }
}

/// Every open child channel of a server, and which of them are WebSockets.
final class ConnectionTracker: Sendable {
    private struct Entry {
        var channel: any Channel
        var isWebSocket: Bool
    }

    private let entries = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        entries.withLockedValue { $0[id] = Entry(channel: channel, isWebSocket: false) }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.entries.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    func markUpgraded(_ channel: any Channel) {
        entries.withLockedValue { $0[ObjectIdentifier(channel)]?.isWebSocket = true }
    }

    func closeHTTPConnections() {
        let channels = entries.withLockedValue { $0.values.filter { !$0.isWebSocket }.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }

    func closeAll() async {
        let channels = entries.withLockedValue { $0.values.map(\.channel) }
        for channel in channels {
            channel.close(promise: nil)
        }
        for channel in channels {
            try? await channel.closeFuture.get()
        }
    }
}
