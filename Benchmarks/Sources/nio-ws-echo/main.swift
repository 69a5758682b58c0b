import EchoPeers
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

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let upgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: 16 << 20,
    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
    upgradePipelineHandler: { channel, _ in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOWebSocketEchoHandler())
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
