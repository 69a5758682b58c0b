import HTTPTypes
import NIOCore
import WebSocketHandshake

/// Sends the opening request, reads the response head, validates it (RFC 6455 §4.1) and then replaces itself
/// with the WebSocket handler, handing over every byte that followed the head in the same reads.
///
/// The response head is parsed with WebSocketHandshake's sans-I/O ``HTTPResponseHeadParser`` rather than with
/// NIOHTTP1's decoder, so that no byte behind it can be consumed or dropped by an HTTP state machine: frames the
/// server sends together with its 101 reach the WebSocket handler first.
final class ClientUpgradeHandler<Result: Sendable>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Installs the WebSocket handler after a valid 101: (pipeline, what was negotiated, leftover bytes).
    typealias Install = (ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?)
        throws -> Result

    private let handshake: ClientHandshake
    private var parser: HTTPResponseHeadParser
    private let promise: EventLoopPromise<Result>
    private var install: Install?
    private var requestSent = false

    init(
        handshake: ClientHandshake,
        maxHeadLength: Int,
        promise: EventLoopPromise<Result>,
        install: @escaping Install
    ) {
        self.handshake = handshake
        self.parser = HTTPResponseHeadParser(limits: .init(maxHeadLength: maxHeadLength))
        self.promise = promise
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            self.sendRequest(context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.sendRequest(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.install != nil else { return }
        var buffer = self.unwrapInboundIn(data)
        let head: HTTPResponseHead
        do {
            // The parser keeps what it needs of a partial head; the bytes after a complete one stay in `buffer`.
            guard case .complete(let parsed, let consumed) = try self.parser.parse(buffer.readableBytesView) else {
                return
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            head = parsed
        } catch {
            self.fail(context: context, error == .headTooLong ? .responseHeadTooLong : .malformedResponse("\(error)"))
            return
        }
        let response = head.response
        let negotiated: NegotiatedHandshake
        do {
            negotiated = try self.handshake.validate(head)
        } catch {
            self.fail(context: context, .rejected(error, response: response))
            return
        }
        guard let install = self.install else { return }
        self.install = nil
        do {
            let leftover = buffer.readableBytes > 0 ? buffer : nil
            // Leave the pipeline first (synchronously): later reads must go to the WebSocket handler.
            let pipeline = context.pipeline
            pipeline.syncOperations.removeHandler(context: context, promise: nil)
            let result = try install(pipeline.syncOperations, negotiated, leftover)
            self.promise.succeed(result)
        } catch let error as WebSocketClientError {
            self.promise.fail(error)
            context.close(promise: nil)
        } catch {
            self.promise.fail(WebSocketClientError.closedDuringHandshake(error))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.install != nil {
            self.install = nil
            self.promise.fail(WebSocketClientError.closedDuringHandshake(nil))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.install != nil {
            self.install = nil
            self.promise.fail(WebSocketClientError.closedDuringHandshake(error))
        }
        context.close(promise: nil)
    }

    private func fail(context: ChannelHandlerContext, _ error: WebSocketClientError) {
        guard self.install != nil else { return }
        self.install = nil
        self.promise.fail(error)
        context.close(promise: nil)
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard !self.requestSent else { return }
        self.requestSent = true
        let request = self.handshake.request
        var head = "GET \(request.path ?? "/") HTTP/1.1\r\n"
        if let authority = request.authority {
            head += "Host: \(authority)\r\n"
        }
        for field in request.headerFields {
            head += "\(field.name.rawName): \(field.value)\r\n"
        }
        head += "\r\n"
        context.writeAndFlush(
            self.wrapOutboundOut(context.channel.allocator.buffer(string: head)),
            promise: nil
        )
    }
}
