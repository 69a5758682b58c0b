import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A minimal HTTP CONNECT proxy for tests: it records the target each `CONNECT` names, then tunnels the
/// connection to 127.0.0.1:`target` whatever host was named (so a test can use host names that do not
/// resolve, e.g. to check SNI through the tunnel).
final class TunnelProxy: Sendable {
    private let channel: any Channel
    private let targets: NIOLockedValueBox<[String]>

    var port: Int { self.channel.localAddress?.port ?? 0 }
    /// The `host:port` of every `CONNECT`, in order.
    var requestedTargets: [String] { self.targets.withLockedValue { $0 } }

    private init(channel: any Channel, targets: NIOLockedValueBox<[String]>) {
        self.channel = channel
        self.targets = targets
    }

    static func start(target: Int) async throws -> TunnelProxy {
        let targets = NIOLockedValueBox<[String]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectHandler(targetPort: target, targets: targets)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TunnelProxy(channel: channel, targets: targets)
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// Reads the CONNECT head, connects to the target, answers 200, then relays bytes both ways.
    private final class ConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let targetPort: Int
        let targets: NIOLockedValueBox<[String]>
        var head: [UInt8] = []
        var pending: [ByteBuffer] = []
        var upstream: (any Channel)?

        init(targetPort: Int, targets: NIOLockedValueBox<[String]>) {
            self.targetPort = targetPort
            self.targets = targets
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = self.unwrapInboundIn(data)
            if let upstream {
                upstream.writeAndFlush(buffer, promise: nil)
                return
            }
            if !self.pending.isEmpty || self.head.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                self.pending.append(buffer)
                return
            }
            while let byte = buffer.readInteger(as: UInt8.self) {
                self.head.append(byte)
                if self.head.suffix(4).elementsEqual("\r\n\r\n".utf8) { break }
            }
            guard self.head.suffix(4).elementsEqual("\r\n\r\n".utf8) else { return }
            if buffer.readableBytes > 0 { self.pending.append(buffer) }
            let line = String(decoding: self.head.prefix(while: { $0 != 13 }), as: UTF8.self)
            let parts = line.split(separator: " ")
            if parts.count == 3, parts[0] == "CONNECT" {
                self.targets.withLockedValue { $0.append(String(parts[1])) }
            }
            let downstream = context.channel
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            ClientBootstrap(group: context.eventLoop)
                .channelInitializer { upstream in
                    upstream.eventLoop.makeCompletedFuture {
                        try upstream.pipeline.syncOperations.addHandler(Relay(partner: downstream))
                    }
                }
                .connect(host: "127.0.0.1", port: self.targetPort)
                .hop(to: context.eventLoop)
                .whenComplete { result in
                    let handler = loopBound.value
                    let context = contextBound.value
                    switch result {
                    case .success(let upstream):
                        handler.upstream = upstream
                        context.writeAndFlush(
                            handler.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")),
                            promise: nil
                        )
                        for buffer in handler.pending { upstream.writeAndFlush(buffer, promise: nil) }
                        handler.pending = []
                    case .failure:
                        context.writeAndFlush(
                            handler.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 502 Bad Gateway\r\n\r\n")),
                            promise: nil
                        )
                        context.close(promise: nil)
                    }
                }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.upstream?.close(promise: nil)
            context.fireChannelInactive()
        }
    }

    /// Writes what it reads to `partner`; closes `partner` when its own channel closes.
    private final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        let partner: any Channel

        init(partner: any Channel) {
            self.partner = partner
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.partner.writeAndFlush(self.unwrapInboundIn(data), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.partner.close(promise: nil)
            context.fireChannelInactive()
        }
    }
}
