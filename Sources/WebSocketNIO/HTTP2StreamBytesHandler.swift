import NIOCore
import NIOHTTP2

/// Carries a WebSocket over one HTTP/2 stream (RFC 8441 §5): the payloads of the stream's DATA frames become the
/// byte stream that ``WebSocketHandler`` reads, and the bytes it writes become DATA frames. Install it in the
/// stream channel after the extended CONNECT exchange (the `200` sent or received), in front of the WebSocket
/// handler; masking and framing are unchanged (RFC 8441 §5: the client still masks).
///
/// - Inbound: DATA payloads are forwarded as `ByteBuffer`s (empty ones dropped); the peer's END_STREAM (on DATA
///   or trailers) becomes `ChannelEvent.inputClosed`, the HTTP/2 form of the peer's TCP FIN.
/// - Outbound: each non-empty `ByteBuffer` is one DATA frame (empty writes only flush). `close(mode: .output)`
///   ends the stream with an empty DATA frame with END_STREAM, the HTTP/2 form of a TCP FIN, so a closed
///   WebSocket ends its stream cleanly, never with RST_STREAM (RFC 8441 §5). A full `close` also sends
///   END_STREAM first and lets the stream close by itself once both sides have ended; a peer that has not
///   ended its side after ``lingerTime`` gets RST_STREAM CANCEL.
/// - Flow control: the stream channel grants the peer more window only as frames are read, so a WebSocket
///   handler that holds back `read()` (slow consumer, unwritable channel) stops the peer after one window: HTTP/2
///   flow control is the per-stream backpressure.
public final class HTTP2StreamBytesHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTP2Frame.FramePayload
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = HTTP2Frame.FramePayload

    /// How long a full close waits for the peer's END_STREAM before resetting the stream: 2 s.
    public static let lingerTime = TimeAmount.seconds(2)

    private var inputEnded = false
    private var outputEnded = false
    private var lingerTimer: Scheduled<Void>?
    private var pendingClose: EventLoopPromise<Void>?

    public init() {}

    /// Whether `pipeline` carries a WebSocket over an HTTP/2 stream (this handler is in it). Call on its event loop.
    static func isInstalled(in pipeline: ChannelPipeline) -> Bool {
        (try? pipeline.syncOperations.context(handlerType: HTTP2StreamBytesHandler.self)) != nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .data(let payload):
            if case .byteBuffer(let buffer) = payload.data, buffer.readableBytes > 0, !self.inputEnded {
                context.fireChannelRead(self.wrapInboundOut(buffer))
            }
            if payload.endStream { self.endInput(context: context) }
        case .headers(let headers):
            // Trailers (RFC 9113 §8.1): nothing for the WebSocket, but they may end the stream.
            if headers.endStream { self.endInput(context: context) }
        default:
            break  // RST_STREAM closes the channel itself; WINDOW_UPDATE, PRIORITY are the HTTP/2 layer's business
        }
    }

    private func endInput(context: ChannelHandlerContext) {
        guard !self.inputEnded else { return }
        self.inputEnded = true
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = self.unwrapOutboundIn(data)
        guard !self.outputEnded else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        guard buffer.readableBytes > 0 else {
            promise?.succeed()
            return
        }
        let payload = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(buffer)))
        context.write(self.wrapOutboundOut(payload), promise: promise)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .output:
            self.endOutput(context: context, promise: promise)
        case .input:
            promise?.fail(ChannelError.operationUnsupported)
        case .all:
            guard context.channel.isActive else {
                context.close(promise: promise)
                return
            }
            // End our side, then let the stream close by itself once both sides have ended (NIOHTTP2 closes the
            // channel then): no RST_STREAM after a clean end. The peer gets `lingerTime` to end its side.
            self.endOutput(context: context, promise: nil)
            if let pending = self.pendingClose {
                if let promise { pending.futureResult.cascade(to: promise) }
                return
            }
            let pending = promise ?? context.eventLoop.makePromise(of: Void.self)
            self.pendingClose = pending
            self.lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) {
                guard let promise = self.pendingClose else { return }
                self.pendingClose = nil
                context.close(promise: promise)
            }
        }
    }

    /// Sends END_STREAM (an empty DATA frame) once.
    private func endOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard !self.outputEnded, context.channel.isActive else {
            promise?.succeed()
            return
        }
        self.outputEnded = true
        let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
        context.writeAndFlush(self.wrapOutboundOut(end), promise: promise)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.lingerTimer?.cancel()
        self.lingerTimer = nil
        if let promise = self.pendingClose {
            self.pendingClose = nil
            promise.succeed()
        }
        context.fireChannelInactive()
    }
}
