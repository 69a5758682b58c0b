import NIOCore
import WebSocketCore

/// Options of the NIO layer that drives a `WebSocketCore.Connection` on a channel.
///
/// The protocol limits (frame and message sizes, heartbeat, close timeout) live in ``connection``; the fields
/// here only concern buffering on the channel.
public struct WebSocketConfiguration: Sendable {
    /// Protocol options handed to `WebSocketCore.Connection` (limits in bytes, heartbeat and timeouts).
    public var connection: Connection.Configuration

    /// Outbound buffering bounds in bytes, applied to the channel as `ChannelOptions.writeBufferWaterMark`.
    ///
    /// When more than `high` bytes are queued for the socket the channel turns unwritable: the handler stops
    /// reading (no `read()` is forwarded), so a peer that sends faster than it reads cannot grow our outbound
    /// queue (echoes, pongs) without bound; async senders wait. Reading resumes once the queue falls below `low`.
    /// Default: low 256 KiB, high 1 MiB. A single message larger than `high` is still written whole.
    public var outboundWaterMark: ChannelOptions.Types.WriteBufferWaterMark

    /// Async API only: how many received messages may wait for the consumer of ``WebSocket/messages``
    /// before the handler stops reading from the socket. Reading resumes when the consumer has drained the
    /// queue down to half of this. Default 16 messages (each at most `connection.maxMessageLength` bytes).
    public var inboundMessageBufferLimit: Int

    /// Payloads up to this many bytes are copied into the header buffer so the frame leaves in one write;
    /// larger payloads go out as a second buffer (vectored write, no copy on the server side).
    /// Default 1024 bytes; 0 disables the merge.
    public var smallPayloadCopyLimit: Int

    /// Whether inbound bytes are handed to the core in the very buffer NIO delivered, without a copy.
    ///
    /// A `ByteBuffer` arriving in `channelRead` is still referenced by the pipeline's `NIOAny`, so
    /// `withUnsafeMutableReadableBytes` would make a copy-on-write copy of every read before the core unmasks
    /// it. With `true` (the default) the handler instead gives the core the buffer's own storage: in the
    /// server role masked payloads are unmasked in place in that storage (RFC 6455 §5.3), in the client role
    /// the core only reads it. This is safe when the WebSocket handler is the final consumer of inbound bytes
    /// (it never forwards them) and no handler in front of it keeps a reference to a buffer to read it after
    /// passing it on; NIO's own handlers, NIOSSL and the HTTP decoders do not. Set `false` for strict value
    /// semantics at the cost of one `memcpy` per read.
    public var unmasksInReceivedBuffer: Bool

    /// Creates the default configuration (see each field).
    public init(connection: Connection.Configuration = .init()) {
        self.connection = connection
        self.unmasksInReceivedBuffer = true
        self.outboundWaterMark = .init(low: 256 * 1024, high: 1024 * 1024)
        self.inboundMessageBufferLimit = 16
        self.smallPayloadCopyLimit = 1024
    }
}
