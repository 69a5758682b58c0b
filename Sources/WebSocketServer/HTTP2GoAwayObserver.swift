import NIOCore

/// Tells whether NIOHTTP2 has written a GOAWAY carrying an error code, so that the connection can be closed.
///
/// RFC 9113 §5.4.1: after sending the GOAWAY of a connection error, the endpoint MUST close the TCP connection.
/// NIOHTTP2 writes that GOAWAY and then reports the error, but it reports stream errors (which leave the
/// connection up) the same way, so the error alone does not tell. The frame does: this handler sits between
/// the transport (socket or TLS) and `NIOHTTP2Handler`, follows the frame boundaries of the outbound bytes
/// (RFC 9113 §4.1: 9-byte header, 24-bit length) and notes a GOAWAY (type 0x7) whose error code is not
/// NO_ERROR (0x0); ``HTTP2ConnectionErrorHandler`` closes the connection on the error that follows. A graceful
/// GOAWAY (NO_ERROR: shutdown, idle timeout) is not noted. Bytes pass through untouched; it keeps at most 9
/// header bytes and 8 GOAWAY payload bytes.
final class HTTP2GoAwayObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The header of the frame being written, while incomplete.
    private var header: [UInt8] = {
        var header: [UInt8] = []
        header.reserveCapacity(9)
        return header
    }()
    /// Payload bytes of the current frame still to pass.
    private var payloadLeft = 0
    /// The first 8 payload bytes of a GOAWAY being written (last stream ID, error code), nil for other frames.
    private var goAway: [UInt8]?

    /// Whether a GOAWAY with an error code has been seen in the bytes observed so far.
    private(set) var sawErrorGoAway = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        observe(unwrapOutboundIn(data).readableBytesView)
        context.write(data, promise: promise)
    }

    /// Follows the frame boundaries through `bytes`.
    func observe(_ bytes: ByteBufferView) {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if payloadLeft > 0 {
                let count = min(payloadLeft, bytes.endIndex - index)
                if var collected = goAway, collected.count < 8 {
                    let take = min(8 - collected.count, count)
                    collected.append(contentsOf: bytes[index..<(index + take)])
                    goAway = collected
                    if collected.count == 8 {
                        let code = collected[4...7].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                        if code != 0 { sawErrorGoAway = true }
                    }
                }
                payloadLeft -= count
                index += count
                continue
            }
            header.append(bytes[index])
            index += 1
            if header.count == 9 {
                payloadLeft = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
                goAway = header[3] == 0x7 ? [] : nil
                header.removeAll(keepingCapacity: true)  // no allocation per frame on the write path
            }
        }
    }
}
