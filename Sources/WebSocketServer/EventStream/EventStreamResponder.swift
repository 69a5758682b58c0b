import HTTPTypes
import Logging
import NIOCore
import ServerSentEvents

/// Answers a request on an ``EventStreamRoute``, whatever the HTTP version: validation, the route's decision,
/// then the stream (head, retry hint, heartbeats, and the route's producer). Each HTTP version lends an
/// ``Exchange``: HTTP/1.1 (``HTTP1EventStreamHandler``, chunks) and HTTP/2 (``HTTP2EventStreamHandler``, DATA
/// frames on one stream).
enum EventStreamResponder {
    /// What one HTTP version lends for one request; used on the channel's event loop only.
    struct Exchange {
        /// The channel that closes when the client goes away: the TCP connection on HTTP/1.1, the stream's
        /// child channel on HTTP/2 (closed by RST_STREAM or by the connection's end).
        var channel: any Channel
        /// Answers with a complete response and ends the exchange.
        var respond: (PlainHTTPResponse) -> Void
        /// Answers 204 No Content without a body (RFC 9110 §8.6) and ends the exchange.
        var respondNoContent: () -> Void
        /// Writes the `200` head with `headerFields` (not flushed) and installs the body glue, returned; nil
        /// when it could not (the exchange is then closed).
        var begin: (_ headerFields: HTTPFields) -> (any EventStreamTransport)?
        /// Called once the head and the first body bytes are written and flushed.
        var didBegin: () -> Void
    }

    /// Whether a request on `path` goes to the event stream route: yes unless a WebSocket route has the same
    /// path and the request asks for a WebSocket upgrade, or an ``HTTPRoute`` has the same path and the request
    /// is not a `GET`/`HEAD` accepting `text/event-stream` (a SignalR hub path serves SSE, long polling and
    /// POSTs).
    static func claims(_ request: HTTPRequest, path: String, shared: Server.Shared) -> EventStreamRoute? {
        guard let route = shared.eventStreamRoutes[path] else { return nil }
        if shared.routes[path] != nil, request.headerFields[.upgrade]?.lowercased().contains("websocket") == true {
            return nil
        }
        if shared.httpRoutes[path] != nil {
            guard request.method == .get || request.method == .head,
                acceptsEventStream(request.headerFields[values: .accept].joined(separator: ","))
            else { return nil }
        }
        return route
    }

    /// Whether an `Accept` field value lists `text/event-stream` (case-insensitive, parameters ignored).
    static func acceptsEventStream(_ accept: String) -> Bool {
        accept.split(separator: ",").contains { range in
            let type = (range.split(separator: ";", maxSplits: 1).first ?? "").filter { $0 != " " && $0 != "\t" }
            return type.lowercased() == "text/event-stream"
        }
    }

    /// The fields of every accepted stream's head, before the application's: `Content-Type: text/event-stream`,
    /// `Cache-Control: no-cache`, `X-Accel-Buffering: no`; no content coding.
    static func headFields(adding extra: HTTPFields) -> HTTPFields {
        var fields: HTTPFields = [
            .contentType: "text/event-stream",
            .cacheControl: "no-cache",
        ]
        if let accelBuffering = HTTPField.Name("X-Accel-Buffering") { fields[accelBuffering] = "no" }
        fields.append(contentsOf: extra)
        return fields
    }

    static func handle(
        _ request: HTTPRequest,
        route: EventStreamRoute,
        info: ConnectionInfo,
        shared: Server.Shared,
        exchange: Exchange
    ) {
        let target = request.path ?? ""
        let questionMark = target.firstIndex(of: "?")
        let path = String(target[..<(questionMark ?? target.endIndex)])
        let query = questionMark.map { String(target[target.index(after: $0)...]) }
        let logger = shared.logger
        func refuse(_ status: HTTPResponse.Status, _ text: String, fields: HTTPFields = [:]) {
            logger.info(
                "refused event stream request",
                metadata: [
                    "peer": "\(info.remoteAddress.map { "\($0)" } ?? "?")", "path": "\(path)",
                    "status": "\(status.code)", "reason": "\(text)",
                ]
            )
            exchange.respond(PlainHTTPResponse(status: status, text: text + "\n", headerFields: fields))
        }
        guard request.method == .get else {
            refuse(.methodNotAllowed, "Method Not Allowed", fields: [.allow: "GET"])
            return
        }
        if shared.isShuttingDown {
            refuse(.serviceUnavailable, "Server is shutting down")
            return
        }
        let lastEventIDs = request.headerFields[values: .lastEventID]
        if lastEventIDs.count > 1 {
            refuse(.badRequest, "more than one Last-Event-ID")
            return
        }
        if let value = lastEventIDs.first,
            value.utf8.count > route.configuration.maxLastEventIDLength || value.contains("\u{FFFD}")
                || value.utf8.contains(0)
        {
            refuse(.badRequest, "malformed Last-Event-ID")
            return
        }
        let streamRequest = EventStreamRequest(
            request: request,
            path: path,
            query: query,
            lastEventID: lastEventIDs.first,
            connection: info
        )
        let hook = route.shouldAccept
        let channel = exchange.channel
        shared.tasks.run(on: channel) { await hook(streamRequest, info) }
            .assumeIsolated()
            .whenComplete { result in
                guard channel.isActive else { return }
                switch result {
                case .failure:
                    channel.close(promise: nil)  // the server is stopping
                case .success(.reject(let status, let body, let fields)):
                    refuse(status, body, fields: fields)
                case .success(.noContent):
                    exchange.respondNoContent()
                case .success(.accept(let fields)):
                    start(streamRequest, route: route, fields: fields, shared: shared, exchange: exchange)
                }
            }
    }

    private static func start(
        _ request: EventStreamRequest,
        route: EventStreamRoute,
        fields: HTTPFields,
        shared: Server.Shared,
        exchange: Exchange
    ) {
        guard let transport = exchange.begin(headFields(adding: fields)) else { return }
        let channel = exchange.channel
        let output = EventStreamOutput(
            eventLoop: channel.eventLoop,
            allocator: channel.allocator,
            maxBufferedBytes: route.configuration.maxBufferedBytes,
            transport: transport
        )
        transport.output = output
        if let retry = route.configuration.retry, let bytes = EventStreamEncoder.retry(milliseconds: retry) {
            output.write(channel.allocator.buffer(bytes: bytes))
        } else {
            channel.flush()
        }
        exchange.didBegin()
        if let interval = route.configuration.heartbeatInterval {
            output.startHeartbeat(every: interval)
        }
        var logger = shared.logger
        logger[metadataKey: "path"] = "\(request.path)"
        if let remote = request.connection.remoteAddress { logger[metadataKey: "peer"] = "\(remote)" }
        logger.debug("event stream started", metadata: ["last-event-id": "\(request.lastEventID ?? "")"])
        let streamLogger = logger

        let runReplay: EventStreamBroadcaster.ReplayRunner = { work in shared.tasks.run(on: channel, work) }
        switch route.handler {
        case .broadcast(let broadcaster):
            broadcaster.subscribe(output, lastEventID: request.lastEventID, run: runReplay)
        case .callback(let body):
            body(request, EventStreamLoopWriter(output: output, request: request, runReplay: runReplay))
        case .async(let body):
            let writer = EventStreamWriter(output: output, allocator: channel.allocator)
            let loopBoundOutput = NIOLoopBound(output, eventLoop: channel.eventLoop)
            shared.tasks.submit(
                ServerTasks.Job(
                    run: {
                        await runProducer(
                            body, request: request, writer: writer, channel: channel, logger: streamLogger
                        )
                        channel.eventLoop.execute { loopBoundOutput.value.finish() }
                    },
                    cancel: { channel.close(promise: nil) }
                )
            )
        }
    }

    /// Runs the producer until it returns, or cancels it as soon as `channel` (the connection, or the HTTP/2
    /// stream) closes.
    private static func runProducer(
        _ body: @escaping @Sendable (EventStreamRequest, EventStreamWriter) async throws -> Void,
        request: EventStreamRequest,
        writer: EventStreamWriter,
        channel: any Channel,
        logger: Logger
    ) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await body(request, writer)
                } catch is EventStreamClosedError {
                    logger.debug("event stream closed by the client")
                } catch is CancellationError {
                    logger.debug("event stream producer cancelled")
                } catch {
                    logger.info("event stream producer threw", metadata: ["error": "\(error)"])
                }
            }
            group.addTask { await waitForClose(of: channel) }
            await group.next()
            group.cancelAll()
        }
    }
}
