import CoreMetrics
import HTTPTypes
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO

#if TLS
import NIOSSL
#endif

/// An HTTP/1.1 server on SwiftNIO that upgrades to WebSocket (RFC 6455) on the paths the application
/// registers, and answers every other request as plain HTTP (404 unless an HTTP handler is given).
///
/// ```swift
/// let server = Server(
///     configuration: .init(port: 8080),
///     routes: [WebSocketRoute(path: "/echo", handler: .async { ws, _ in
///         for await message in ws.messages { try await ws.send(message.kind, message.payload) }
///     })]
/// )
/// try await server.run()   // until SIGTERM under a ServiceGroup, or until `shutdown()`
/// ```
///
/// `Server` is a swift-service-lifecycle `Service`: run it in a `ServiceGroup` to get a graceful shutdown on
/// SIGTERM/SIGINT, or call ``run()`` yourself and ``shutdown()`` to stop it; ``withRunning(_:)`` does both
/// around a closure. Every task the server starts (the `shouldUpgrade` decision, the plain HTTP handler, each
/// `.async` route) is a child of the task group inside ``run()``, which returns only when all of them are done.
///
/// The upgrade is done by the server itself (no `HTTPServerUpgradeHandler`): the request head is read by
/// NIOHTTP1's decoder configured with `leftOverBytesStrategy: .forwardBytes`, so bytes the client sent right
/// behind its head (an early first frame) are handed to the WebSocket handler, never dropped. Every non-101
/// answer carries `Connection: close` and the connection is closed after it.
public final class Server: Service, Sendable {
    /// State shared by every connection's handlers.
    final class Shared: Sendable {
        let configuration: Configuration
        let routes: [String: WebSocketRoute]
        let eventStreamRoutes: [String: EventStreamRoute]
        let httpRoutes: [String: HTTPRoute]
        let httpHandler: @Sendable (HTTPRequest, ConnectionInfo) async -> PlainHTTPResponse
        let registry = WebSocketConnectionRegistry()
        let http2Connections = HTTP2ConnectionRegistry()
        let tracker = ConnectionTracker()
        let tasks = ServerTasks()
        let webSocketConfiguration: WebSocketConfiguration
        let metrics: WebSocketMetrics?
        private let shuttingDown = NIOLockedValueBox(false)

        init(
            configuration: Configuration,
            routes: [String: WebSocketRoute],
            eventStreamRoutes: [String: EventStreamRoute] = [:],
            httpRoutes: [String: HTTPRoute] = [:],
            httpHandler: @escaping @Sendable (HTTPRequest, ConnectionInfo) async -> PlainHTTPResponse
        ) {
            self.configuration = configuration
            self.routes = routes
            self.eventStreamRoutes = eventStreamRoutes
            self.httpRoutes = httpRoutes
            self.httpHandler = httpHandler
            var webSocket = configuration.webSocket
            webSocket.logger = configuration.logger
            // swift-metrics' factory before a backend is bootstrapped does nothing: no counters then, so that
            // each message does not pay for calls into handlers that drop them.
            if webSocket.metrics == nil, let factory = configuration.metricsFactory, !(factory is NOOPMetricsHandler) {
                webSocket.metrics = WebSocketMetrics(factory: factory)
            }
            self.webSocketConfiguration = webSocket
            self.metrics = webSocket.metrics
        }

        var logger: Logger { self.configuration.logger }

        var isShuttingDown: Bool {
            get { self.shuttingDown.withLockedValue { $0 } }
            set { self.shuttingDown.withLockedValue { $0 = newValue } }
        }
    }

    private enum Phase {
        case idle
        case binding
        case running(any Channel)
        case stopping
        case stopped
    }

    private struct State {
        var phase = Phase.idle
        var address: SocketAddress?
        var bindError: (any Error)?
        var stopRequested = false
        var addressWaiters: [CheckedContinuation<SocketAddress, any Error>] = []
        var stopWaiter: CheckedContinuation<Void, Never>?
        var stoppedWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let shared: Shared
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    /// Creates a server; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: address, TLS, limits, logging, metrics and WebSocket settings.
    ///   - routes: the WebSocket paths (exact match on the path without query). A later route with the same
    ///     path replaces an earlier one.
    ///   - eventStreamRoutes: the Server-Sent Events paths (``EventStreamRoute``), exact match like `routes`.
    ///   - httpRoutes: plain HTTP paths with a bounded request body (``HTTPRoute``), exact match like `routes`;
    ///     on a path that also has a WebSocket route, only requests that are not upgrades come here.
    ///   - httpHandler: answers requests on other paths; by default 404. It runs as a task of the server that
    ///     is cancelled if the client goes away.
    ///   - group: the event loops to run on.
    public init(
        configuration: Configuration,
        routes: [WebSocketRoute],
        eventStreamRoutes: [EventStreamRoute] = [],
        httpRoutes: [HTTPRoute] = [],
        httpHandler: @escaping @Sendable (HTTPRequest, ConnectionInfo) async -> PlainHTTPResponse = { _, _ in
            .notFound
        },
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        var table: [String: WebSocketRoute] = [:]
        for route in routes { table[route.path] = route }
        var eventStreamTable: [String: EventStreamRoute] = [:]
        for route in eventStreamRoutes { eventStreamTable[route.path] = route }
        var httpTable: [String: HTTPRoute] = [:]
        for route in httpRoutes { httpTable[route.path] = route }
        self.shared = Shared(
            configuration: configuration,
            routes: table,
            eventStreamRoutes: eventStreamTable,
            httpRoutes: httpTable,
            httpHandler: httpHandler
        )
        self.group = group
    }

    deinit {
        self.shared.tasks.cancelQueued()
    }

    /// The errors of the server's lifecycle.
    public enum LifecycleError: Error, Sendable {
        /// ``Server/run()`` was called on a server that had already been started (a server runs once).
        case alreadyStarted
        /// ``Configuration/port`` is outside 0...65535.
        case invalidPort(Int)
    }

    /// The address the server listens on while ``run()`` serves; nil before it has bound and after it stopped.
    public var localAddress: SocketAddress? {
        self.state.withLockedValue { state in
            if case .stopped = state.phase { return nil }
            return state.address
        }
    }

    /// The port the server listens on once bound (useful with `port: 0`); 0 before and after.
    public var port: Int { self.localAddress?.port ?? 0 }

    /// The number of open WebSocket connections.
    public var webSocketCount: Int { self.shared.registry.count }

    /// Waits until ``run()`` has bound the listening socket and returns its address.
    /// - Throws: the bind or TLS error that ended ``run()``, or `CancellationError` if it stopped first.
    public func listeningAddress() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            let result: Result<SocketAddress, any Error>? = self.state.withLockedValue { state in
                if let error = state.bindError { return .failure(error) }
                if case .stopped = state.phase { return .failure(CancellationError()) }
                if let address = state.address { return .success(address) }
                state.addressWaiters.append(continuation)
                return nil
            }
            if let result { continuation.resume(with: result) }
        }
    }

    /// Binds, serves, and returns once the server has shut down gracefully: after ``shutdown()``, a graceful
    /// shutdown of its `ServiceGroup` (SIGTERM, SIGINT), or cancellation of the calling task.
    ///
    /// Shutdown: the listening socket closes and new upgrades get 503; connections still in their HTTP exchange
    /// are closed; every open WebSocket gets close 1001 "going away" (RFC 6455 §7.4.1) and up to
    /// ``Configuration/shutdownGracePeriod`` to answer; then every connection is closed, the route tasks still
    /// running are cancelled, and `run()` returns when the last of them has returned.
    /// Cancelling the task that runs `run()` also stops the server, but without the grace period: the route
    /// tasks are cancelled with it at once, and a route that returns because of that closes its connection with
    /// 1001 (going away). Prefer ``shutdown()`` or a `ServiceGroup`'s graceful shutdown.
    ///
    /// - Throws: ``LifecycleError/invalidPort(_:)``, TLS context creation or bind errors (then nothing runs);
    ///   ``LifecycleError/alreadyStarted`` when
    ///   called a second time. A `shutdown()` before `run()` makes `run()` return at once without binding.
    public func run() async throws {
        let start = self.state.withLockedValue { state -> Bool? in
            guard case .idle = state.phase else { return nil }
            if state.stopRequested { return false }
            state.phase = .binding
            return true
        }
        switch start {
        case nil:
            throw LifecycleError.alreadyStarted
        case false?:
            self.shared.tasks.cancelQueued()
            self.signalStopped()
            return
        case true?:
            break
        }
        let channel: any Channel
        do {
            channel = try await self.bind()
        } catch {
            let waiters = self.state.withLockedValue { state in
                state.bindError = error
                state.phase = .stopped
                defer { state.addressWaiters = [] }
                return state.addressWaiters
            }
            for waiter in waiters { waiter.resume(throwing: error) }
            self.shared.tasks.cancelQueued()
            self.signalStopped()
            throw error
        }
        self.shared.logger.info(
            "listening",
            metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                "routes": "\(self.shared.routes.keys.sorted().joined(separator: " "))",
            ]
        )
        let tasks = self.shared.tasks
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.stopWhenAsked(listener: channel) }
                    while let job = await tasks.next() {
                        group.addTask { await job.run() }
                    }
                    // Every connection is closed: cancel the route tasks that have not returned yet.
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                self.requestStop()
            }
        } onCancel: {
            self.requestStop()
        }
        self.signalStopped()
        self.shared.logger.info("stopped")
    }

    /// Starts the graceful shutdown described in ``run()`` and returns when `run()` is done (at once when the
    /// server is not running).
    public func shutdown() async {
        let running = self.state.withLockedValue { state -> Bool in
            switch state.phase {
            case .binding, .running, .stopping: return true
            case .idle, .stopped: return false
            }
        }
        self.requestStop()
        guard running else { return }
        await withCheckedContinuation { continuation in
            let done = self.state.withLockedValue { state -> Bool in
                if case .stopped = state.phase { return true }
                state.stoppedWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Runs the server while `body` runs: returns `body`'s result after a graceful shutdown. The server is
    /// listening when `body` starts (read ``port``).
    /// - Throws: bind errors, or what `body` throws (after the shutdown).
    @discardableResult
    public func withRunning<Result: Sendable>(
        _ body: @Sendable (Server) async throws -> Result
    ) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            do {
                _ = try await self.listeningAddress()
                let result = try await body(self)
                await self.shutdown()
                try await group.waitForAll()
                return result
            } catch {
                await self.shutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    // MARK: - Internals

    private func bind() async throws -> any Channel {
        let configuration = self.shared.configuration
        guard (0...65535).contains(configuration.port) else { throw LifecycleError.invalidPort(configuration.port) }
        let shared = self.shared
        #if TLS
        let sslContext = try Self.tlsConfigurationOfferingHTTP2(configuration).map {
            try NIOSSLContext(configuration: $0)
        }
        #endif
        // NIO's allocator traps on an initial size under its minimum or over its maximum: clamp.
        let initialReceiveBufferSize = min(max(configuration.initialReceiveBufferSize, 64), 1 << 24)
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(
                    minimum: 64,
                    initial: initialReceiveBufferSize,
                    maximum: max(initialReceiveBufferSize, 64 * 1024)
                )
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    #if TLS
                    try Self.initialize(channel: channel, shared: shared, sslContext: sslContext)
                    #else
                    try Self.initialize(channel: channel, shared: shared)
                    #endif
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        guard let address = channel.localAddress else {
            try? await channel.close()
            throw ChannelError.unknownLocalAddress
        }
        let waiters = self.state.withLockedValue { state in
            state.phase = .running(channel)
            state.address = address
            defer { state.addressWaiters = [] }
            return state.addressWaiters
        }
        for waiter in waiters { waiter.resume(returning: address) }
        return channel
    }

    #if TLS
    private static func initialize(channel: any Channel, shared: Shared, sslContext: NIOSSLContext?) throws {
        if let sslContext {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
        }
        let isSecure = sslContext != nil
        if try self.initializeProtocolSelection(channel: channel, shared: shared, isSecure: isSecure) { return }
        try self.initializeHTTP(channel: channel, shared: shared, isSecure: sslContext != nil)
    }
    #else
    private static func initialize(channel: any Channel, shared: Shared) throws {
        if try self.initializeProtocolSelection(channel: channel, shared: shared, isSecure: false) { return }
        try self.initializeHTTP(channel: channel, shared: shared, isSecure: false)
    }
    #endif

    static func initializeHTTP(channel: any Channel, shared: Shared, isSecure: Bool) throws {
        let pipeline = channel.pipeline.syncOperations
        let headLimiter = RequestHeadLimitHandler(limit: shared.configuration.maxRequestHeadLength)
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = shared.configuration.maxRequestHeadLength
        limits.maxHeaderListSize = shared.configuration.maxRequestHeadLength
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits)
        )
        let encoder = HTTPResponseEncoder()
        let upgrader = HTTPUpgradeHandler(
            shared: shared,
            headLimiter: headLimiter,
            decoder: decoder,
            encoder: encoder,
            isSecure: isSecure
        )
        try pipeline.addHandler(headLimiter)
        try pipeline.addHandler(decoder)
        try pipeline.addHandler(encoder)
        try pipeline.addHandler(upgrader)
        shared.tracker.add(channel)
    }

    private func requestStop() {
        let waiter = self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.stopRequested = true
            defer { state.stopWaiter = nil }
            return state.stopWaiter
        }
        waiter?.resume()
    }

    /// The child task that waits for a stop request, then shuts down (see ``run()``).
    private func stopWhenAsked(listener: any Channel) async {
        await withCheckedContinuation { continuation in
            let stop = self.state.withLockedValue { state -> Bool in
                if state.stopRequested { return true }
                state.stopWaiter = continuation
                return false
            }
            if stop { continuation.resume() }
        }
        self.state.withLockedValue { $0.phase = .stopping }
        let shared = self.shared
        shared.isShuttingDown = true
        try? await listener.close()
        shared.http2Connections.goAwayAll()
        shared.tracker.closeHTTPConnections()

        let loop = listener.eventLoop
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
        let timer = loop.scheduleTask(in: TimeAmount(saturating: shared.configuration.shutdownGracePeriod)) {
            complete()
        }
        try? await finished.futureResult.get()
        timer.cancel()
        await shared.tracker.closeAll()
        shared.tasks.finish()
    }

    private func signalStopped() {
        let (waiters, addressWaiters) = self.state.withLockedValue { state in
            state.phase = .stopped
            defer {
                state.stoppedWaiters = []
                state.addressWaiters = []
            }
            return (state.stoppedWaiters, state.addressWaiters)
        }
        for waiter in waiters { waiter.resume() }
        for waiter in addressWaiters { waiter.resume(throwing: CancellationError()) }
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
        self.entries.withLockedValue { $0[id] = Entry(channel: channel, isWebSocket: false) }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.entries.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    func markUpgraded(_ channel: any Channel) {
        self.entries.withLockedValue { $0[ObjectIdentifier(channel)]?.isWebSocket = true }
    }

    func closeHTTPConnections() {
        let channels = self.entries.withLockedValue { $0.values.filter { !$0.isWebSocket }.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }

    func closeAll() async {
        let channels = self.entries.withLockedValue { $0.values.map(\.channel) }
        for channel in channels {
            channel.close(promise: nil)
        }
        for channel in channels {
            try? await channel.closeFuture.get()
        }
    }
}
