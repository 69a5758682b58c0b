import HTTPTypes
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The HTTP/2 glue of an event stream: body bytes become DATA frames on the request's stream, each flushed; the
/// end of the stream is an empty DATA frame with END_STREAM (RFC 9113 §8.1). Installed on the stream's child
/// channel in place of the ``HTTP2StreamHandler`` once the `200` HEADERS frame is written.
///
/// Backpressure: a write completes once NIOHTTP2 has sent its DATA frame, which it holds back while the stream's
/// or the connection's flow-control window is closed (RFC 9113 §5.2); so a client that does not read keeps the
/// bytes in ``EventStreamOutput``'s count and meets the route's
/// ``EventStreamRoute/Configuration/maxBufferedBytes`` policy, as a slow TCP reader does over HTTP/1.1.
///
/// Ends: RST_STREAM from the client or the connection's close closes the child channel, which cancels the
/// producer. A `close` from anywhere else (the server's graceful shutdown) first ends the stream with END_STREAM,
/// so the client sees a clean end of the response; ``abort()`` (buffer overflow) resets the stream with
/// RST_STREAM `CANCEL`. Other streams of the connection are not affected.
final class HTTP2EventStreamHandler: ChannelDuplexHandler, EventStreamTransport {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var context: ChannelHandlerContext?
    /// END_STREAM is written (or being written).
    private var ended = false
    /// The client ended its side of the stream (a `GET` normally does so with its HEADERS frame).
    private var inputEnded: Bool
    var output: EventStreamOutput?

    init(inputEnded: Bool) {
        self.inputEnded = inputEnded
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        output?.closed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A request body is read and discarded; only its end matters.
        switch unwrapInboundIn(data) {
        case .data(let data) where data.endStream: inputEnded = true
        case .headers(let trailers) where trailers.endStream: inputEnded = true
        default: break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        output?.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // RST_STREAM from the client arrives as a stream-closed error before the channel goes inactive.
        output?.closed()
        context.close(promise: nil)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, !ended, context.channel.isActive else {
            context.close(mode: mode, promise: promise)
            return
        }
        endStream(context: context, then: promise)
    }

    /// Writes END_STREAM; once written, the stream is closed on both sides when the client had ended its own,
    /// otherwise it is reset with `CANCEL` (the server will not read the rest, RFC 9113 §8.1).
    private func endStream(context: ChannelHandlerContext, then promise: EventLoopPromise<Void>?) {
        ended = true
        let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
        context.writeAndFlush(wrapOutboundOut(end)).assumeIsolated().whenComplete { [self] _ in
            if inputEnded, !context.channel.isActive {
                promise?.succeed()
            } else if inputEnded {
                context.channel.closeFuture.cascade(to: promise)
            } else {
                context.close(promise: promise)
            }
        }
    }

    // MARK: EventStreamTransport

    func writeBody(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context, !ended else {
            promise?.fail(EventStreamClosedError())
            return
        }
        let frame = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(bytes)))
        context.writeAndFlush(wrapOutboundOut(frame), promise: promise)
    }

    func finishResponse() {
        guard let context, !ended else { return }
        endStream(context: context, then: nil)
    }

    func abort() {
        context?.close(promise: nil)
    }
}

extension HTTP2StreamHandler {
    /// Answers a request on an event stream route over this HTTP/2 stream (see ``HTTP2EventStreamHandler``):
    /// the same validation, hook, resumption, heartbeats and buffering policy as over HTTP/1.1, with a `200`
    /// HEADERS frame that carries no connection-specific field (RFC 9113 §8.2.2).
    func answerEventStream(_ request: HTTPRequest, route: EventStreamRoute, context: ChannelHandlerContext) {
        let shared = self.shared
        let exchange = EventStreamResponder.Exchange(
            channel: context.channel,
            respond: { [self] in respond($0, context: context) },
            respondNoContent: { [self] in
                // 204 without a body or `content-length` (RFC 9110 §8.6); a request still open is then reset.
                let inputEnded: Bool
                if case .responding(let ended) = state { inputEnded = ended } else { inputEnded = true }
                state = .done
                let headers: HPACKHeaders = [":status": "204"]
                context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
                if !inputEnded { context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil) }
            },
            begin: { [self] fields in
                let inputEnded: Bool
                if case .responding(let ended) = state { inputEnded = ended } else { inputEnded = true }
                state = .upgraded
                var headers = HPACKHeaders()
                headers.add(name: ":status", value: "200")
                for field in fields { headers.add(name: field.name.canonicalName, value: field.value) }
                context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
                let glue = HTTP2EventStreamHandler(inputEnded: inputEnded)
                do {
                    try context.pipeline.syncOperations.addHandler(glue, position: .after(self))
                } catch {
                    context.close(promise: nil)
                    return nil
                }
                return glue
            },
            didBegin: { [self] in
                let channel = context.channel
                // Shutdown ends the stream (END_STREAM) through the tracker, and keeps the connection open
                // meanwhile, as for a WebSocket on it.
                shared.tracker.add(channel)
                if let parent = channel.parent { shared.tracker.markUpgraded(parent) }
                let registry = shared.http2Connections
                registry.eventStreamOpened()
                channel.closeFuture.whenComplete { _ in registry.eventStreamClosed() }
                logger.info("event stream over HTTP/2 stream", metadata: ["path": "\(route.path)"])
                context.pipeline.syncOperations.removeHandler(self, promise: nil)
            }
        )
        EventStreamResponder.handle(
            request,
            route: route,
            info: connectionInfo(context),
            shared: shared,
            exchange: exchange
        )
    }
}
