import Logging
import NIOCore
import WebSocketCore

/// Options of the NIO layer that drives a `WebSocketCore.Connection` on a channel.
///
/// The protocol limits (frame and message lengths, heartbeat, close timeout) live in ``connection``; the fields
/// here concern buffering on the channel, logging and metrics.
public struct WebSocketConfiguration: Sendable {
    /// Protocol options handed to `WebSocketCore.Connection` (limits in bytes, heartbeat and timeouts).
    public var connection: Connection.Configuration

    /// Outbound buffering bounds in bytes, applied to the channel as `ChannelOptions.writeBufferWaterMark`.
    ///
    /// When more than `high` bytes are queued for the socket the channel turns unwritable: the handler stops
    /// reading (no `read()` is forwarded), so a peer that sends faster than it reads cannot grow our outbound
    /// queue (echoes, pongs) without bound; async senders wait, and delegates are told through
    /// ``WebSocketDelegate/webSocket(_:writabilityChanged:)``. Reading resumes once the queue falls below
    /// `low`. Default: low 256 KiB, high 1 MiB. A single message larger than `high` is still written whole.
    public var outboundWaterMark: ChannelOptions.Types.WriteBufferWaterMark

    /// Async API only: how many received messages may wait for the consumer of ``WebSocket/messages``
    /// before the handler stops reading from the socket. Reading resumes when the consumer has drained the
    /// queue down to half of this. Default 16 messages (each at most `connection.maxMessageLength` bytes).
    ///
    /// While reading is paused for the consumer the heartbeat does not judge the peer (our pause is not the
    /// peer's silence), and starting the close handshake resumes reading so the peer's close frame is seen.
    /// A pause because the channel is unwritable does count: a peer that reads nothing of what we send for
    /// `pingInterval + pongTimeout` is dropped like a silent one.
    /// A task that only sends calls ``WebSocket/discardInboundMessages()`` so that reading never pauses. Once
    /// the close handshake has started, reading cannot pause, so messages that arrive while the consumer is over
    /// this limit are dropped rather than queued without bound.
    public var inboundMessageBufferLimit: Int

    /// Payloads up to this many bytes are copied into the header buffer so the frame leaves in one write;
    /// larger payloads go out as a second buffer (vectored write, no copy on the server side).
    /// Default 1024 bytes; 0 disables the merge.
    public var smallPayloadCopyLimit: Int

    /// Whether inbound bytes are handed to the core in the very buffer NIO delivered, without a copy.
    ///
    /// A `ByteBuffer` arriving in `channelRead` is still referenced by the pipeline's `NIOAny`, so
    /// `withUnsafeMutableReadableBytes` makes a copy-on-write copy of every read before the core unmasks it:
    /// that is the default (`false`), strict value semantics at the cost of one `memcpy` per read (measured in
    /// BENCHMARKS.md). With `true` the handler instead gives the core the buffer's own storage: in the server
    /// role masked payloads are unmasked in place in that storage (RFC 6455 §5.3), in the client role the core
    /// only reads it. Turn it on only when the WebSocket handler is the final consumer of inbound bytes and no
    /// handler in front of it keeps a reference to a buffer to read it after passing it on (NIO's own handlers,
    /// NIOSSL and the HTTP decoders do not). `ws-echo` turns it on.
    public var unmasksInReceivedBuffer: Bool

    /// Where the connection logs: failures at `info` (close code, reason, peer address), the rest at `debug`
    /// and `trace`. Default: a logger labelled `websocket` (swift-log's bootstrapped backend).
    public var logger: Logger

    /// The path of the route that accepted the connection, named in the connection's log messages beside the
    /// peer address (set by the server; `nil` names none). Kept apart from ``logger``'s metadata so that an idle
    /// connection does not hold its own copy of the logger.
    package var routePath: String?

    /// Where the connection reports its counters; `nil` (the default) reports nothing. The server sets it
    /// from its configuration's metrics factory.
    public var metrics: WebSocketMetrics?

    /// Creates the default configuration (see each field).
    public init(connection: Connection.Configuration = .init()) {
        self.connection = connection
        self.unmasksInReceivedBuffer = false
        self.outboundWaterMark = .init(low: 256 * 1024, high: 1024 * 1024)
        self.inboundMessageBufferLimit = 16
        self.smallPayloadCopyLimit = 1024
        self.logger = Logger(label: "websocket")
        self.metrics = nil
        self.routePath = nil
    }
}

extension TimeAmount {
    /// `duration` as a NIO `TimeAmount`, saturating at `Int64.max` nanoseconds (about 292 years) and at zero
    /// for negative durations, so that a configured `.seconds(Int64.max)` means "never" instead of a trap.
    package init(saturating duration: Duration) {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) {
            self = .nanoseconds(0)
            return
        }
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow {
            self = .nanoseconds(.max)
            return
        }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        self = .nanoseconds(overflow2 ? .max : sum)
    }
}
