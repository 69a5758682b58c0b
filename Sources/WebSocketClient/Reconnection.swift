import NIOCore
import NIOPosix
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO

/// When a reconnecting client (``WebSocketNIO/WebSocket/withReconnectingConnection(to:configuration:reconnect:eventLoopGroup:onEvent:onReconnect:_:)``)
/// connects again, and how long it waits: exponential backoff with jitter.
///
/// The wait before reconnection attempt `n` (1 for the first after a drop or a failed attempt) is
/// `min(maxDelay, initialDelay × multiplier^(n−1))`, shortened by a random fraction of at most `jitter`
/// (so clients dropped together do not all come back at the same instant, and the cap is never exceeded).
/// With the defaults: about 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s, each up to 20 % shorter.
public struct WebSocketReconnectPolicy: Sendable, Hashable {
    /// The wait before the first reconnection attempt. Default: 1 second.
    public var initialDelay: Duration
    /// The factor by which the wait grows after each failed attempt in a row; values below 1 count as 1.
    /// Default: 2.
    public var multiplier: Double
    /// The longest wait between attempts. Default: 30 seconds.
    public var maxDelay: Duration
    /// The largest fraction (0...1) by which a wait is randomly shortened. 0 gives the exact schedule.
    /// Default: 0.2.
    public var jitter: Double
    /// The most reconnection attempts in a row (counting from the last open connection, or from the first
    /// attempt) before the client gives up and throws the last connection error; nil: try forever; 0: never
    /// reconnect. Default: nil.
    public var maxAttempts: Int?
    /// The close codes after which the client reconnects: by default 1006 (abnormal closure: the network or
    /// the server died), 1001 (going away: a server shutting down), 1011 (internal error), 1012 (service
    /// restart) and 1013 (try again later). Any other code, 1000 (normal closure) first of all, ends the
    /// client.
    public var closeCodes: Set<CloseCode>
    /// The heartbeat for reconnecting clients: when the configuration's
    /// `webSocket.connection.pingInterval` is nil, it is set to this, so that a dead network is noticed (no
    /// pong within `pongTimeout`, 20 s by default, ends the connection with 1006, which reconnects). nil
    /// leaves the configuration as it is. Default: 15 seconds.
    public var heartbeatInterval: Duration?

    /// Creates a policy (see each field for its unit and default).
    public init(
        initialDelay: Duration = .seconds(1),
        multiplier: Double = 2,
        maxDelay: Duration = .seconds(30),
        jitter: Double = 0.2,
        maxAttempts: Int? = nil,
        closeCodes: Set<CloseCode> = [.abnormalClosure, .goingAway, .internalError, .serviceRestart, .tryAgainLater],
        heartbeatInterval: Duration? = .seconds(15)
    ) {
        self.initialDelay = initialDelay
        self.multiplier = multiplier
        self.maxDelay = maxDelay
        self.jitter = jitter
        self.maxAttempts = maxAttempts
        self.closeCodes = closeCodes
        self.heartbeatInterval = heartbeatInterval
    }

    /// The wait before reconnection attempt `attempt` (1-based), with `random` in 0..<1 choosing the jitter
    /// (0: the full wait).
    public func delay(beforeAttempt attempt: Int, random: Double) -> Duration {
        let initial = Self.seconds(initialDelay)
        let cap = Self.seconds(maxDelay)
        let exponent = Double(max(0, attempt - 1))
        let base = min(cap, initial * Self.power(max(1, multiplier), exponent))
        let fraction = min(1, max(0, jitter)) * min(1, max(0, random))
        return .seconds(max(0, base * (1 - fraction)))
    }

    /// The wait before reconnection attempt `attempt`, with the jitter drawn from `generator`.
    public func delay(beforeAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        delay(beforeAttempt: attempt, random: Double.random(in: 0..<1, using: &generator))
    }

    /// Whether a connection that ended with `status` is reconnected (its code is in ``closeCodes``).
    public func reconnects(after status: CloseStatus) -> Bool {
        closeCodes.contains(status.code)
    }

    /// Whether a failed connection attempt is retried: yes for network trouble (connect and TLS failures,
    /// timeouts, a connection closed during the handshake, SOCKS5 failures, an HTTP proxy's 5xx) and for a
    /// server's 5xx answer to the opening handshake (e.g. 503 while it restarts); no for mistakes a retry
    /// cannot fix: an invalid URL or proxy setting, a 4xx answer (e.g. 401, 403, 404, 429) from the server or
    /// the proxy, any other handshake violation, a refused extension, a failed redirect.
    public static func retries(after error: WebSocketClientError) -> Bool {
        switch error {
        case .connectFailed, .timedOut, .closedDuringHandshake:
            return true
        case .handshakeRejected:
            return error.handshakeError == .unexpectedStatus && (error.response?.status.code ?? 0) >= 500
        case .proxyFailed:
            guard let proxyError = error.proxyError else { return false }
            if let status = proxyError.status { return status >= 500 }
            return proxyError == .rejected || proxyError == .closedBeforeReply
        default:
            return false
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return max(0, Double(seconds) + Double(attoseconds) / 1e18)
    }

    private static func power(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(min(exponent, 2048))
        while remaining > 0 && result.isFinite {
            result *= base
            remaining -= 1
        }
        return result
    }
}

/// What a reconnecting client reports to `onEvent`, in order.
public enum WebSocketReconnectEvent: Sendable, Hashable {
    /// The first connection is open.
    case connected
    /// An attempt to connect failed (before or between connections) with this error.
    case connectFailed(WebSocketClientError)
    /// The connection ended with this status (the peer's close code and reason, or 1006 when the network or
    /// the server died).
    case disconnected(CloseStatus)
    /// Reconnection attempt `attempt` (1 for the first in a row) starts after `delay`.
    case reconnecting(attempt: Int, delay: Duration)
    /// A new connection is open after `attempt` attempts; the `onReconnect` hook runs next.
    case reconnected(attempt: Int)

    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.connected, .connected): true
        case (.connectFailed(let a), .connectFailed(let b)): a == b
        case (.disconnected(let a), .disconnected(let b)): a.code == b.code
        case (.reconnecting(let a, let x), .reconnecting(let b, let y)): a == b && x == y
        case (.reconnected(let a), .reconnected(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .connected: hasher.combine(0)
        case .connectFailed: hasher.combine(1)
        case .disconnected(let status): hasher.combine(status.code)
        case .reconnecting(let attempt, let delay):
            hasher.combine(attempt)
            hasher.combine(delay)
        case .reconnected(let attempt): hasher.combine(attempt)
        }
    }
}

extension WebSocket {
    /// Keeps a connection to `url` open, reconnecting with backoff when it drops (opt-in automatic
    /// reconnection), and runs `body` with each connection.
    ///
    /// ```swift
    /// let status = try await WebSocket.withReconnectingConnection(
    ///     to: "wss://example.com/feed",
    ///     reconnect: .init(initialDelay: .seconds(1), maxDelay: .seconds(30)),
    ///     onEvent: { event in print(event) },                            // disconnected, reconnecting, …
    ///     onReconnect: { ws in try await ws.send(text: "subscribe") }    // rebuild state after a reconnect
    /// ) { ws in
    ///     try await ws.send(text: "subscribe")
    ///     for await message in ws.messages { print(message.text) }
    /// }
    /// ```
    ///
    /// Each round: connect (as ``connect(to:configuration:eventLoopGroup:)-(String,_,_)``, with every
    /// configuration option: proxy, redirects, headers, timeout); after a reconnection run `onReconnect`; run
    /// `body`. When `body` returns, the connection is closed with 1000 unless it is already over, and its final
    /// status decides: a code in ``WebSocketReconnectPolicy/closeCodes`` (1006, 1001, 1011, 1012, 1013)
    /// reconnects, any other (a normal 1000 close from either side) ends the call with that status. So `body`
    /// ends the whole call by returning while the connection is open, and is simply run again after a drop.
    /// (Should that last close handshake get no answer within `closeTimeout` because the network died in the
    /// meantime, the status is 1006 and the client reconnects.)
    /// When `body` (or `onReconnect`) throws ``WebSocketNIO/WebSocketError/connectionClosed`` the connection's
    /// status decides the same way; any other error closes with 1011 and is rethrown (no reconnection).
    ///
    /// A failed attempt is retried when ``WebSocketReconnectPolicy/retries(after:)`` says so (network errors,
    /// 5xx answers), else its error is thrown at once (a 4xx answer, an invalid URL). The heartbeat is on
    /// (``WebSocketReconnectPolicy/heartbeatInterval``) unless the configuration sets its own. Cancelling the
    /// task ends the call: during a wait it throws `CancellationError`.
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL.
    ///   - configuration: as for ``connect(to:configuration:eventLoopGroup:)-(String,_,_)``.
    ///   - reconnect: when to reconnect and how long to wait.
    ///   - eventLoopGroup: where the connections run.
    ///   - onEvent: called in order with every ``WebSocketReconnectEvent`` (connected, disconnected with the
    ///     status, connect failures, reconnecting in N seconds, reconnected).
    ///   - onReconnect: runs with each new connection after the first, before `body`: re-subscribe here.
    ///   - body: runs with each connection; see above for what its return means.
    /// - Returns: the final close status of the last connection (normally 1000).
    /// - Throws: ``WebSocketClientError`` for an attempt that is not retried, or the last one when
    ///   ``WebSocketReconnectPolicy/maxAttempts`` is reached; what `body` or `onReconnect` throws;
    ///   `CancellationError`.
    public static func withReconnectingConnection(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        reconnect: WebSocketReconnectPolicy = .init(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onEvent: (WebSocketReconnectEvent) -> Void = { _ in },
        onReconnect: (WebSocket) async throws -> Void = { _ in },
        _ body: (WebSocket) async throws -> Void
    ) async throws -> CloseStatus {
        var generator = SystemRandomNumberGenerator()
        return try await self.withReconnectingConnection(
            to: url,
            configuration: configuration,
            reconnect: reconnect,
            clock: ContinuousClock(),
            random: { Double.random(in: 0..<1, using: &generator) },
            eventLoopGroup: eventLoopGroup,
            onEvent: onEvent,
            onReconnect: onReconnect,
            body
        )
    }

    /// ``withReconnectingConnection(to:configuration:reconnect:eventLoopGroup:onEvent:onReconnect:_:)`` with the
    /// clock that waits between attempts and the jitter's random source injected (tests: a clock that
    /// records the waits and returns at once; `random: { 0 }` for the exact schedule).
    ///
    /// - Parameters:
    ///   - clock: waits with `clock.sleep(for:)`.
    ///   - random: returns a number in 0..<1 for each wait's jitter.
    public static func withReconnectingConnection<C: Clock<Duration>>(
        to url: String,
        configuration: WebSocketClientConfiguration = .init(),
        reconnect policy: WebSocketReconnectPolicy = .init(),
        clock: C,
        random: () -> Double,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onEvent: (WebSocketReconnectEvent) -> Void = { _ in },
        onReconnect: (WebSocket) async throws -> Void = { _ in },
        _ body: (WebSocket) async throws -> Void
    ) async throws -> CloseStatus {
        let parsed = try ClientConnector.parse(url)
        var configuration = configuration
        if configuration.webSocket.connection.pingInterval == nil {
            configuration.webSocket.connection.pingInterval = policy.heartbeatInterval
        }
        /// Failed attempts and drops since the last connection opened.
        var failures = 0
        var hasConnected = false
        while true {
            try Task.checkCancellation()
            let webSocket: WebSocket
            do throws(WebSocketClientError) {
                webSocket = try await WebSocket.connect(
                    to: parsed,
                    configuration: configuration,
                    eventLoopGroup: eventLoopGroup
                )
            } catch {
                onEvent(.connectFailed(error))
                failures += 1
                guard WebSocketReconnectPolicy.retries(after: error), failures <= policy.maxAttempts ?? Int.max else {
                    throw error
                }
                let delay = policy.delay(beforeAttempt: failures, random: random())
                onEvent(.reconnecting(attempt: failures, delay: delay))
                try await clock.sleep(for: delay)
                continue
            }
            if hasConnected {
                onEvent(.reconnected(attempt: failures))
            } else {
                onEvent(.connected)
            }
            failures = 0
            let status: CloseStatus
            do {
                if hasConnected {
                    try await onReconnect(webSocket)
                }
                hasConnected = true
                try await body(webSocket)
                status = await webSocket.close()
            } catch let error as WebSocketError where error == .connectionClosed {
                hasConnected = true
                status = await webSocket.closeStatus
            } catch {
                await webSocket.close(code: .internalError, reason: "")
                throw error
            }
            onEvent(.disconnected(status))
            guard policy.reconnects(after: status), (policy.maxAttempts ?? Int.max) > 0 else {
                return status
            }
            failures = 1
            let delay = policy.delay(beforeAttempt: failures, random: random())
            onEvent(.reconnecting(attempt: failures, delay: delay))
            try await clock.sleep(for: delay)
        }
    }
}
