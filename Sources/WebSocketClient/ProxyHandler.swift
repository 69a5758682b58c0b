import NIOCore
import WebSocketHandshake

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens a tunnel through a proxy before anything else speaks: the first handler of the pipeline. It holds
/// back `channelActive` from the handlers behind it (TLS, the upgrade handler), runs the sans-I/O negotiation
/// (``HTTPConnectNegotiation`` or ``SOCKS5Negotiation``), and once the tunnel is open fires `channelActive`
/// (so TLS starts its handshake with the server and the upgrade request goes out), passes on any bytes that
/// followed the proxy's answer, and removes itself.
final class ProxyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Negotiation: Sendable {
        case httpConnect(HTTPConnectNegotiation)
        case socks5(SOCKS5Negotiation)

        var initialBytes: [UInt8] {
            switch self {
            case .httpConnect(let negotiation): negotiation.request
            case .socks5(let negotiation): negotiation.greeting
            }
        }

        mutating func receive(_ bytes: ByteBufferView) throws(ProxyError) -> ProxyNegotiationStep {
            switch self {
            case .httpConnect(var negotiation):
                defer { self = .httpConnect(negotiation) }
                return try negotiation.receive(bytes)
            case .socks5(var negotiation):
                defer { self = .socks5(negotiation) }
                return try negotiation.receive(bytes)
            }
        }
    }

    private var negotiation: Negotiation
    private var isDone = false
    private let fail: @Sendable (WebSocketClientError) -> Void

    /// - Parameter fail: fails the connection attempt (called at most once).
    init(negotiation: Negotiation, fail: @escaping @Sendable (WebSocketClientError) -> Void) {
        self.negotiation = negotiation
        self.fail = fail
    }

    /// Creates the negotiation for `proxy` to reach `host:port`.
    static func negotiation(for proxy: ProxyURL, host: String, port: Int) throws(ProxyError) -> Negotiation {
        switch proxy.kind {
        case .httpConnect:
            .httpConnect(try HTTPConnectNegotiation(host: host, port: port, credentials: proxy.credentials))
        case .socks5:
            .socks5(try SOCKS5Negotiation(host: host, port: port, credentials: proxy.credentials))
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        // Not forwarded: the handlers behind see the channel become active when the tunnel is open.
        let bytes = self.negotiation.initialBytes
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.isDone else {
            context.fireChannelRead(data)
            return
        }
        var buffer = self.unwrapInboundIn(data)
        while true {
            let step: ProxyNegotiationStep
            do {
                step = try self.negotiation.receive(buffer.readableBytesView)
            } catch {
                self.isDone = true
                self.fail(.proxyFailed(error))
                context.close(promise: nil)
                return
            }
            switch step {
            case .needMoreBytes:
                return
            case .send(let bytes, let consumed):
                buffer.moveReaderIndex(forwardBy: consumed)
                context.writeAndFlush(
                    self.wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)),
                    promise: nil
                )
            case .established(let consumed):
                buffer.moveReaderIndex(forwardBy: consumed)
                self.isDone = true
                context.fireChannelActive()
                if buffer.readableBytes > 0 {
                    context.fireChannelRead(self.wrapInboundOut(buffer))
                }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.isDone {
            self.isDone = true
            self.fail(.proxyFailed(.closedBeforeReply))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.isDone {
            self.isDone = true
            self.fail(.connectFailed(error))
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}

extension ProxyEnvironment {
    /// The proxy variables of this process's environment (`http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`,
    /// each also in upper case), read now.
    public static var processEnvironment: ProxyEnvironment {
        var environment: [String: String] = [:]
        for name in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"] {
            for key in [name, name.uppercased()] {
                if let value = getenv(key) {
                    environment[key] = String(cString: value)
                }
            }
        }
        return ProxyEnvironment(environment: environment)
    }
}
