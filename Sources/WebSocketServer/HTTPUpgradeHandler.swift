import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import WebSocketDeflate
import WebSocketHandshake
import WebSocketNIO

#if TLS
import NIOSSL
#endif

/// Collects the bytes the HTTP decoder forwards when it is removed (`leftOverBytesStrategy: .forwardBytes`):
/// whatever the client sent behind its request head, e.g. a first frame in the same segment.
final class LeftoverBytesCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private(set) var bytes: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if bytes == nil {
            bytes = buffer
        } else {
            bytes?.writeBuffer(&buffer)
        }
    }
}

/// The HTTP/1.1 side of a connection: reads one request, then either upgrades to WebSocket (registered path,
/// valid RFC 6455 §4.2.1 handshake, application accepts), answers a rejection, or answers plain HTTP. It
/// closes the connection after any non-101 answer, and drops a client that does not finish in time.
///
/// Pipeline while it runs: `[TLS] → RequestHeadLimitHandler → HTTP decoder (.forwardBytes) → HTTP encoder →
/// this`. On upgrade every one of them except TLS is removed and the WebSocket handler is installed with the
/// decoder's left-over bytes.
final class HTTPUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case waitingForHead
        case receivingBody(HTTPRequestHead)
        /// The request is complete; a response (or the upgrade) is being produced.
        case responding
        case upgraded
        case closed
    }

    private let shared: Server.Shared
    private let headLimiter: RequestHeadLimitHandler
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private let encoder: HTTPResponseEncoder
    private let isSecure: Bool
    private var state = State.waitingForHead
    private var timeout: Scheduled<Void>?
    /// A response to HEAD has no body (RFC 9110 §9.3.2), though it announces the body's length.
    private var isHeadRequest = false
    /// The request is a WebSocket upgrade on a route (its decision may be pending).
    private var isUpgradeRequest = false
    /// The ``HTTPRoute`` whose request body is being read, and the body so far.
    private var httpRoute: HTTPRoute?
    private var httpBody: [UInt8] = []

    init(
        shared: Server.Shared,
        headLimiter: RequestHeadLimitHandler,
        decoder: ByteToMessageHandler<HTTPRequestDecoder>,
        encoder: HTTPResponseEncoder,
        isSecure: Bool
    ) {
        self.shared = shared
        self.headLimiter = headLimiter
        self.decoder = decoder
        self.encoder = encoder
        self.isSecure = isSecure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolated()
        timeout = loop.scheduleTask(in: TimeAmount(saturating: shared.configuration.handshakeTimeout)) { [weak self] in
            guard let self, case .upgraded = self.state else {
                context.close(promise: nil)
                return
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if case .upgraded = state {} else { state = .closed }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.waitingForHead, .head(let head)):
            headLimiter.headReceived()
            state = .receivingBody(head)
            httpRoute = route(for: head)
        case (.receivingBody, .body(let buffer)):
            // A body is read for an HTTP route (bounded); on an upgrade or a plain request it is discarded.
            guard let route = httpRoute else { break }
            guard buffer.readableBytes <= route.maxBodyLength - httpBody.count else {
                state = .responding
                httpRoute = nil
                httpBody = []
                respond(PlainHTTPResponse(status: .init(code: 413), text: "Content Too Large\n"), context: context)
                return
            }
            httpBody.append(contentsOf: buffer.readableBytesView)
        case (.receivingBody(let head), .end):
            state = .responding
            isHeadRequest = head.method == .HEAD
            handle(head, context: context)
        default:
            break  // anything after the request (pipelining) is ignored: the connection closes after the answer
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        #if TLS
        if error is NIOSSLError || error is BoringSSLError {
            // No HTTP answer is possible on a broken TLS session. Before a request head it is a failed handshake
            // (logged at info); later it is usually a client that left without close_notify.
            if case .waitingForHead = state, Self.isHandshakeFailure(error) {
                shared.logger.info(
                    "TLS handshake failed",
                    metadata: ["peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)"]
                )
            } else {
                shared.logger.debug("TLS error", metadata: ["error": "\(error)"])
            }
            state = .closed
            context.close(promise: nil)
            return
        }
        #endif
        switch state {
        case .waitingForHead, .receivingBody:
            state = .responding
            let tooLarge =
                error is RequestHeadLimitHandler.RequestHeadTooLarge || (error as? HTTPParserError) == .headerOverflow
            shared.logger.info(
                "refused malformed HTTP request",
                metadata: [
                    "peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")",
                    "status": "\(tooLarge ? 431 : 400)",
                    "error": "\(error)",
                ]
            )
            if tooLarge {
                respond(
                    PlainHTTPResponse(status: .init(code: 431), text: "Request Header Fields Too Large\n"),
                    context: context
                )
            } else {
                respond(PlainHTTPResponse(status: .badRequest, text: "Bad Request\n"), context: context)
            }
        case .responding, .closed:
            break  // an answer is on its way or written; the lingering close ends the connection
        case .upgraded:
            context.close(promise: nil)
        }
    }

    #if TLS
    private static func isHandshakeFailure(_ error: any Error) -> Bool {
        if error is BoringSSLError { return true }
        if let error = error as? NIOSSLError, case .handshakeFailed = error { return true }
        return false
    }
    #endif

    // MARK: - Dispatch

    private func connectionInfo(_ context: ChannelHandlerContext) -> ConnectionInfo {
        ConnectionInfo(
            remoteAddress: context.channel.remoteAddress,
            localAddress: context.channel.localAddress,
            isSecure: isSecure
        )
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let request: HTTPRequest
        do {
            request = try HTTPRequest(head, secure: isSecure, splitCookie: false)
        } catch {
            respond(PlainHTTPResponse(status: .badRequest, text: "Bad Request\n"), context: context)
            return
        }
        let target = request.path ?? ""
        let path = String(target[..<(target.firstIndex(of: "?") ?? target.endIndex)])
        if let httpRoute {
            answer(request, route: httpRoute, target: target, context: context)
            return
        }
        if let eventStreamRoute = EventStreamResponder.claims(request, path: path, shared: shared) {
            let lent = EventStreamResponder.Lent(
                respond: { [self] in respond($0, context: context) },
                handlersToRemove: [headLimiter, self]
            )
            EventStreamResponder.handle(
                request, route: eventStreamRoute, info: connectionInfo(context), shared: shared, context: context,
                lent: lent)
            return
        }
        guard let route = shared.routes[path] else {
            let httpHandler = shared.httpHandler
            let info = connectionInfo(context)
            let method = request.method.rawValue
            shared.tasks.run(on: context.channel) { await httpHandler(request, info) }
                .assumeIsolated()
                .whenComplete { [self] result in
                    switch result {
                    case .success(let response):
                        if response.response.status.code >= 400 {
                            shared.logger.info(
                                "refused plain HTTP request",
                                metadata: [
                                    "peer": "\(info.remoteAddress.map { "\($0)" } ?? "?")",
                                    "request": "\(method) \(target)",
                                    "status": "\(response.response.status.code)",
                                ]
                            )
                        }
                        respond(response, context: context)
                    case .failure:
                        context.close(promise: nil)  // the server is stopping
                    }
                }
            return
        }
        isUpgradeRequest = true
        if shared.isShuttingDown {
            respond(PlainHTTPResponse(status: .serviceUnavailable, text: "Server is shutting down\n"), context: context)
            return
        }

        let upgradeRequest: UpgradeRequest
        do {
            let version = HTTPProtocolVersion(major: head.version.major, minor: head.version.minor)
            upgradeRequest = try UpgradeRequest(validating: request, httpVersion: version)
        } catch {
            respond(error, context: context)
            return
        }

        let info = connectionInfo(context)
        guard let hook = route.decisionHook else {
            decide(.accept(), request: upgradeRequest, route: route, info: info, context: context)
            return
        }
        shared.tasks.run(on: context.channel) { await hook(upgradeRequest, info) }
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let decision):
                    decide(decision, request: upgradeRequest, route: route, info: info, context: context)
                case .failure:
                    context.close(promise: nil)  // the server is stopping
                }
            }
    }

    /// The HTTP route that takes the request, if any: a route on its path, unless the request is a WebSocket
    /// upgrade and a WebSocket route has the same path, or a `GET`/`HEAD` accepting `text/event-stream` and an
    /// event stream route has the same path.
    private func route(for head: HTTPRequestHead) -> HTTPRoute? {
        let (path, _) = HTTPQuery.split(head.uri)
        guard let route = shared.httpRoutes[path] else { return nil }
        let upgrade = head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
        if upgrade, shared.routes[path] != nil { return nil }
        if shared.eventStreamRoutes[path] != nil, head.method == .GET || head.method == .HEAD,
            EventStreamResponder.acceptsEventStream(head.headers[canonicalForm: "accept"].joined(separator: ","))
        {
            return nil
        }
        return route
    }

    /// Answers a request of an ``HTTPRoute``: 405 for another method, else the route's handler.
    private func answer(_ request: HTTPRequest, route: HTTPRoute, target: String, context: ChannelHandlerContext) {
        guard route.allows(request.method) else {
            var fields = HTTPFields()
            fields[.allow] = route.allowHeader
            respond(
                PlainHTTPResponse(status: .methodNotAllowed, text: "Method Not Allowed\n", headerFields: fields),
                context: context)
            return
        }
        // The request is read: the handshake timeout guarded that. The handler may take its time (a long poll);
        // it is cancelled when the client goes away.
        timeout?.cancel()
        timeout = nil
        let (path, query) = HTTPQuery.split(target)
        let routeRequest = HTTPRouteRequest(
            request: request, path: path, query: query, body: httpBody, connection: connectionInfo(context))
        httpBody = []
        let handler = route.handler
        shared.tasks.run(on: context.channel) { await handler(routeRequest) }
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let response): respond(response, context: context)
                case .failure: context.close(promise: nil)  // the server is stopping
                }
            }
    }

    private func decide(
        _ decision: UpgradeDecision,
        request: UpgradeRequest,
        route: WebSocketRoute,
        info: ConnectionInfo,
        context: ChannelHandlerContext
    ) {
        guard case .responding = state, context.channel.isActive else { return }
        switch decision {
        case .reject(let status, let body, let headerFields):
            shared.logger.info(
                "upgrade refused by the application",
                metadata: [
                    "peer": "\(info.remoteAddress.map { "\($0)" } ?? "?")",
                    "path": "\(route.path)",
                    "status": "\(status.code)",
                ]
            )
            shared.metrics?.recordUpgrade(status: status.code)
            respond(PlainHTTPResponse(status: status, text: body, headerFields: headerFields), context: context)
        case .accept(let subprotocol, let chosenExtensions, let headerFields):
            var extensions = chosenExtensions.filter { $0.name != PerMessageDeflate.extensionName }
            var deflate: PerMessageDeflate.Parameters? = nil
            if let wishes = shared.configuration.perMessageDeflate,
                let (element, parameters) = PerMessageDeflate.negotiate(offers: request.extensions, configuration: wishes)
            {
                extensions.append(element)
                deflate = parameters
            }
            let response: HTTPResponse
            do {
                response = try request.makeResponse(
                    subprotocol: subprotocol,
                    extensions: extensions,
                    headerFields: headerFields
                )
            } catch {
                respond(error, context: context)
                return
            }
            let accepted = AcceptedUpgrade(
                request: request,
                subprotocol: subprotocol,
                extensions: extensions,
                connection: info,
                perMessageDeflate: deflate
            )
            shared.metrics?.recordUpgrade(status: 101)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(response))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)))
                .assumeIsolated()
                .whenComplete { [self] result in
                    switch result {
                    case .success: upgrade(accepted, route: route, context: context)
                    case .failure: context.close(promise: nil)
                    }
                }
        }
    }

    /// Swaps the HTTP handlers for the WebSocket handler, keeping the bytes read behind the head.
    private func upgrade(_ accepted: AcceptedUpgrade, route: WebSocketRoute, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        state = .upgraded
        timeout?.cancel()
        timeout = nil
        let pipeline = context.pipeline.syncOperations
        let collector = LeftoverBytesCollector()
        do {
            try pipeline.addHandler(collector, position: .after(decoder))
        } catch {
            context.close(promise: nil)
            return
        }
        pipeline.removeHandler(headLimiter, promise: nil)
        pipeline.removeHandler(encoder, promise: nil)
        // Removing the decoder is asynchronous (ByteToMessageHandler processes its left-overs in a later event
        // loop tick): what it buffered behind the head, and anything read meanwhile, reaches the collector.
        pipeline.removeHandler(decoder).assumeIsolated().whenComplete { [self] _ in
            install(accepted, route: route, collector: collector, context: context)
        }
    }

    private func install(
        _ accepted: AcceptedUpgrade,
        route: WebSocketRoute,
        collector: LeftoverBytesCollector,
        context: ChannelHandlerContext
    ) {
        guard context.channel.isActive else { return }
        let pipeline = context.pipeline.syncOperations
        let channel = context.channel
        do {
            // Synchronous from here on: no read can slip between the collector and the WebSocket handler.
            pipeline.removeHandler(collector, promise: nil)  // a plain handler leaves the pipeline at once
            let leftover = collector.bytes
            shared.tracker.markUpgraded(channel)
            let codec = accepted.perMessageDeflate.map {
                PerMessageDeflateCodec(
                    role: .server, parameters: $0, configuration: shared.configuration.perMessageDeflate ?? .init())
            }
            // The connection's log messages name the peer and the path at the moment they are logged: a copy of
            // the logger with that metadata would cost every idle connection several hundred bytes.
            var configuration = shared.webSocketConfiguration
            configuration.routePath = route.path
            switch route.handler {
            case .delegate(let makeDelegate):
                let delegate = makeDelegate(accepted)
                try pipeline.addWebSocketDelegate(
                    role: .server,
                    configuration: configuration,
                    subprotocol: accepted.subprotocol,
                    leftoverBytes: leftover,
                    registry: shared.registry,
                    codec: codec,
                    delegate: delegate
                )
            case .async(let body):
                let webSocket = try pipeline.addAsyncWebSocket(
                    role: .server,
                    configuration: configuration,
                    subprotocol: accepted.subprotocol,
                    leftoverBytes: leftover,
                    registry: shared.registry,
                    codec: codec
                )
                let logger = configuration.logger
                let path = route.path
                let peer = channel.remoteAddress
                let logContext: @Sendable () -> Logger.Metadata = {
                    var metadata: Logger.Metadata = ["path": "\(path)"]
                    if let peer { metadata["peer"] = "\(peer)" }
                    return metadata
                }
                shared.tasks.submit(
                    ServerTasks.Job(
                        run: {
                            do {
                                try await body(webSocket, accepted)
                                // A route cancelled because the server stops is "going away" (RFC 6455 §7.4.1).
                                await webSocket.close(code: Task.isCancelled ? .goingAway : .normalClosure)
                            } catch let error as WebSocketError where error == .connectionClosed {
                                // A send raced the peer's close: nothing went wrong on our side.
                                logger.debug("WebSocket route ended by a send after the close", metadata: logContext())
                            } catch {
                                logger.info(
                                    "WebSocket route threw",
                                    metadata: logContext().merging(["error": "\(error)"]) { $1 }
                                )
                                await webSocket.close(code: .internalError, reason: "internal error")
                            }
                        },
                        cancel: {
                            webSocket.channel.close(promise: nil)
                        }
                    )
                )
            case .channel(let install):
                try install(channel, accepted, leftover)
            }
            pipeline.removeHandler(self, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    // MARK: - Responses

    private func respond(_ error: ServerHandshakeError, context: ChannelHandlerContext) {
        shared.logger.info(
            "invalid upgrade request",
            metadata: [
                "peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")",
                "status": "\(error.response.status.code)",
                "reason": "\(error.reason)",
            ]
        )
        shared.metrics?.recordUpgrade(status: error.response.status.code)
        respond(PlainHTTPResponse(response: error.response, body: Array((error.reason + "\n").utf8)), context: context)
    }

    /// Writes a complete response with `Connection: close` and closes the connection once it is written.
    private func respond(_ plain: PlainHTTPResponse, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var head = HTTPResponseHead(plain.response)
        head.headers.replaceOrAdd(name: "Connection", value: "close")
        head.headers.replaceOrAdd(name: "Content-Length", value: String(plain.body.count))
        if plain.response.headerFields[.contentType] == nil, !plain.body.isEmpty {
            head.headers.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        }
        var body = context.channel.allocator.buffer(capacity: plain.body.count)
        body.writeBytes(plain.body)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if body.readableBytes > 0, !isHeadRequest {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)))
            .assumeIsolated()
            .whenComplete { [self] _ in lingeringClose(context: context) }
    }

    /// Closes after a response without losing it: closing a socket that still has unread input makes the
    /// kernel send RST, which can destroy the response before the client reads it. So the output side is shut
    /// down first (FIN after the response), input is read and dropped until the client closes, and the
    /// channel is closed at the latest after `lingerTime`.
    private func lingeringClose(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        state = .closed
        timeout?.cancel()
        let loop = context.eventLoop.assumeIsolated()
        timeout = loop.scheduleTask(in: Self.lingerTime) { context.close(promise: nil) }
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenFailure { _ in context.close(promise: nil) }
        context.close(mode: .output, promise: promise)
    }

    /// The bound on ``lingeringClose(context:)``.
    static let lingerTime = TimeAmount.seconds(2)

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            switch state {
            case .upgraded:
                break
            case .closed:
                context.close(promise: nil)  // the client read our answer and closed: done
            case .waitingForHead, .receivingBody:
                // The client will send nothing more; an unfinished request gets no answer.
                context.close(promise: nil)
            case .responding:
                // A plain HTTP client may half-close after its request and still read the answer; a client that
                // wants a WebSocket cannot: it went away, so its upgrade decision is cancelled.
                if isUpgradeRequest { context.close(promise: nil) }
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
