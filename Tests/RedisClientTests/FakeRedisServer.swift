import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RESP

/// A scripted RESP server on 127.0.0.1 (port 0): it parses each command it receives (commands are arrays of
/// bulk strings, which `RESPParser` reads) and answers with the raw bytes its script returns, so tests can send
/// what no real Redis sends: malformed RESP, huge lengths, a close in the middle of a reply.
final class FakeRedisServer: Sendable {
    enum Action: Sendable {
        /// Write these bytes.
        case reply([UInt8])
        /// Write these bytes, then close the connection.
        case replyAndClose([UInt8])
        /// Say nothing.
        case silence
    }

    let port: Int
    private let channel: any Channel
    private let received: NIOLockedValueBox<[[String]]>

    /// Every command received so far, as text.
    var commands: [[String]] { received.withLockedValue { $0 } }

    init(_ script: @escaping @Sendable ([String]) -> Action) async throws {
        let received = NIOLockedValueBox<[[String]]>([])
        self.received = received
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ScriptHandler(script: script, received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    func stop() async {
        try? await channel.close()
    }

    private final class ScriptHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let script: @Sendable ([String]) -> Action
        let received: NIOLockedValueBox<[[String]]>
        var parser = RESPParser()

        init(script: @escaping @Sendable ([String]) -> Action, received: NIOLockedValueBox<[[String]]>) {
            self.script = script
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            guard let commands = try? parser.parse(buffer.readableBytesView) else {
                context.close(promise: nil)
                return
            }
            for command in commands {
                let words = (command.elements ?? []).map { $0.string ?? "" }
                received.withLockedValue { $0.append(words) }
                switch script(words) {
                case .reply(let bytes):
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                case .replyAndClose(let bytes):
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                    context.close(promise: nil)
                    return
                case .silence:
                    break
                }
            }
        }
    }
}
