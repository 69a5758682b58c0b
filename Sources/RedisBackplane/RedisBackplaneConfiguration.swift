import BackplaneCodec
import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import RedisClient

/// How a ``RedisBackplane`` reaches Redis and how it behaves when Redis is slow or gone.
public struct RedisBackplaneConfiguration: Sendable {
    /// Delays between reconnection attempts: `initial`, multiplied by `multiplier` after each failed attempt, at
    /// most `maximum`; back to `initial` once connected.
    public struct Backoff: Sendable, Hashable {
        /// The first delay. Default 100 ms.
        public var initial: Duration
        /// The longest delay. Default 5 s.
        public var maximum: Duration
        /// Factor between two delays (at least 1). Default 2.
        public var multiplier: Double

        public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), multiplier: Double = 2) {
            self.initial = max(initial, .zero)
            self.maximum = max(maximum, self.initial)
            self.multiplier = max(multiplier, 1)
        }

        /// The delay after `delay`.
        func next(after delay: Duration) -> Duration {
            min(delay * multiplier, maximum)
        }
    }

    /// The Redis server (host, port, credentials, TLS, RESP limits, pub/sub buffer). Used twice: one
    /// connection subscribes, the other publishes.
    public var redis: RedisConfiguration
    /// The first part of every channel name (`{prefix}:{scope}:all` …). Several applications can share one Redis
    /// with different prefixes. Default `"backplane"`.
    public var prefix: String
    /// Default 100 ms doubling to 5 s.
    public var reconnectBackoff: Backoff
    /// How long connecting (TCP, TLS and `HELLO`/`AUTH`) may take before the attempt counts as failed. Default
    /// 10 s.
    public var connectTimeout: Duration
    /// How long one `PUBLISH` may take before ``RedisBackplane/publish(_:scope:)`` (and the publication of a
    /// group-change request or acknowledgement) gives up with ``BackplaneError/Kind-swift.enum/unavailable``.
    /// Default 5 s.
    public var publishTimeout: Duration
    /// How long one `SUBSCRIBE`/`UNSUBSCRIBE` may take; past it the subscriber connection counts as broken and is
    /// replaced. Default 5 s.
    public var subscribeTimeout: Duration
    /// How many group-change requests from other servers are applied at once; more are dropped (counted in
    /// ``RedisBackplaneStatistics/droppedGroupChanges``; their requesters time out). Default 64.
    public var maxConcurrentGroupChanges: Int
    /// Limits for decoding what other servers publish.
    public var envelopeLimits: BackplaneEnvelopeCodec.Limits
    /// Connection losses (error), reconnections with the outage duration (notice), malformed messages (warning).
    public var logger: Logger
    /// Where the metrics go (see ``RedisBackplane``); swift-metrics' global factory by default.
    public var metricsFactory: any MetricsFactory

    public init(
        redis: RedisConfiguration = RedisConfiguration(),
        prefix: String = "backplane",
        reconnectBackoff: Backoff = Backoff(),
        connectTimeout: Duration = .seconds(10),
        publishTimeout: Duration = .seconds(5),
        subscribeTimeout: Duration = .seconds(5),
        maxConcurrentGroupChanges: Int = 64,
        envelopeLimits: BackplaneEnvelopeCodec.Limits = .init(),
        logger: Logger = Logger(label: "redis-backplane"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.redis = redis
        self.prefix = prefix
        self.reconnectBackoff = reconnectBackoff
        self.connectTimeout = connectTimeout
        self.publishTimeout = publishTimeout
        self.subscribeTimeout = subscribeTimeout
        self.maxConcurrentGroupChanges = max(1, maxConcurrentGroupChanges)
        self.envelopeLimits = envelopeLimits
        self.logger = logger
        self.metricsFactory = metricsFactory
    }
}

/// Opens the backplane's broker connections: anything that conforms to `PubSubConnection`, so another Redis
/// client can replace ours.
public struct RedisBackplaneConnector: Sendable {
    /// What a connection is for.
    public enum Role: Sendable, Hashable {
        /// Holds every subscription and delivers their messages.
        case subscriber
        /// Publishes messages, group-change requests and acknowledgements (a subscribed RESP2 connection cannot).
        case publisher
    }

    let connect: @Sendable (Role) async throws -> any PubSubConnection

    /// - Parameter connect: opens one connection (called once per role on every (re)connection).
    public init(_ connect: @escaping @Sendable (Role) async throws -> any PubSubConnection) {
        self.connect = connect
    }

    /// Our `RedisConnection`, with `configuration` (its client name gets `-sub`/`-pub` appended when set).
    public static func redis(
        _ configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) -> RedisBackplaneConnector {
        RedisBackplaneConnector { role in
            var configuration = configuration
            if let name = configuration.clientName {
                configuration.clientName = name + (role == .subscriber ? "-sub" : "-pub")
            }
            return try await RedisConnection.connect(configuration, eventLoopGroup: eventLoopGroup)
        }
    }
}

/// Counters of one ``RedisBackplane`` since it was made (``RedisBackplane/statistics``).
public struct RedisBackplaneStatistics: Sendable, Hashable {
    /// Both connections are up and every channel needed is subscribed.
    public var isConnected = false
    /// Successful connections after a loss (the first connection is not counted).
    public var reconnects = 0
    /// Times an established connection was lost (Redis down, restarted, or dropped the subscriber).
    public var connectionLosses = 0
    /// Messages published.
    public var published = 0
    /// Publications refused (not connected: `.unavailable` at once) or failed (timeout, error).
    public var publishFailures = 0
    /// Of ``publishFailures``, those refused while disconnected.
    public var publishFailuresWhileDisconnected = 0
    /// Messages from other servers handed to a receiver.
    public var delivered = 0
    /// Own publications seen on a channel and ignored.
    public var ownMessagesIgnored = 0
    /// Messages that were not valid envelopes (logged and dropped).
    public var malformedMessages = 0
    /// Messages for a scope not registered here, or a target without local interest (a stale subscription).
    public var unroutedMessages = 0
    /// Group-change requests applied here and acknowledged.
    public var groupChangesApplied = 0
    /// Group-change requests dropped over ``RedisBackplaneConfiguration/maxConcurrentGroupChanges``.
    public var droppedGroupChanges = 0
    /// How long the last outage lasted (from the loss to the reconnection with every channel subscribed again).
    public var lastOutage: Duration?
    /// The sum of all outages.
    public var totalOutage: Duration = .zero

    public init() {}
}
