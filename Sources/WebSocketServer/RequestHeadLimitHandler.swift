import NIOCore

/// Counts the bytes of a request head in front of the HTTP decoder, so that a head larger than the limit
/// (request line included, which the decoder's own field limits do not cover) is refused with 431.
///
/// The ``HTTPUpgradeHandler`` behind the decoder calls ``headReceived()`` when the decoder has produced the
/// head; from then on bytes are only passed through.
final class RequestHeadLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Fired inbound when the head grew past the limit.
    struct RequestHeadTooLarge: Error {}

    private let limit: Int
    private var count = 0
    private var isHeadComplete = false
    private var hasFailed = false

    init(limit: Int) {
        self.limit = limit
    }

    func headReceived() {
        isHeadComplete = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !hasFailed else { return }
        if !isHeadComplete {
            count += unwrapInboundIn(data).readableBytes
        }
        context.fireChannelRead(data)
        // The decoder has parsed this read: if it still has no complete head, the head is at least `count`
        // bytes long.
        if !isHeadComplete, count > limit {
            hasFailed = true
            context.fireErrorCaught(RequestHeadTooLarge())
        }
    }
}
