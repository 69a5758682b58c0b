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


extension EventStreamResponder {
    /// What the HTTP/1.1 handler lends: its way of answering with a complete response and closing.
    struct Lent {
        var respond: (PlainHTTPResponse) -> Void
        /// The HTTP handlers to remove once the stream starts (the head limiter and the upgrade handler).
        var handlersToRemove: [any RemovableChannelHandler]
    }

    /// Answers `request` on an HTTP/1.1 connection: the body is chunked, and the connection closes when the
    /// stream ends.
    static func handle(
        _ request: HTTPRequest,
        route: EventStreamRoute,
        info: ConnectionInfo,
        shared: Server.Shared,
        context: ChannelHandlerContext,
        lent: Lent
    ) {
        let exchange = Exchange(
            channel: context.channel,
            respond: lent.respond,
            respondNoContent: {
                // 204 No Content without a body or `Content-Length` (RFC 9110 §8.6), then close.
                var head = HTTPResponseHead(version: .http1_1, status: .noContent)
                head.headers.add(name: "Connection", value: "close")
                context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
                context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            },
            begin: { fields in
                var head = HTTPResponseHead(version: .http1_1, status: .ok)
                for field in fields { head.headers.add(name: field.name.rawName, value: field.value) }
                head.headers.add(name: "Transfer-Encoding", value: "chunked")
                context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
                let glue = HTTP1EventStreamHandler()
                do {
                    try context.pipeline.syncOperations.addHandler(glue)
                } catch {
                    context.close(promise: nil)
                    return nil
                }
                return glue
            },
            didBegin: {
                // The upgrade handler's `context` is not used after this: it leaves the pipeline now.
                let pipeline = context.pipeline.syncOperations
                for handler in lent.handlersToRemove { pipeline.removeHandler(handler, promise: nil) }
            }
        )
        handle(request, route: route, info: info, shared: shared, exchange: exchange)
    }
}
