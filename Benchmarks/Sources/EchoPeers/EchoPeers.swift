import NIOCore
import NIOWebSocket

// The echo handlers of the peer servers, in one place so that the servers `compare.sh` runs (nio-ws-echo,
// nio-tcp-echo) and the `EchoNIO` allocation benchmark measure the very same code.

/// nio-ws-echo's handler, installed behind `NIOWebSocketServerUpgrader` the way SwiftNIO's own WebSocket example
/// does: every data frame goes back unmasked (as the server must send it), pings get pongs, a close is echoed
/// (its code only) and the channel closes; everything is flushed once per read burst. Not our code path: it is
/// the NIOWebSocket reference.
public final class NIOWebSocketEchoHandler: ChannelInboundHandler {
    public typealias InboundIn = WebSocketFrame
    public typealias OutboundOut = WebSocketFrame

    public init() {}

    private var awaitingClose = false

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// nio-tcp-echo's handler, the limit of compare.sh: writes back every byte it reads, flushed once per read burst
/// (the way the WebSocket echo servers flush). No WebSocket at all.
public final class TCPEchoHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
