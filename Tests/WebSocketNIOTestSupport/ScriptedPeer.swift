import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import WebSocketHandshake
import WebSocketTestSupport

/// A raw TCP peer that plays a scripted server: it reads the client's request head, then writes whatever
/// `respond` returns for the request's `Sec-WebSocket-Key` (a 101 plus frames, a bad answer...), and then
/// stays silent: it never reads a frame nor answers a ping. Records what it received after the head.
public final class ScriptedPeer: Sendable {
    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let respond: @Sendable (_ key: String, _ head: HTTPHead) -> [UInt8]
        let closeAfterResponse: Bool
        let state = NIOLockedValueBox<(head: [UInt8], answered: Bool, after: [UInt8])>(([], false, []))

        init(closeAfterResponse: Bool, respond: @escaping @Sendable (String, HTTPHead) -> [UInt8]) {
            self.closeAfterResponse = closeAfterResponse
            self.respond = respond
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(self.unwrapInboundIn(data).readableBytesView)
            let reply: [UInt8]? = self.state.withLockedValue { state in
                if state.answered {
                    state.after += bytes
                    return nil
                }
                state.head += bytes
                guard let head = HTTPHead(state.head) else { return nil }
                state.answered = true
                state.after = head.rest
                return self.respond(head.header("Sec-WebSocket-Key") ?? "", head)
            }
            if let reply, !reply.isEmpty {
                let written = context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: reply)))
                if self.closeAfterResponse {
                    written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                }
            }
        }
    }

    private let channel: any Channel
    private let handlers: NIOLockedValueBox<[Handler]>

    public var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Bytes the client sent after its request head, over all connections.
    public var receivedAfterHead: [UInt8] {
        self.handlers.withLockedValue { $0.flatMap { $0.state.withLockedValue { $0.after } } }
    }

    /// The frames the client sent after its request head (complete ones, unmasked).
    public var framesReceived: [RawFrame] { RawFrame.parseAll(self.receivedAfterHead) }

    private init(channel: any Channel, handlers: NIOLockedValueBox<[Handler]>) {
        self.channel = channel
        self.handlers = handlers
    }

    public static func start(
        closeAfterResponse: Bool = false,
        respond: @escaping @Sendable (_ key: String, _ head: HTTPHead) -> [UInt8]
    ) async throws -> ScriptedPeer {
        let handlers = NIOLockedValueBox<[Handler]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let handler = Handler(closeAfterResponse: closeAfterResponse, respond: respond)
                handlers.withLockedValue { $0.append(handler) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ScriptedPeer(channel: channel, handlers: handlers)
    }

    /// A valid 101 for `key`, with extra header lines.
    public static func switchingProtocols(key: String, extraHeaders: String = "") -> [UInt8] {
        Array(
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(OpeningHandshake.acceptValue(forKey: key))\r\n\(extraHeaders)\r\n")
                .utf8
        )
    }

    public func stop() async {
        try? await self.channel.close()
    }
}
