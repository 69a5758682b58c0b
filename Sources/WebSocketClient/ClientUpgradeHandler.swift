import HTTPTypes
import NIOCore
import WebSocketHandshake

/// Sends the opening request, reads the response head, validates it (RFC 6455 §4.1) and then replaces itself
/// with the WebSocket handler, handing over every byte that followed the head in the same reads.
///
/// The response head is parsed here rather than with NIOHTTP1's decoder so that no byte behind it can be
/// consumed or dropped by an HTTP state machine: frames the server sends together with its 101 reach the
/// WebSocket handler first.
final class ClientUpgradeHandler<Result: Sendable>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Installs the WebSocket handler after a valid 101: (pipeline, what was negotiated, leftover bytes).
    typealias Install = (ChannelPipeline.SynchronousOperations, NegotiatedHandshake, ByteBuffer?)
        throws -> Result

    private let handshake: ClientHandshake
    private let maxHeadLength: Int
    private let promise: EventLoopPromise<Result>
    private var install: Install?
    private var received: ByteBuffer?
    private var requestSent = false

    init(
        handshake: ClientHandshake,
        maxHeadLength: Int,
        promise: EventLoopPromise<Result>,
        install: @escaping Install
    ) {
        self.handshake = handshake
        self.maxHeadLength = maxHeadLength
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
        if var received = self.received {
            received.writeBuffer(&buffer)
            buffer = received
        }
        guard let headEnd = Self.endOfHead(in: buffer) else {
            if buffer.readableBytes > self.maxHeadLength {
                self.fail(context: context, .responseHeadTooLong)
            } else {
                self.received = buffer
            }
            return
        }
        self.received = nil
        guard headEnd - buffer.readerIndex <= self.maxHeadLength,
            let head = buffer.readString(length: headEnd - buffer.readerIndex)
        else {
            self.fail(context: context, .responseHeadTooLong)
            return
        }
        let response: HTTPResponse
        do {
            response = try Self.parseResponseHead(head)
        } catch {
            self.fail(context: context, error)
            return
        }
        let negotiated: NegotiatedHandshake
        do {
            negotiated = try self.handshake.validate(response)
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
        self.received = nil
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

    /// The index just past the blank line that ends the head, or nil when it has not arrived yet.
    private static func endOfHead(in buffer: ByteBuffer) -> Int? {
        let view = buffer.readableBytesView
        var index = view.startIndex
        while let lf = view[index...].firstIndex(of: UInt8(ascii: "\n")) {
            let next = view.index(after: lf)
            if next < view.endIndex, view[next] == UInt8(ascii: "\n") {
                return next + 1  // bare LF LF (tolerated)
            }
            if next + 1 < view.endIndex, view[next] == UInt8(ascii: "\r"),
                view[next + 1] == UInt8(ascii: "\n")
            {
                return next + 2
            }
            index = next
        }
        return nil
    }

    /// Parses `HTTP/1.1 SP status SP reason CRLF *(field CRLF) CRLF` (RFC 9112 §4, §5).
    static func parseResponseHead(_ head: String) throws(WebSocketClientError) -> HTTPResponse {
        // "\r\n" is one Character (a grapheme cluster); a bare "\n" is tolerated too.
        var lines = head.split(
            omittingEmptySubsequences: false,
            whereSeparator: { $0 == "\r\n" || $0 == "\n" }
        )
        while let last = lines.last, last.isEmpty {
            lines.removeLast()
        }
        guard let statusLine = lines.first else { throw .malformedResponse("empty response") }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0" else {
            throw .malformedResponse("bad status line '\(statusLine)'")
        }
        let codeText = parts[1]
        guard codeText.count == 3, codeText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let code = Int(codeText)
        else {
            throw .malformedResponse("bad status code '\(codeText)'")
        }
        var fields = HTTPFields()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), let first = line.first, first != " ",
                first != "\t"
            else {
                throw .malformedResponse("bad header line '\(line)'")
            }
            guard let name = HTTPField.Name(String(line[..<colon])) else {
                throw .malformedResponse("bad header name '\(line[..<colon])'")
            }
            let value = line[line.index(after: colon)...].trimmingSpacesAndTabs()
            fields.append(HTTPField(name: name, value: String(value)))
        }
        let reason = parts.count > 2 ? String(parts[2]) : ""
        return HTTPResponse(status: .init(code: code, reasonPhrase: reason), headerFields: fields)
    }
}

extension Substring {
    fileprivate func trimmingSpacesAndTabs() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" {
            result = result.dropFirst()
        }
        while let last = result.last, last == " " || last == "\t" {
            result = result.dropLast()
        }
        return result
    }
}
