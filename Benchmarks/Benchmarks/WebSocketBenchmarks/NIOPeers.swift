import NIOCore
import NIOEmbedded
import NIOWebSocket

// SwiftNIO's NIOWebSocket, driven the way a NIO application drives it, as the peer measured in the same run.

/// The end of an inbound pipeline: consumes decoded frames so that nothing accumulates in the channel.
final class FrameSink: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame

    enum Work {
        /// Count the frame; its payload stays masked (what `WebSocketFrameDecoder` alone does).
        case none
        /// Read `unmaskedData`, what every NIOWebSocket application must do with a client frame (a copy).
        case unmask
        /// `unmaskedData`, then for text frames `String(validating:as:)` (NIOWebSocket does not validate
        /// UTF-8; an application that follows RFC 6455 §8.1 must).
        case unmaskAndValidate
    }

    let work: Work
    var frames = 0
    var payloadBytes = 0
    var invalid = 0

    init(_ work: Work) { self.work = work }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        frames &+= 1
        switch work {
        case .none:
            payloadBytes &+= frame.length
        case .unmask:
            payloadBytes &+= frame.unmaskedData.readableBytes
        case .unmaskAndValidate:
            let payload = frame.unmaskedData
            payloadBytes &+= payload.readableBytes
            if frame.opcode == .text {
                let valid = payload.withUnsafeReadableBytes { raw in
                    String(validating: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self) != nil
                }
                if !valid { invalid &+= 1 }
            }
        }
    }
}

/// The start of an outbound pipeline: swallows what the encoder writes, like a socket that accepts everything.
final class WriteSink: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer

    var writes = 0
    var bytes = 0

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        writes &+= 1
        bytes &+= Self.unwrapOutboundIn(data).readableBytes
        promise?.succeed()
    }
}

/// NIO's server-side inbound path: `ByteToMessageHandler(WebSocketFrameDecoder)`, optionally the frame
/// aggregator, then a `FrameSink`.
struct NIODecoderPeer {
    let channel: EmbeddedChannel
    let sink: FrameSink

    init(work: FrameSink.Work, aggregate: Bool = false) {
        let sink = FrameSink(work)
        let channel = EmbeddedChannel()
        let operations = channel.pipeline.syncOperations
        try! operations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 16 << 20)))
        if aggregate {
            try! operations.addHandler(
                NIOWebSocketFrameAggregator(
                    minNonFinalFragmentSize: 0,
                    maxAccumulatedFrameCount: 131_072,
                    maxAccumulatedFrameSize: 16 << 20
                )
            )
        }
        try! operations.addHandler(sink)
        self.channel = channel
        self.sink = sink
    }

    /// Feeds one read; returns the number of frames delivered so far.
    @discardableResult
    func receive(_ buffer: ByteBuffer) -> Int {
        try! channel.writeInbound(buffer)
        return sink.frames
    }
}

/// NIO's server-side outbound path: `WebSocketFrameEncoder` writing into a `WriteSink`.
struct NIOEncoderPeer {
    let channel: EmbeddedChannel
    let sink: WriteSink

    init() {
        let sink = WriteSink()
        let channel = EmbeddedChannel()
        let operations = channel.pipeline.syncOperations
        try! operations.addHandler(sink)
        try! operations.addHandler(WebSocketFrameEncoder())
        self.channel = channel
        self.sink = sink
    }

    func send(_ frame: WebSocketFrame) {
        channel.pipeline.syncOperations.write(NIOAny(frame), promise: nil)
    }
}
