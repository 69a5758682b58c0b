import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketCore
import WebSocketHandshake
import WebSocketNIO

/// A stand-in HTTP/1.1 upgrade server used until `WebSocketServer` exists: reads one request head, validates
/// it with `WebSocketHandshake.UpgradeRequest`, answers 101 (or the error status) and installs the WebSocket
/// handler with the bytes that followed the head.
final class MinimalUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: WebSocketConfiguration
    private let registry: WebSocketConnectionRegistry
    private let makeDelegate: () -> any WebSocketDelegate
    private var received: ByteBuffer?
    private var done = false

    init(
        configuration: WebSocketConfiguration,
        registry: WebSocketConnectionRegistry,
        makeDelegate: @escaping () -> any WebSocketDelegate
    ) {
        self.configuration = configuration
        self.registry = registry
        self.makeDelegate = makeDelegate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.done else { return }
        var buffer = self.unwrapInboundIn(data)
        if var received = self.received {
            received.writeBuffer(&buffer)
            buffer = received
        }
        let view = buffer.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            if buffer.readableBytes > 16 * 1024 {
                self.reject(context: context, status: .badRequest, fields: [:])
            } else {
                self.received = buffer
            }
            return
        }
        self.received = nil
        self.done = true
        let headLength = end.upperBound - view.startIndex
        guard let head = buffer.readString(length: headLength), let (request, version) = Self.parse(head) else {
            self.reject(context: context, status: .badRequest, fields: [:])
            return
        }
        let upgrade: UpgradeRequest
        let response: HTTPResponse
        do {
            upgrade = try UpgradeRequest(validating: request, httpVersion: version)
            response = try upgrade.makeResponse()
        } catch {
            var fields = HTTPFields()
            if error == .unsupportedVersion { fields[.secWebSocketVersion] = "13" }
            self.reject(context: context, status: error.status, fields: fields)
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(Self.serialize(response, allocator: context.channel.allocator)), promise: nil)
        let pipeline = context.pipeline
        pipeline.syncOperations.removeHandler(context: context, promise: nil)
        do {
            try pipeline.syncOperations.addWebSocketHandler(
                role: .server,
                configuration: self.configuration,
                leftoverBytes: buffer,
                registry: self.registry,
                delegate: self.makeDelegate()
            )
        } catch {
            context.close(promise: nil)
        }
    }

    private func reject(context: ChannelHandlerContext, status: HTTPResponse.Status, fields: HTTPFields) {
        self.done = true
        var fields = fields
        fields[.contentLength] = "0"
        fields[.connection] = "close"
        let response = HTTPResponse(status: status, headerFields: fields)
        context.writeAndFlush(self.wrapOutboundOut(Self.serialize(response, allocator: context.channel.allocator)))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private static func serialize(_ response: HTTPResponse, allocator: ByteBufferAllocator) -> ByteBuffer {
        var text = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
        for field in response.headerFields {
            text += "\(field.name.rawName): \(field.value)\r\n"
        }
        text += "\r\n"
        return allocator.buffer(string: text)
    }

    private static func parse(_ head: String) -> (HTTPRequest, HTTPProtocolVersion)? {
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: true)
        guard let requestLine = lines.first else { return nil }
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, let method = HTTPRequest.Method(String(parts[0])) else { return nil }
        let version: HTTPProtocolVersion
        switch parts[2] {
        case "HTTP/1.1": version = .init(major: 1, minor: 1)
        case "HTTP/1.0": version = .init(major: 1, minor: 0)
        default: return nil
        }
        var fields = HTTPFields()
        var authority: String?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<colon])) else {
                return nil
            }
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            if name.canonicalName == "host" {
                authority = value
            } else {
                fields.append(HTTPField(name: name, value: value))
            }
        }
        let request = HTTPRequest(
            method: method,
            scheme: nil,
            authority: authority,
            path: String(parts[1]),
            headerFields: fields
        )
        return (request, version)
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
