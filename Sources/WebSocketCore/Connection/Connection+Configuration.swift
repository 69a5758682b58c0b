extension Connection {
    /// Limits, timers and leniency switches. Every field documents its unit and default. Negative lengths and
    /// durations count as zero; `Int.max` lengths and very long durations mean "no limit" and never trap.
    public struct Configuration: Sendable, Hashable {
        /// The largest frame payload accepted, in bytes; checked from the frame header before any payload is
        /// buffered. Larger frames fail the connection with 1009. Default: 16 MiB (16 777 216).
        public var maxFramePayloadLength: Int = 16 << 20
        /// The largest message accepted, in bytes (all fragments together); checked from each frame header
        /// before its payload is buffered. Larger messages fail the connection with 1009. This also bounds the
        /// memory a reassembled message can take. Default: 16 MiB.
        public var maxMessageLength: Int = 16 << 20
        /// The most frames one message may have. Bounds the work a peer can cause with many tiny or empty
        /// fragments; more fail the connection with 1009. Default: 131 072 (a 4 MiB message in 64-byte
        /// fragments needs 65 536).
        public var maxFragmentsPerMessage: Int = 131_072
        /// Whether data is delivered as whole messages or as it arrives. Default: ``MessageDelivery/wholeMessages``.
        public var delivery: MessageDelivery = .wholeMessages
        /// Answer every ping with a pong carrying the same payload (RFC 6455 §5.5.2). While a pong is still
        /// unsent, a newer ping's pong replaces it, so a ping flood cannot grow the output queue. Default: `true`.
        public var autoPong: Bool = true
        /// Accept payload lengths not encoded in the minimal number of bytes, which RFC 6455 §5.2 forbids.
        /// Default: `false` (strict).
        public var allowsNonMinimalLengths: Bool = false
        /// The reserved bits negotiated extensions claim (RFC 6455 §9). Default: none.
        public var claimedReservedBits: ReservedBits = []
        /// Idle time after which we send a ping: when nothing has arrived for this long, a ping goes out.
        /// Idleness is measured at ``Connection/tick(now:)`` granularity. `nil` disables the heartbeat.
        /// Default: `nil`.
        public var pingInterval: Duration? = nil
        /// After our heartbeat ping, how long to wait for the pong or any other traffic before the peer is
        /// declared dead: we then send close 1011 and close the transport, reporting 1006 (abnormal closure).
        /// Default: 20 seconds.
        public var pongTimeout: Duration = .seconds(20)
        /// How long to wait for the peer's close frame after sending ours, and (client role) for the server to
        /// close TCP after the close handshake (RFC 6455 §7.1.1); then the transport is closed. Default: 10 s.
        public var closeTimeout: Duration = .seconds(10)

        public init() {}
    }

    /// How data messages are delivered.
    public enum MessageDelivery: Sendable, Hashable {
        /// One ``Event/message(_:_:)`` per message, reassembled (copied once) when it arrived in several
        /// frames or reads.
        case wholeMessages
        /// ``Event/fragment(_:_:isFirst:isFinal:)`` events carrying payload as it arrives, never copied. Text
        /// chunks may end inside a code point; the message as a whole is still validated (fail-fast).
        case streaming
    }
}

extension Connection.Configuration {
    /// ``maxMessageLength`` as a limit in bytes, `>= 0`.
    var messageLimit: Int { max(0, maxMessageLength) }

    /// ``maxFramePayloadLength`` as a limit in bytes, `>= 0`.
    var frameLimit: Int { max(0, maxFramePayloadLength) }

    /// The most encoded bytes a message may take on the wire when an extension encodes it: the message limit
    /// plus room for the encoding's worst-case growth on incompressible data (DEFLATE's stored blocks add 5 bytes
    /// per 65 535), so that a message that is within the limit once decoded is never refused for its encoding.
    var encodedMessageLimit: Int { Self.withEncodingGrowth(messageLimit) }

    /// `limit` plus the worst-case growth of an encoding (1/256 + 64 bytes, above DEFLATE's 5 bytes per 65 535),
    /// saturating at `Int.max`.
    static func withEncodingGrowth(_ limit: Int) -> Int {
        let limit = max(0, limit)
        let (sum, overflow) = limit.addingReportingOverflow(limit / 256 + 64)
        return overflow ? .max : sum
    }

    /// The rules the frame parser enforces for a connection of `role`. With a codec, frames may exceed the
    /// frame limit by the encoding's growth; the connection checks unencoded frames against the exact limit.
    func parserConfiguration(role: Role, codec: Bool) -> FrameParser.Configuration {
        FrameParser.Configuration(
            role: role,
            maxFramePayloadLength: codec
                ? min(Self.withEncodingGrowth(frameLimit), encodedMessageLimit)
                : min(frameLimit, messageLimit),
            allowsNonMinimalLengths: allowsNonMinimalLengths,
            claimedReservedBits: codec ? claimedReservedBits.union(.rsv1) : claimedReservedBits
        )
    }
}
