import CoreMetrics
import Logging
import NIOCore
import WebSocketCore

/// One message framed once, to be written to many server-side connections (fan-out).
///
/// ``frame`` holds the whole unmasked server frame (RFC 6455 §5.2: FIN, opcode, payload length, payload; a
/// server never masks, §5.1), built once; every connection without permessage-deflate gets a reference to
/// the same bytes (one `ByteBuffer` storage, never copied or mutated by the writes). A connection with
/// permessage-deflate compresses ``payload`` itself, with its own compression context (RFC 7692 §7.2.1: with
/// context takeover, the output depends on every message the connection sent before, so it cannot be shared).
public struct WebSocketSharedMessage: Sendable {
    /// Text or binary.
    public let kind: MessageKind
    /// The message's payload (UTF-8 for text).
    public let payload: ByteBuffer
    /// The encoded server frame: header then payload, unmasked.
    public let frame: ByteBuffer

    /// Frames `payload` once, as a single final frame of `kind`.
    /// - Parameter allocator: where the frame buffer is allocated.
    public init(
        kind: MessageKind, payload: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        self.kind = kind
        self.payload = payload
        let header = FrameHeader(
            fin: true,
            opcode: kind == .text ? .text : .binary,
            maskKey: nil,
            payloadLength: payload.readableBytes
        )
        var frame = allocator.buffer(capacity: header.headerLength + payload.readableBytes)
        frame.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameEncoder.maxHeaderLength) {
            storage in
            FrameEncoder.writeHeader(header, into: storage)
        }
        frame.writeImmutableBuffer(payload)
        self.frame = frame
    }
}

/// One message of ``WebSocket/send(batch:encode:)``.
public enum WebSocketBatchMessage: Sendable {
    /// A payload this connection frames (and compresses, with permessage-deflate).
    case payload(MessageKind, ByteBuffer)
    /// A message framed once for many connections: its ``WebSocketSharedMessage/frame`` is written by reference
    /// where it can be (a server connection without permessage-deflate), else its payload is framed here.
    case shared(WebSocketSharedMessage)
}

/// What became of a shared message on one connection.
public enum WebSocketSharedSendResult: Sendable, Hashable {
    /// Written (the shared frame, or compressed for this connection).
    case written
    /// The connection is closing or gone; nothing was written.
    case connectionClosed
    /// Writing it would have put more than the limit in the connection's outbound buffer: nothing was written
    /// and the closing handshake was started with the given code.
    case closedSlowConsumer
    /// The connection is sending a fragmented message of its own (RFC 6455 §5.4 forbids interleaving); nothing
    /// was written.
    case refused
}

extension WebSocketHandler {
    /// Writes a shared message (see ``WebSocketSharedMessage``), or closes the connection with `slowConsumerCode`
    /// when its outbound buffer (bytes handed to the channel and not yet taken by the socket) would exceed
    /// `maxBufferedBytes`. Over HTTP/2, where the stream channel does not report its buffered bytes, the stream
    /// counts as full as soon as it is not writable (above its high-water mark).
    func sendShared(
        _ message: WebSocketSharedMessage,
        maxBufferedBytes: Int,
        slowConsumerCode: CloseCode,
        slowConsumerReason: String
    ) -> WebSocketSharedSendResult {
        guard let context = self.context, !self.transportClosing, self.finalStatus == nil else {
            return .connectionClosed
        }
        let size = message.frame.readableBytes
        let buffered: Int
        if let bytes = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes) {
            buffered = bytes
        } else {
            buffered = context.channel.isWritable ? 0 : Int.max / 2
        }
        if buffered > 0, buffered + size > maxBufferedBytes {
            do {
                try self.close(code: slowConsumerCode, reason: slowConsumerReason)
                self.logger.debug(
                    "WebSocket closed as a slow consumer",
                    metadata: self.logMetadata(["buffered": "\(buffered)"])
                )
                return .closedSlowConsumer
            } catch {
                return .connectionClosed
            }
        }
        do {
            try self.writeSharedFrame(message, encode: true, promise: nil)
        } catch .connectionClosed {
            return .connectionClosed
        } catch {
            return .refused
        }
        self.afterSend(context: context)
        return .written
    }

    /// Writes a shared message as one of this connection's sends: on a server connection without a per-message
    /// codec its prebuilt ``WebSocketSharedMessage/frame`` by reference, after what is pending (the core's pongs,
    /// frames gathered for the same flush); otherwise its payload framed (masked, compressed) here. Does not flush:
    /// the caller ends its send (`afterSend`) or its batch. `promise` completes when the frame is written.
    /// - Throws: ``WebSocketError/connectionClosed`` when the connection is closing or closed;
    ///   ``WebSocketError/sendFailed(_:)`` when the core refuses it (inside a fragmented message of ours,
    ///   RFC 6455 §5.4).
    func writeSharedFrame(
        _ message: WebSocketSharedMessage, encode: Bool, promise: EventLoopPromise<Void>?
    ) throws(WebSocketError) {
        guard self.role == .server, !self.hasCodec else {
            // A client masks every frame with its own key; a deflate connection compresses with its own context.
            try self.sendFrame(message.kind.opcode, .buffer(message.payload), fin: true, encode: encode, promise: promise)
            return
        }
        guard let context = self.context, !self.transportClosing else {
            promise?.fail(WebSocketError.connectionClosed)
            throw .connectionClosed
        }
        do {
            // Checks the state (open, not inside a fragmented message of ours) and materializes a pending pong;
            // the header it returns is the one already in the shared frame (a server does not mask).
            _ = try self.connection.makeFrameHeader(
                message.kind.opcode, payloadLength: message.payload.readableBytes, fin: true)
        } catch .connectionClosed {
            promise?.fail(WebSocketError.connectionClosed)
            throw .connectionClosed
        } catch {
            promise?.fail(WebSocketError.sendFailed(error))
            throw .sendFailed(error)
        }
        self.countSent(message.kind.opcode, message.payload.readableBytes)
        self.writePendingOutput(context: context)
        context.write(self.wrapOutboundOut(message.frame), promise: promise)
        self.needsFlush = true
    }
}
