import WebSocketServer

/// ws-echo's Server-Sent Events routes (with `--event-interval`), so that tests can mix event streams and
/// WebSockets on one HTTP/2 connection:
///
/// - `/events`: a numbered ticker per client (ids 1, 2, 3 …, data = the id padded to `--event-size` bytes),
///   resumed after `Last-Event-ID`; the producer pauses while the stream's buffer is full. `?deny` is refused
///   with 403 and `?done` answered 204 by the accept hook; `?drop=N` ends each stream after N events (the
///   client reconnects with `Last-Event-ID`).
/// - `/broadcast`: one shared ticker published to every client, with a replay history of 1000 events; a client
///   whose buffer overflows is dropped (the broadcast policy).
enum EchoEventStreams {
    static func routes(
        interval: Duration,
        dataSize: Int,
        heartbeat: Duration?,
        retry: Int?,
        broadcaster: EventStreamBroadcaster,
        logger: Logger
    ) -> [EventStreamRoute] {
        let configuration = EventStreamRoute.Configuration(
            heartbeatInterval: heartbeat,
            maxBufferedBytes: 64 * 1024,
            retry: retry
        )
        let padding = String(repeating: " ", count: max(0, dataSize - 1))
        let ticker = EventStreamRoute(
            path: "/events",
            configuration: configuration,
            shouldAccept: { request, _ in
                if request.query?.contains("deny") == true { return .reject(status: .forbidden, body: "denied") }
                if request.query?.contains("done") == true { return .noContent }
                return .accept(headerFields: [.init("X-Event-Route")!: "ticker"])
            },
            handler: .async { request, writer in
                var tick = (request.lastEventID.flatMap { Int($0) } ?? 0) + 1
                let drop = request.queryValue("drop").flatMap { Int($0) }
                logger.info("event stream from \(tick)", metadata: ["path": "/events"])
                var sent = 0
                while !Task.isCancelled {
                    try await writer.send(try ServerSentEvent(data: String(tick) + padding, id: String(tick)))
                    tick += 1
                    sent += 1
                    if let drop, sent >= drop { return }
                    try await Task.sleep(for: interval)
                }
            }
        )
        let broadcast = EventStreamRoute(
            path: "/broadcast",
            configuration: configuration,
            handler: .broadcast(broadcaster)
        )
        return [ticker, broadcast]
    }
}

/// Publishes numbered ticks (`/broadcast`'s events, `/ws-broadcast`'s messages: the same data) every `interval`
/// until the service group shuts down.
struct EchoBroadcastTicker: Service {
    let interval: Duration
    let dataSize: Int
    /// Sends one tick: its number (the SSE id) and its data (the number padded to `dataSize` bytes).
    let publish: @Sendable (_ tick: Int, _ data: String) throws -> Void

    func run() async throws {
        let padding = String(repeating: " ", count: max(0, dataSize - 1))
        var tick = 1
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            try publish(tick, String(tick) + padding)
            tick += 1
        }
    }
}
