import ArgumentParser
import RedisBackplane
import RedisClient
import RedisEventHistory
import WebSocketServer

@main
struct SSETicker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sse-ticker",
        abstract: "A Server-Sent Events server: a numbered ticker stream, resumable with Last-Event-ID.",
        discussion: """
            GET /ticker streams events with ids 1, 2, 3 ... and data equal to the id, one every --interval \
            milliseconds, each client on its own. A client that reconnects with Last-Event-ID: N continues at \
            N+1; after --count events the stream ends, and a reconnect whose Last-Event-ID is the last tick gets \
            204 No Content (browsers stop reconnecting). A Last-Event-ID that is not a tick number gets 400.
            GET /broadcast streams one shared ticker to every client (ids 1, 2, 3 ... from the server's start), \
            with a replay history of --history events: a reconnecting client gets exactly the ticks it missed. \
            With --redis, every sse-ticker on that Redis shares the history and each one's /broadcast ticks reach \
            the clients of all of them live (Redis pub/sub).
            Runs until SIGINT or SIGTERM; then every stream ends.
            """
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on (0 picks a free one; the chosen port is logged).")
    var port = 8080

    @Option(help: "Milliseconds between ticks.")
    var interval = 1000

    @Option(help: "Ticks per stream on /ticker, and in all on /broadcast (0: no end).")
    var count = 0

    @Option(
        help: """
            Close each /ticker connection after this many events, and each /broadcast connection after this many \
            intervals (simulates a dropped connection; 0: never).
            """
    )
    var dropAfter = 0

    @Option(help: "Pad each tick's data with spaces to this many bytes (load tests).")
    var dataSize = 0

    @Option(help: "Send this retry hint (milliseconds) at the start of each stream.")
    var retry: Int?

    @Option(help: "Seconds between heartbeat comments (0: none).")
    var heartbeat = 15

    @Option(help: "How many /broadcast ticks the replay history keeps.")
    var history = 1000

    @Option(
        help: """
            HOST:PORT of a Redis server: /broadcast keeps its replay history in the Redis stream --redis-key, \
            shared with every sse-ticker on that Redis (ids are stream entry IDs; a client can resume on any of them), \
            and sends its live ticks to the /broadcast clients of every sse-ticker on that Redis (pub/sub channels \
            named after --redis-key).
            """
    )
    var redis: String?

    @Option(help: "With --redis: the stream's key (and the prefix of the pub/sub channels).")
    var redisKey = "sse-ticker:broadcast"

    @Option(help: "With --redis: this server's identity among the sse-tickers on one Redis (default: a random one).")
    var serverId: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be 0...65535") }
        if interval < 1 { throw ValidationError("--interval must be at least 1 (milliseconds)") }
        if count < 0 || dropAfter < 0 || heartbeat < 0 || history < 0 {
            throw ValidationError("--count, --drop-after, --heartbeat and --history must be >= 0")
        }
        if let retry, retry < 0 { throw ValidationError("--retry must be >= 0") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("unknown --log-level '\(logLevel)'") }
        if let redis, redisAddress(redis) == nil { throw ValidationError("--redis must be HOST:PORT") }
    }

    func run() async throws {
        var logger = Logger(label: "sse-ticker")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var streamConfiguration = EventStreamRoute.Configuration(
            heartbeatInterval: heartbeat > 0 ? .seconds(heartbeat) : nil,
            retry: retry
        )
        streamConfiguration.maxBufferedBytes = 64 * 1024
        let count = self.count
        let interval = Duration.milliseconds(interval)
        let dropAfter = self.dropAfter
        let padding = String(repeating: " ", count: max(0, dataSize - 1))
        let routeLogger = logger
        let ticker = EventStreamRoute(
            path: "/ticker",
            configuration: streamConfiguration,
            shouldAccept: { request, _ in
                guard let lastEventID = request.lastEventID else { return .accept() }
                guard let last = Int(lastEventID), last >= 0, lastEventID.allSatisfy(\.isASCII) else {
                    return .reject(status: .badRequest, body: "Last-Event-ID must be a tick number")
                }
                if count > 0, last >= count { return .noContent }
                return .accept()
            },
            handler: .async { request, writer in
                let first = (request.lastEventID.flatMap { Int($0) } ?? 0) + 1
                routeLogger.info(
                    "ticker stream",
                    metadata: ["from": "\(first)", "last-event-id": "\(request.lastEventID ?? "")"]
                )
                var sent = 0
                var tick = first
                while count == 0 || tick <= count {
                    if tick > first || request.lastEventID != nil { try await Task.sleep(for: interval) }
                    try await writer.send(try ServerSentEvent(data: String(tick) + padding, id: String(tick)))
                    sent += 1
                    tick += 1
                    if dropAfter > 0, sent >= dropAfter { return }
                }
            }
        )
        let sharedHistory = redis.flatMap(redisAddress).map { host, port in
            RedisEventHistory(
                configuration: .init(
                    redis: RedisConfiguration(host: host, port: port),
                    key: redisKey,
                    maxLength: max(1, history)
                )
            )
        }
        let backplane = redis.flatMap(redisAddress).map { host, port in
            var backplaneConfiguration = RedisBackplaneConfiguration(
                redis: RedisConfiguration(host: host, port: port),
                prefix: redisKey
            )
            backplaneConfiguration.logger = logger
            return RedisBackplane(
                serverId: serverId ?? "sse-ticker-\(UInt64.random(in: 0...UInt64.max))",
                configuration: backplaneConfiguration
            )
        }
        if let redis, let backplane {
            logger.info(
                "sharing /broadcast through Redis",
                metadata: ["redis": "\(redis)", "key": "\(redisKey)", "server": "\(backplane.serverId)"]
            )
        }
        let broadcaster = EventStreamBroadcaster(
            configuration: .init(historyCount: history),
            sharedHistory: sharedHistory,
            backplane: backplane,
            scope: "/broadcast"
        )
        let dropBroadcastAfter = interval * dropAfter
        let broadcast = EventStreamRoute(
            path: "/broadcast",
            configuration: streamConfiguration,
            handler: .callback { request, writer in
                routeLogger.info("broadcast stream", metadata: ["last-event-id": "\(request.lastEventID ?? "")"])
                broadcaster.subscribe(writer)
                if dropAfter > 0 {
                    writer.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds(dropBroadcastAfter))) {
                        writer.finish()
                    }
                }
            }
        )
        var configuration = Server.Configuration(host: host, port: port)
        configuration.logger = logger
        configuration.shutdownGracePeriod = .seconds(2)
        let server = Server(configuration: configuration, routes: [], eventStreamRoutes: [ticker, broadcast])
        logger.info("serving Server-Sent Events on /ticker and /broadcast")
        let group = ServiceGroup(
            configuration: .init(
                // Reverse order on shutdown: the ticks stop, then the server, then the broadcaster's backplane link,
                // then the backplane's Redis connections.
                services: (backplane.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                    + [
                        .init(service: broadcaster),
                        .init(service: server),
                        .init(service: BroadcastTicker(broadcaster: broadcaster, interval: interval, count: count)),
                    ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

/// Publishes the shared ticks of /broadcast until the service group shuts down.
struct BroadcastTicker: Service {
    let broadcaster: EventStreamBroadcaster
    let interval: Duration
    let count: Int

    func run() async throws {
        var tick = 1
        while count == 0 || tick <= count {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            if broadcaster.sharedHistory != nil {
                await broadcaster.publishShared(ServerSentEvent(data: String(tick)))
            } else {
                broadcaster.publish(try ServerSentEvent(data: String(tick), id: String(tick)))
            }
            tick += 1
        }
        try? await gracefulShutdown()
    }
}

/// `HOST:PORT` split, or nil.
/// `HOST:PORT` (an IPv6 host in brackets: `[::1]:6379`) as host and port; nil when malformed.
func redisAddress(_ text: String) -> (String, Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
        (1...65535).contains(port), colon > text.startIndex
    else { return nil }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return host.isEmpty ? nil : (host, port)
}

/// `duration` in nanoseconds, saturating.
func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    return overflow ? .max : whole &+ attoseconds / 1_000_000_000
}
