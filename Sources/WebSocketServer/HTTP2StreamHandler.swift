import HTTPTypes
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import WebSocketCore
import WebSocketDeflate
import WebSocketHandshake
import WebSocketNIO

/// One request stream of an HTTP/2 connection: reads the request header block, checks it (RFC 9113 §8.2-§8.3),
/// then either opens a WebSocket (extended CONNECT on a WebSocket route, RFC 8441), answers the refusal, streams
/// Server-Sent Events (any other request on an event stream route, ``answerEventStream(_:route:context:)``), or
/// passes the request to the server's plain HTTP handler.
///
/// A malformed request is a stream error: RST_STREAM `PROTOCOL_ERROR`, no answer (RFC 9113 §8.1.1). A WebSocket
/// beyond ``Server/HTTP2Configuration/maxWebSocketsPerConnection`` gets RST_STREAM `REFUSED_STREAM`. An
/// accepted WebSocket gets a `200` HEADERS frame without END_STREAM, then this handler leaves the stream channel
/// to an ``HTTP2StreamBytesHandler`` and the same WebSocket handler as HTTP/1.1.
final class HTTP2StreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    enum State {
        case waitingForHeaders
        /// The request is being answered (a decision or a plain handler is pending); its body is discarded.
        case responding(inputEnded: Bool)
        /// The body of a request to an ``HTTPRoute`` is being read (bounded by the route).
        case receivingBody(HTTPRoute, HTTPRequest, body: [UInt8])
        case upgraded
        case done
    }

    let shared: Server.Shared
    private let connection: HTTP2ConnectionState
    private let isSecure: Bool
    var state = State.waitingForHeaders
    private var isHeadRequest = false
    private(set) var logger: Logger

    init(shared: Server.Shared, connection: HTTP2ConnectionState, isSecure: Bool) {
        self.shared = shared
        self.connection = connection
        self.isSecure = isSecure
        self.logger = shared.logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let id = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID) {
            if id > connection.lastStreamID { connection.lastStreamID = id }
            logger[metadataKey: "stream"] = "\(Int(id))"
        }
        if let remote = context.channel.parent?.remoteAddress {
            logger[metadataKey: "peer"] = "\(remote)"
        }
        shared.http2Connections.streamOpened()
        connection.streamOpened()
        context.channel.closeFuture.assumeIsolated().whenComplete { [connection] _ in connection.streamClosed() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        switch (state, payload) {
        case (.waitingForHeaders, .headers(let headers)):
            state = .responding(inputEnded: headers.endStream)
            handle(headers.headers, context: context)
        case (.receivingBody(let route, let request, var body), .data(let data)):
            state = .responding(inputEnded: data.endStream)  // releases `body` for in-place appends
            if case .byteBuffer(let buffer) = data.data {
                guard buffer.readableBytes <= route.maxBodyLength - body.count else {
                    respond(PlainHTTPResponse(status: .init(code: 413), text: "Content Too Large\n"), context: context)
                    return
                }
                body.append(contentsOf: buffer.readableBytesView)
            }
            if data.endStream {
                answer(request, route: route, body: body, context: context)
            } else {
                state = .receivingBody(route, request, body: body)
            }
        case (.receivingBody(let route, let request, let body), .headers(let trailers)) where trailers.endStream:
            state = .responding(inputEnded: true)
            answer(request, route: route, body: body, context: context)
        case (.responding, .data(let data)) where data.endStream:
            state = .responding(inputEnded: true)
        case (.responding, .headers(let trailers)) where trailers.endStream:
            state = .responding(inputEnded: true)
        default:
            break  // a request body is read and discarded
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/2 stream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: - Dispatch

    func connectionInfo(_ context: ChannelHandlerContext) -> ConnectionInfo {
        ConnectionInfo(
            remoteAddress: context.channel.parent?.remoteAddress,
            localAddress: context.channel.parent?.localAddress,
            isSecure: isSecure
        )
    }

    private func handle(_ headers: HPACKHeaders, context: ChannelHandlerContext) {
        let head: HTTP2RequestHead
        do {
            head = try HTTP2RequestHead(
                fields: headers.lazy.map { (name: $0.name, value: $0.value) },
                connectProtocolEnabled: connection.connectProtocolEnabled
            )
        } catch {
            logger.info("malformed HTTP/2 request", metadata: ["reason": "\(error.reason)"])
            reset(.protocolError, context: context)
            return
        }
        isHeadRequest = head.method == "HEAD"
        if !head.isExtendedConnect, head.path != nil,
            let route = EventStreamResponder.claims(head.request, path: head.pathWithoutQuery, shared: shared)
        {
            answerEventStream(head.request, route: route, context: context)
            return
        }
        if let httpRoute = shared.httpRoutes[head.pathWithoutQuery], head.path != nil,
            !(head.isExtendedConnect && shared.routes[head.pathWithoutQuery] != nil)
        {
            guard httpRoute.allows(head.request.method) else {
                var fields = HTTPFields()
                fields[.allow] = httpRoute.allowHeader
                respond(
                    PlainHTTPResponse(status: .methodNotAllowed, text: "Method Not Allowed\n", headerFields: fields),
                    context: context)
                return
            }
            if case .responding(inputEnded: true) = state {
                answer(head.request, route: httpRoute, body: [], context: context)
            } else {
                state = .receivingBody(httpRoute, head.request, body: [])
            }
            return
        }
        guard let route = shared.routes[head.pathWithoutQuery], head.path != nil else {
            answerPlain(head.request, context: context)
            return
        }
        if shared.isShuttingDown {
            respond(PlainHTTPResponse(status: .serviceUnavailable, text: "Server is shutting down\n"), context: context)
            return
        }
        let upgradeRequest: UpgradeRequest
        do {
            upgradeRequest = try UpgradeRequest(validatingExtendedConnect: head)
        } catch {
            logger.info(
                "invalid WebSocket request over HTTP/2",
                metadata: ["status": "\(error.status.code)", "reason": "\(error.reason)"]
            )
            shared.metrics?.recordUpgrade(status: error.status.code)
            if let response = error.response {
                let body = Array((error.reason + "\n").utf8)
                respond(PlainHTTPResponse(response: response, body: body), context: context)
            } else {
                reset(.protocolError, context: context)
            }
            return
        }
        guard connection.webSockets < connection.maxWebSockets else {
            logger.info(
                "too many WebSockets on one HTTP/2 connection",
                metadata: ["limit": "\(connection.maxWebSockets)"]
            )
            reset(.refusedStream, context: context)
            return
        }
        // The slot is held from here (the decision may take a while) until the stream closes.
        connection.webSockets += 1
        context.channel.closeFuture.assumeIsolated().whenComplete { [connection] _ in connection.webSockets -= 1 }

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

    private func answerPlain(_ request: HTTPRequest, context: ChannelHandlerContext) {
        let httpHandler = shared.httpHandler
        let info = connectionInfo(context)
        shared.tasks.run(on: context.channel) { await httpHandler(request, info) }
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let response): respond(response, context: context)
                case .failure: context.close(promise: nil)  // the server is stopping
                }
            }
    }

    /// Answers a complete request of an ``HTTPRoute`` with the route's handler.
    private func answer(_ request: HTTPRequest, route: HTTPRoute, body: [UInt8], context: ChannelHandlerContext) {
        let (path, query) = HTTPQuery.split(request.path ?? "")
        let routeRequest = HTTPRouteRequest(
            request: request, path: path, query: query, body: body, connection: connectionInfo(context))
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
            logger.info(
                "upgrade refused by the application",
                metadata: ["path": "\(route.path)", "status": "\(status.code)"]
            )
            shared.metrics?.recordUpgrade(status: status.code)
            respond(PlainHTTPResponse(status: status, text: body, headerFields: headerFields), context: context)
        case .accept(let subprotocol, let chosenExtensions, let headerFields):
            var extensions = chosenExtensions.filter { $0.name != PerMessageDeflate.extensionName }
            var deflate: PerMessageDeflate.Parameters? = nil
            if let wishes = shared.configuration.perMessageDeflate,
                let (element, parameters) = PerMessageDeflate.negotiate(
                    offers: request.extensions,
                    configuration: wishes
                )
            {
                extensions.append(element)
                deflate = parameters
            }
            let response: HTTPResponse
            do {
                response = try request.makeExtendedConnectResponse(
                    subprotocol: subprotocol,
                    extensions: extensions,
                    headerFields: headerFields
                )
            } catch {
                let body = Array((error.reason + "\n").utf8)
                respond(PlainHTTPResponse(response: error.response, body: body), context: context)
                return
            }
            let accepted = AcceptedUpgrade(
                request: request,
                subprotocol: subprotocol,
                extensions: extensions,
                connection: info,
                perMessageDeflate: deflate
            )
            shared.metrics?.recordUpgrade(status: 200)
            // Counted before the 200 leaves: a client that has its WebSocket also finds it in the statistics.
            shared.http2Connections.webSocketOpened()
            let registry = shared.http2Connections
            context.channel.closeFuture.whenComplete { _ in registry.webSocketClosed() }
            let headers = HPACKHeaders(response: response)
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            install(accepted, route: route, context: context)
        }
    }

    /// Replaces this handler with the DATA-frame adapter and the WebSocket handler, synchronously, so that no
    /// DATA frame read meanwhile is lost.
    private func install(_ accepted: AcceptedUpgrade, route: WebSocketRoute, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        state = .upgraded
        let pipeline = context.pipeline.syncOperations
        let channel = context.channel
        if let parent = channel.parent { shared.tracker.markUpgraded(parent) }
        logger.info("WebSocket over HTTP/2 stream", metadata: ["path": "\(route.path)"])
        do {
            try pipeline.addHandler(HTTP2StreamBytesHandler(), position: .after(self))
            let codec = accepted.perMessageDeflate.map {
                PerMessageDeflateCodec(
                    role: .server, parameters: $0, configuration: shared.configuration.perMessageDeflate ?? .init())
            }
            var configuration = shared.webSocketConfiguration
            configuration.logger = logger
            configuration.logger[metadataKey: "path"] = "\(route.path)"
            configuration.logger[metadataKey: "transport"] = "h2"
            switch route.handler {
            case .delegate(let makeDelegate):
                let delegate = makeDelegate(accepted)
                try pipeline.addWebSocketDelegate(
                    role: .server,
                    configuration: configuration,
                    subprotocol: accepted.subprotocol,
                    registry: shared.registry,
                    codec: codec,
                    delegate: delegate
                )
            case .async(let body):
                let webSocket = try pipeline.addAsyncWebSocket(
                    role: .server,
                    configuration: configuration,
                    subprotocol: accepted.subprotocol,
                    registry: shared.registry,
                    codec: codec
                )
                let logger = configuration.logger
                shared.tasks.submit(
                    ServerTasks.Job(
                        run: {
                            do {
                                try await body(webSocket, accepted)
                                await webSocket.close(code: Task.isCancelled ? .goingAway : .normalClosure)
                            } catch let error as WebSocketError where error == .connectionClosed {
                                logger.debug("WebSocket route ended by a send after the close", metadata: [:])
                            } catch {
                                logger.info("WebSocket route threw", metadata: ["error": "\(error)"])
                                await webSocket.close(code: .internalError, reason: "internal error")
                            }
                        },
                        cancel: {
                            webSocket.channel.close(promise: nil)
                        }
                    )
                )
            case .channel(let install):
                try install(channel, accepted, nil)
            }
            pipeline.removeHandler(self, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    // MARK: - Responses

    /// RST_STREAM with `code`; the stream channel closes.
    private func reset(_ code: NIOHTTP2.HTTP2ErrorCode, context: ChannelHandlerContext) {
        state = .done
        context.writeAndFlush(wrapOutboundOut(.rstStream(code)), promise: nil)
        context.close(promise: nil)
    }

    /// Writes a complete response (HEADERS, then DATA with END_STREAM). Connection-specific fields are left out
    /// (RFC 9113 §8.2.2). If the client has not finished its request, the stream is then reset with NO_ERROR
    /// (RFC 9113 §8.1).
    func respond(_ plain: PlainHTTPResponse, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let inputEnded: Bool
        if case .responding(let ended) = state { inputEnded = ended } else { inputEnded = true }
        state = .done
        var response = plain.response
        for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
            if let fieldName = HTTPField.Name(name) { response.headerFields[fieldName] = nil }
        }
        response.headerFields[.contentLength] = String(plain.body.count)
        if response.headerFields[.contentType] == nil, !plain.body.isEmpty {
            response.headerFields[.contentType] = "text/plain; charset=utf-8"
        }
        let hasBody = !plain.body.isEmpty && !isHeadRequest
        let headers = HPACKHeaders(response: response)
        context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: !hasBody))), promise: nil)
        if hasBody {
            var body = context.channel.allocator.buffer(capacity: plain.body.count)
            body.writeBytes(plain.body)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
        }
        context.flush()
        if !inputEnded {
            context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
        }
    }
}

extension HPACKHeaders {
    /// The header block of `response`: `:status`, then its fields with lowercase names (RFC 9113 §8.2.1, §8.3.2).
    init(response: HTTPResponse) {
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: String(response.status.code))
        for field in response.headerFields {
            headers.add(name: field.name.canonicalName, value: field.value)
        }
        self = headers
    }
}
