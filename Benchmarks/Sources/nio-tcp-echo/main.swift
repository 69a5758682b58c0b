import EchoPeers
import NIOCore
import NIOPosix

// The limit for compare.sh: a plain TCP echo server on SwiftNIO, no WebSocket at all. It writes back every byte it
// reads (ws-bench --raw sends 4-byte length-prefixed messages and verifies them), flushing once per read burst, the
// same way the WebSocket echo servers flush.
//
// usage: nio-tcp-echo [--port 9003] [--threads N]

var port = 9003
var threads = System.coreCount
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--port": port = Int(arguments.next() ?? "") ?? port
    case "--threads": threads = Int(arguments.next() ?? "") ?? threads
    default:
        print("usage: nio-tcp-echo [--port N] [--threads N]")
        exit(2)
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(TCPEchoHandler())
        }
    }

let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("nio-tcp-echo listening on 127.0.0.1:\(port) with \(threads) event loop threads")
try channel.closeFuture.wait()
