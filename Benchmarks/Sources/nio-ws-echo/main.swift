import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

// The peer echo server for compare.sh, written the way SwiftNIO's own WebSocket example is: the HTTP/1.1 server
// pipeline with NIOWebSocketServerUpgrader, then a handler that echoes every data frame (unmasked, as the server
// must send it). Not our code path: it is the NIOWebSocket reference.
//
// usage: nio-ws-echo [--port 9002] [--threads N]

var port = 9002
var threads = System.coreCount
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--port": port = Int(arguments.next() ?? "") ?? port
    case "--threads": threads = Int(arguments.next() ?? "") ?? threads
    default:
        print("usage: nio-ws-echo [--port N] [--threads N]")
        exit(2)
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var awaitingClose = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            let echo = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(echo), promise: nil)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            guard !awaitingClose else { return }
            awaitingClose = true
            var payload = frame.unmaskedData
            let code = payload.readSlice(length: min(2, payload.readableBytes)) ?? ByteBuffer()
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
            context.writeAndFlush(Self.wrapOutboundOut(close)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let upgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: 16 << 20,
    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
    upgradePipelineHandler: { channel, _ in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
    }
)

let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
            )
        }
    }

let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("nio-ws-echo listening on 127.0.0.1:\(port) with \(threads) event loop threads")
try channel.closeFuture.wait()
