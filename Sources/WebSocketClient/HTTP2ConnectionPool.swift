import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import WebSocketHandshake

#if TLS
import NIOSSL

/// What a pooled connection's TLS settings are compared by.
typealias PoolTLSKey = TLSConfiguration
#else
typealias PoolTLSKey = Never
#endif

/// An opt-in pool that lets several WebSockets to one origin share one HTTP/2 connection, one stream each
/// (RFC 8441; RFC 9113 §5). Without a pool every WebSocket over HTTP/2 has a connection of its own.
///
/// ```swift
/// let pool = HTTP2ConnectionPool()
/// var configuration = WebSocketClientConfiguration()
/// configuration.http2 = .preferred
/// configuration.http2Pool = pool
/// let a = try await WebSocketClient.connect(to: "wss://example.com/chat", configuration: configuration)
/// let b = try await WebSocketClient.connect(to: "wss://example.com/feed", configuration: configuration)  // same TCP
/// ...
/// await pool.shutdown()
/// ```
///
/// Sharing: a connection is reused for a WebSocket to the same origin (scheme, host, port) with an equal TLS
/// configuration (`TLSConfiguration.bestEffortEquals`; a configuration with callbacks never equals another, so
/// it never shares) while it has fewer open WebSocket streams than the server's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 §6.5.2; latest value seen) and
/// ``Configuration/maxStreamsPerConnection``; otherwise the pool opens another connection, up to
/// ``Configuration/maxConnectionsPerOrigin``. A stream the server refuses with RST_STREAM `REFUSED_STREAM`
/// (e.g. its own per-connection WebSocket limit) marks that connection full and is retried on another one. A
/// connection that received GOAWAY takes no new stream (its open WebSockets run on), and a closed one leaves the
/// pool; a stream that failed because its connection got GOAWAY or closed meanwhile is retried too (a bounded
/// number of times). Connections through a proxy are never pooled: with ``WebSocketClientConfiguration/proxy``
/// or a proxy from ``WebSocketClientConfiguration/proxyEnvironment`` the client connects over HTTP/1.1 as usual.
///
/// Lifetime: the pool starts no task; its connections live until ``shutdown()``, until they stay without a
/// WebSocket for ``Configuration/idleTimeout``, until the server closes them, or until they fail. Call
/// ``shutdown()`` when done: it sends GOAWAY and closes every connection, which ends the WebSockets still open on
/// them without a close handshake (close them first for a clean end); later connections through the pool fail
/// with ``HTTP2ConnectionPoolError/shutDown``.
///
/// Limits: an origin that does not offer HTTP/2 extended CONNECT is asked again on each connection (no negative
/// cache); the HTTP/2 connection's settings (window sizes) are the client's defaults; connections are opened one
/// at a time per origin (concurrent requests wait for the one being opened, then share it; a request whose task is
/// cancelled stops waiting at once and fails with ``WebSocketClientError/connectFailed(_:)`` wrapping
/// `CancellationError`, and cancelling the request that opens the connection closes it, the waiting ones then
/// trying again).
public final class HTTP2ConnectionPool: Sendable {
    /// Limits of a pool.
    public struct Configuration: Sendable, Hashable {
        /// The most WebSockets one connection carries, also when the server allows more streams. Default 100.
        public var maxStreamsPerConnection: Int
        /// The most connections to one origin; when they are all full, a connection attempt fails with
        /// ``HTTP2ConnectionPoolError/exhausted``. Default 8.
        public var maxConnectionsPerOrigin: Int
        /// How long a connection stays open without any WebSocket before the pool sends GOAWAY and closes it;
        /// nil keeps it until ``HTTP2ConnectionPool/shutdown()`` or the server closes it. Default 30 s.
        public var idleTimeout: Duration?

        /// Creates a configuration (see each field for the defaults).
        public init(
            maxStreamsPerConnection: Int = 100,
            maxConnectionsPerOrigin: Int = 8,
            idleTimeout: Duration? = .seconds(30)
        ) {
            self.maxStreamsPerConnection = maxStreamsPerConnection
            self.maxConnectionsPerOrigin = maxConnectionsPerOrigin
            self.idleTimeout = idleTimeout
        }
    }

    /// What the pool holds now (see ``statistics``).
    public struct Statistics: Sendable, Hashable {
        /// HTTP/2 connections opened by the pool since it was created.
        public var connectionsOpened = 0
        /// Connections in the pool now.
        public var connections = 0
        /// WebSocket streams open (or opening) on them now.
        public var streams = 0
    }

    struct Origin: Hashable, Sendable {
        var isSecure: Bool
        var host: String
        var port: Int
    }

    /// One pooled connection. Its counters are read and changed under the pool's lock.
    final class Entry: Sendable {
        let origin: Origin
        let tls: PoolTLSKey?
        private struct Counters {
            var leased = 0
            var serverLimit = Int(UInt32.max)
            var localLimit: Int
            var goneAway = false
            var closed = false
            /// Counts leases, so that an idle timer armed before the last one knows it is stale.
            var generation = 0
        }
        private let counters: NIOLockedValueBox<Counters>
        private let idleTimeout: TimeAmount?
        let connection = NIOLockedValueBox<HTTP2ClientConnector.Connection?>(nil)

        init(origin: Origin, tls: PoolTLSKey?, limit: Int, idleTimeout: Duration?) {
            self.origin = origin
            self.tls = tls
            self.counters = NIOLockedValueBox(Counters(localLimit: limit))
            self.idleTimeout = idleTimeout.map { TimeAmount(saturating: $0) }
        }

        /// Takes a stream slot if the connection can carry one more WebSocket.
        func tryLease() -> Bool {
            counters.withLockedValue { counters in
                guard !counters.goneAway, !counters.closed,
                    counters.leased < min(counters.serverLimit, counters.localLimit)
                else { return false }
                counters.leased += 1
                counters.generation += 1
                return true
            }
        }

        /// Gives a stream slot back; the last one arms the idle timer.
        func release() {
            let idleGeneration = counters.withLockedValue { counters -> Int? in
                counters.leased -= 1
                return counters.leased == 0 ? counters.generation : nil
            }
            guard let idleGeneration, let idleTimeout, let channel = connection.withLockedValue({ $0?.channel })
            else { return }
            channel.eventLoop.scheduleTask(in: idleTimeout) { [self] in
                let idle = counters.withLockedValue { counters -> Bool in
                    guard counters.leased == 0, counters.generation == idleGeneration, !counters.closed else {
                        return false
                    }
                    counters.goneAway = true  // no new stream from now on
                    return true
                }
                if idle { HTTP2ClientConnector.goAwayAndClose(channel) }
            }
        }
        var leased: Int { counters.withLockedValue { $0.leased } }
        var isUsable: Bool { counters.withLockedValue { !$0.goneAway && !$0.closed } }

        /// The server refused a stream: take no more than are open now.
        func markFull() { counters.withLockedValue { $0.localLimit = $0.leased } }
        func markClosed() { counters.withLockedValue { $0.closed = true } }

        /// A frame of stream 0: SETTINGS_MAX_CONCURRENT_STREAMS updates, GOAWAY.
        func observe(_ payload: HTTP2Frame.FramePayload) {
            switch payload {
            case .settings(.settings(let settings)):
                if let limit = settings.last(where: { $0.parameter == .maxConcurrentStreams }) {
                    counters.withLockedValue { $0.serverLimit = limit.value }
                }
            case .goAway:
                counters.withLockedValue { $0.goneAway = true }
            default:
                break
            }
        }

        func matches(_ origin: Origin, tls: PoolTLSKey?) -> Bool {
            guard self.origin == origin else { return false }
            #if TLS
            switch (self.tls, tls) {
            case (nil, nil): return true
            case (let mine?, let theirs?): return mine.bestEffortEquals(theirs)
            default: return false
            }
            #else
            return true
            #endif
        }
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        /// Origins with a connection being opened: other requests for them wait for it, then look again.
        var connecting: [Origin: EventLoopFuture<Void>] = [:]
        /// One per connect in flight: ``shutdown()`` succeeds them to abandon the connects; each connect fails its
        /// own when it is over.
        var abandons: [ObjectIdentifier: EventLoopPromise<Void>] = [:]
        var isShutDown = false
        var opened = 0
    }

    public let configuration: Configuration
    private let state = NIOLockedValueBox(State())

    /// Creates an empty pool; connections are opened on demand by ``WebSocketClient`` with
    /// ``WebSocketClientConfiguration/http2Pool`` set to it.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// The pool's connections and streams now.
    public var statistics: Statistics {
        state.withLockedValue { state in
            var statistics = Statistics()
            statistics.connectionsOpened = state.opened
            statistics.connections = state.entries.count
            statistics.streams = state.entries.values.reduce(0) { $0 + $1.leased }
            return statistics
        }
    }

    /// Sends GOAWAY on every connection and closes it, then returns once all are closed. WebSockets still open
    /// on them end without a close handshake. Connections being opened are abandoned (closed), and their
    /// connects, like later ones through the pool, fail with ``HTTP2ConnectionPoolError/shutDown``. Calling it
    /// again waits the same way.
    public func shutdown() async {
        let channels = state.withLockedValue { state -> [any Channel] in
            state.isShutDown = true
            for abandon in state.abandons.values { abandon.succeed() }
            return state.entries.values.compactMap { $0.connection.withLockedValue { $0?.channel } }
        }
        for channel in channels { HTTP2ClientConnector.goAwayAndClose(channel) }
        for channel in channels {
            try? await channel.closeFuture.get()
        }
    }

    // MARK: - Opening streams

    /// A WebSocket over a stream of a pooled connection to `url`'s origin; nil when the origin does not offer
    /// HTTP/2 extended CONNECT (the caller falls back to HTTP/1.1).
    func open<Result: Sendable>(
        url: WebSocketURL,
        configuration clientConfiguration: WebSocketClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        handshake: ClientHandshake,
        install: @escaping HTTP2ClientConnector.Install<Result>
    ) async throws(WebSocketClientError) -> Result? {
        let origin = Origin(isSecure: url.isSecure, host: url.host, port: url.port)
        #if TLS
        let tls: PoolTLSKey? = url.isSecure ? clientConfiguration.tls : nil
        #else
        let tls: PoolTLSKey? = nil
        #endif
        let timeout = TimeAmount(saturating: clientConfiguration.connectTimeout)
        let limit = max(self.configuration.maxStreamsPerConnection, 1)
        let maxConnections = max(self.configuration.maxConnectionsPerOrigin, 1)
        var retries = 0
        while true {
            if Task.isCancelled { throw .connectFailed(CancellationError()) }
            let step = state.withLockedValue { state -> Step in
                if state.isShutDown { return .shutDown }
                let candidates = state.entries.values.filter { $0.matches(origin, tls: tls) }
                if let entry = candidates.first(where: { $0.tryLease() }) { return .use(entry) }
                if let pending = state.connecting[origin] { return .wait(pending) }
                if candidates.filter(\.isUsable).count >= maxConnections { return .exhausted }
                let entry = Entry(origin: origin, tls: tls, limit: limit, idleTimeout: self.configuration.idleTimeout)
                _ = entry.tryLease()
                let promise = eventLoopGroup.any().makePromise(of: Void.self)
                state.connecting[origin] = promise.futureResult
                state.abandons[ObjectIdentifier(entry)] = promise.futureResult.eventLoop.makePromise()
                return .connect(entry, promise)
            }
            let entry: Entry
            switch step {
            case .shutDown:
                throw .connectFailed(HTTP2ConnectionPoolError.shutDown)
            case .exhausted:
                throw .connectFailed(HTTP2ConnectionPoolError.exhausted)
            case .wait(let pending):
                // A cancelled waiter stops waiting at once (the loop then throws); the connect goes on for others.
                let waited = pending.eventLoop.makePromise(of: Void.self)
                pending.cascade(to: waited)
                try? await withTaskCancellationHandler {
                    try await waited.futureResult.get()
                } onCancel: {
                    waited.fail(CancellationError())
                }
                continue
            case .use(let existing):
                entry = existing
            case .connect(let new, let promise):
                let abandon = state.withLockedValue { $0.abandons[ObjectIdentifier(new)] }
                defer {
                    state.withLockedValue { _ = $0.abandons.removeValue(forKey: ObjectIdentifier(new)) }
                    abandon?.fail(CancellationError())  // over: no effect on the connect any more
                }
                let connection: HTTP2ClientConnector.Connection?
                do {
                    connection = try await HTTP2ClientConnector.connect(
                        url: url,
                        configuration: clientConfiguration,
                        eventLoopGroup: eventLoopGroup,
                        observe: { new.observe($0) },
                        abandon: abandon?.futureResult
                    )
                } catch {
                    state.withLockedValue { $0.connecting[origin] = nil }
                    promise.succeed()
                    throw error
                }
                let added = state.withLockedValue { state -> Bool in
                    state.connecting[origin] = nil
                    guard let connection, !state.isShutDown else { return false }
                    new.connection.withLockedValue { $0 = connection }
                    state.entries[ObjectIdentifier(new)] = new
                    state.opened += 1
                    return true
                }
                promise.succeed()
                guard added else {
                    connection?.channel.close(promise: nil)
                    guard connection == nil, !state.withLockedValue(\.isShutDown) else {
                        throw .connectFailed(HTTP2ConnectionPoolError.shutDown)
                    }
                    return nil
                }
                guard let connection else { return nil }
                let id = ObjectIdentifier(new)
                connection.channel.closeFuture.whenComplete { [weak self] _ in
                    new.markClosed()
                    _ = self?.state.withLockedValue { $0.entries.removeValue(forKey: id) }
                }
                entry = new
            }
            guard let connection = entry.connection.withLockedValue({ $0 }) else {
                entry.release()
                continue
            }
            let released = NIOLockedValueBox(false)
            do {
                return try await HTTP2ClientConnector.openStream(
                    on: connection,
                    handshake: handshake,
                    timeout: timeout,
                    install: install,
                    onStreamClose: {
                        let first = released.withLockedValue { done in
                            defer { done = true }
                            return !done
                        }
                        if first { entry.release() }
                    }
                )
            } catch {
                // Not processed by the server, so safe to retry elsewhere (RFC 9113 §8.7): a stream refused (the
                // server's own limit is lower than its SETTINGS said), or one the server's GOAWAY or close ended.
                retries += 1
                if Self.isRefusedStream(error) {
                    entry.markFull()
                } else if entry.isUsable || error != .closedDuringHandshake(nil) {
                    throw error  // answered (e.g. rejected) or failed on a connection still good: not retried
                }
                if retries > maxConnections + 2 { throw error }
            }
        }
    }

    /// What ``open(url:configuration:eventLoopGroup:handshake:install:)`` does next.
    private enum Step {
        case use(Entry)
        case wait(EventLoopFuture<Void>)
        case connect(Entry, EventLoopPromise<Void>)
        case shutDown
        case exhausted
    }

    private static func isRefusedStream(_ error: WebSocketClientError) -> Bool {
        guard error == .closedDuringHandshake(nil), let closed = error.underlying as? NIOHTTP2Errors.StreamClosed
        else { return false }
        return closed.errorCode == HTTP2ErrorCode.refusedStream
    }
}

/// Why ``HTTP2ConnectionPool`` could not give a connection (wrapped in
/// ``WebSocketClientError/connectFailed(_:)``).
public enum HTTP2ConnectionPoolError: Error, Sendable, Hashable {
    /// ``HTTP2ConnectionPool/shutdown()`` was called.
    case shutDown
    /// Every connection to the origin is full and ``HTTP2ConnectionPool/Configuration/maxConnectionsPerOrigin``
    /// are open.
    case exhausted
}
