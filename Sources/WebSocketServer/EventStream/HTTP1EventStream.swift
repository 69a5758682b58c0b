import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import ServerSentEvents

/// The HTTP/1.1 glue of an event stream: body bytes become chunks (the response has no `Content-Length`), each
/// write is flushed, and a `close` from anywhere (the server's shutdown) first ends the chunked body so that
/// the client sees a clean end of the response. Installed behind the HTTP encoder once the head is written.
final class HTTP1EventStreamHandler: ChannelDuplexHandler, EventStreamTransport {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var context: ChannelHandlerContext?
    private var ended = false
    var output: EventStreamOutput?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        output?.closed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Anything the client sends after its request (pipelining) is ignored.
    }

    func channelInactive(context: ChannelHandlerContext) {
        output?.closed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client closed its side: it went away (EventSource never half-closes).
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, !ended, context.channel.isActive {
            ended = true
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: EventStreamTransport

    func writeBody(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context, !ended else {
            promise?.fail(EventStreamClosedError())
            return
        }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: promise)
    }

    func finishResponse() {
        guard let context, !ended else { return }
        ended = true
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func abort() {
        context?.close(promise: nil)
    }
}

/// Answers a request on an ``EventStreamRoute``: validation, the route's decision, then the stream.
enum EventStreamResponder {
    /// What the HTTP handler lends: its way of answering with a complete response and closing.
    struct Lent {
        var respond: (PlainHTTPResponse) -> Void
        /// The HTTP handlers to remove once the stream starts (the head limiter and the upgrade handler).
        var handlersToRemove: [any RemovableChannelHandler]
    }

    /// Whether a request on `path` goes to the event stream route: yes unless a WebSocket route has the same
    /// path and the request asks for a WebSocket upgrade.
    static func claims(_ request: HTTPRequest, path: String, shared: Server.Shared) -> EventStreamRoute? {
        guard let route = shared.eventStreamRoutes[path] else { return nil }
        if shared.routes[path] != nil, request.headerFields[.upgrade]?.lowercased().contains("websocket") == true {
            return nil
        }
        return route
    }

    static func handle(
        _ request: HTTPRequest,
        route: EventStreamRoute,
        info: ConnectionInfo,
        shared: Server.Shared,
        context: ChannelHandlerContext,
        lent: Lent
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
            lent.respond(PlainHTTPResponse(status: status, text: text + "\n", headerFields: fields))
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
        shared.tasks.run(on: context.channel) { await hook(streamRequest, info) }
            .assumeIsolated()
            .whenComplete { result in
                guard context.channel.isActive else { return }
                switch result {
                case .failure:
                    context.close(promise: nil)  // the server is stopping
                case .success(.reject(let status, let body, let fields)):
                    refuse(status, body, fields: fields)
                case .success(.noContent):
                    noContent(context: context)
                case .success(.accept(let fields)):
                    start(streamRequest, route: route, fields: fields, shared: shared, context: context, lent: lent)
                }
            }
    }

    /// 204 No Content without a body or `Content-Length` (RFC 9110 §8.6), then close.
    private static func noContent(context: ChannelHandlerContext) {
        var head = HTTPResponseHead(version: .http1_1, status: .noContent)
        head.headers.add(name: "Connection", value: "close")
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private static func start(
        _ request: EventStreamRequest,
        route: EventStreamRoute,
        fields: HTTPFields,
        shared: Server.Shared,
        context: ChannelHandlerContext,
        lent: Lent
    ) {
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: "text/event-stream")
        head.headers.add(name: "Cache-Control", value: "no-cache")
        head.headers.add(name: "X-Accel-Buffering", value: "no")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        for field in fields { head.headers.add(name: field.name.rawName, value: field.value) }
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)

        let channel = context.channel
        let pipeline = context.pipeline.syncOperations
        let glue = HTTP1EventStreamHandler()
        do {
            try pipeline.addHandler(glue)
        } catch {
            context.close(promise: nil)
            return
        }
        let output = EventStreamOutput(
            eventLoop: context.eventLoop,
            allocator: channel.allocator,
            maxBufferedBytes: route.configuration.maxBufferedBytes,
            transport: glue
        )
        glue.output = output
        if let retry = route.configuration.retry, let bytes = EventStreamEncoder.retry(milliseconds: retry) {
            output.write(channel.allocator.buffer(bytes: bytes))
        } else {
            channel.flush()
        }
        // Last use of `context` (the upgrade handler's) is above: it leaves the pipeline now.
        for handler in lent.handlersToRemove { pipeline.removeHandler(handler, promise: nil) }
        if let interval = route.configuration.heartbeatInterval {
            output.startHeartbeat(every: interval)
        }
        var logger = shared.logger
        logger[metadataKey: "path"] = "\(request.path)"
        if let remote = channel.remoteAddress { logger[metadataKey: "peer"] = "\(remote)" }
        logger.debug("event stream started", metadata: ["last-event-id": "\(request.lastEventID ?? "")"])
        let streamLogger = logger

        switch route.handler {
        case .broadcast(let broadcaster):
            broadcaster.subscribe(output, lastEventID: request.lastEventID)
        case .callback(let body):
            body(request, EventStreamLoopWriter(output: output, request: request))
        case .async(let body):
            let writer = EventStreamWriter(output: output, allocator: channel.allocator)
            let loopBoundOutput = NIOLoopBound(output, eventLoop: context.eventLoop)
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

    /// Runs the producer until it returns, or cancels it as soon as the connection closes.
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
