import NIOCore
import NIOHTTP1

/// The inbound end of one connection, read on demand: once the response head has arrived (after the TLS
/// handshake, which needs reads of its own) the channel's `autoRead` is turned off and each ``next()`` that finds
/// nothing buffered asks for one read, so a consumer that stops pulling stops the reads (TCP flow control then
/// holds the server back) and at most about one read's parts are ever buffered.
final class ResponseReader: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    enum Part {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
        /// The response ended or the connection closed.
        case end
        case failure(any Error)
    }

    private var context: ChannelHandlerContext?
    private var parts = CircularBuffer<Part>()
    private var waiter: EventLoopPromise<Part>?
    private var isDone = false
    private var sawHead = false
    private let headTimeout: TimeAmount
    private var timer: Scheduled<Void>?

    /// - Parameter headTimeout: the connection is closed when no response head arrived in this time.
    init(headTimeout: TimeAmount) {
        self.headTimeout = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: headTimeout) { [weak self] in
            guard let self, !self.sawHead else { return }
            self.deliver(.failure(ResponseTimeout()))
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            sawHead = true
            timer?.cancel()
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
            deliver(.head(head))
        case .body(let bytes): deliver(.body(bytes))
        case .end:
            deliver(.end)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deliver(.end)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        deliver(.failure(error))
        context.close(promise: nil)
    }

    private func deliver(_ part: Part) {
        guard !isDone else { return }
        switch part {
        case .end, .failure: isDone = true
        case .head, .body: break
        }
        if let waiter {
            self.waiter = nil
            waiter.succeed(part)
        } else {
            parts.append(part)
        }
    }

    /// The next part (on the event loop).
    func next(eventLoop: any EventLoop) -> EventLoopFuture<Part> {
        if let part = parts.popFirst() { return eventLoop.makeSucceededFuture(part) }
        if isDone { return eventLoop.makeSucceededFuture(.end) }
        let promise = eventLoop.makePromise(of: Part.self)
        waiter = promise
        context?.read()
        return promise.futureResult
    }
}

/// No response head within the connect timeout.
struct ResponseTimeout: Error, CustomStringConvertible {
    var description: String { "no response head in time" }
}
