import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP forwarder on 127.0.0.1 (port 0) to `127.0.0.1:targetPort`, for tests that cut connections under a
/// client and a server: ``dropAll()`` closes every forwarded connection on both sides at once (each peer sees the
/// TCP connection end, without a WebSocket close frame), and the proxy goes on accepting. ``connectDelay`` holds
/// new connections back before they are forwarded.
public final class TCPProxy: Sendable {
    private final class Core: Sendable {
        struct State {
            var channels: [any Channel] = []
            var accepted = 0
            var delay: Duration = .zero
        }

        let targetPort: Int
        let state = NIOLockedValueBox(State())

        init(targetPort: Int) { self.targetPort = targetPort }

        func accept(_ inbound: any Channel) {
            let delay = state.withLockedValue { state -> Duration in
                state.accepted += 1
                state.channels.append(inbound)
                return state.delay
            }
            let targetPort = self.targetPort
            let nanoseconds = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
            inbound.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
                ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { upstream in
                        upstream.eventLoop.makeCompletedFuture(withResultOf: {
                            try upstream.pipeline.syncOperations.addHandler(Forward(peer: inbound))
                        })
                    }
                    .connect(host: "127.0.0.1", port: targetPort)
                    .whenComplete { result in
                        switch result {
                        case .success(let upstream):
                            self.state.withLockedValue { $0.channels.append(upstream) }
                            inbound.eventLoop.execute {
                                if let forward = try? inbound.pipeline.syncOperations.handler(type: Forward.self) {
                                    forward.attach(upstream)
                                } else {
                                    upstream.close(promise: nil)
                                }
                            }
                        case .failure:
                            inbound.close(promise: nil)
                        }
                    }
            }
        }
    }

    /// Writes what one side reads to the other (holding it until the other side is attached); closes the other
    /// when this side closes.
    private final class Forward: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private var peer: (any Channel)?
        private var held: [ByteBuffer] = []
        private var closed = false

        init(peer: (any Channel)?) { self.peer = peer }

        func attach(_ peer: any Channel) {
            if closed {
                peer.close(promise: nil)
                return
            }
            self.peer = peer
            for buffer in held { peer.write(buffer, promise: nil) }
            held = []
            peer.flush()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            if let peer {
                peer.writeAndFlush(buffer, promise: nil)
            } else {
                held.append(buffer)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed = true
            peer?.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// The proxy's port on 127.0.0.1.
    public let port: Int
    private let core: Core
    private let listener: any Channel

    private init(port: Int, core: Core, listener: any Channel) {
        self.port = port
        self.core = core
        self.listener = listener
    }

    /// Starts forwarding to `127.0.0.1:targetPort`.
    public static func start(targetPort: Int) async throws -> TCPProxy {
        let core = Core(targetPort: targetPort)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture(withResultOf: {
                    try inbound.pipeline.syncOperations.addHandler(Forward(peer: nil))
                    core.accept(inbound)
                })
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TCPProxy(port: listener.localAddress?.port ?? 0, core: core, listener: listener)
    }

    /// The connections accepted so far.
    public var acceptedConnections: Int { core.state.withLockedValue { $0.accepted } }

    /// How long a new connection waits before it is forwarded. Default zero.
    public var connectDelay: Duration {
        get { core.state.withLockedValue { $0.delay } }
        set { core.state.withLockedValue { $0.delay = newValue } }
    }

    /// Closes every forwarded connection, both sides.
    public func dropAll() {
        let channels = core.state.withLockedValue { state in
            defer { state.channels = [] }
            return state.channels
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Stops listening and drops every connection.
    public func stop() async {
        dropAll()
        try? await listener.close()
    }
}
