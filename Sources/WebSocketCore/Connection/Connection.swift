/// The WebSocket protocol state machine for one connection, client or server (RFC 6455 §5-§8), without I/O.
///
/// Bytes in: ``receive(_:)`` parses frames from a buffer the caller owns, unmasks them in place, reassembles
/// messages, validates UTF-8 as it arrives, and returns one ``Event`` at a time. Bytes out: automatic pongs,
/// close frames and copied sends accumulate in an output queue that the caller drains with
/// ``withPendingOutput(_:)``; large payloads can bypass the queue with ``makeFrameHeader(_:payloadLength:fin:)``.
/// Time: the caller calls ``tick(now:)`` at ``nextDeadline`` with its own monotonic clock; the connection
/// starts no timer or thread. Closing: ``shouldCloseTransport`` tells the caller when to close TCP.
///
/// ## Ownership of borrowed payloads
/// Payloads in events are `UnsafeRawBufferPointer`s that point either into the buffer passed to ``receive(_:)``
/// (zero-copy: a message that arrived as one frame in one buffer) or into storage owned by the connection (a
/// message reassembled from several frames or reads: copied once). Either way they are valid only until the
/// next call to any mutating method of the connection, and while the caller's buffer is alive and unchanged.
/// Copy what you keep.
///
/// ## Value semantics
/// `Connection` is a struct that owns reference-typed buffers: do not keep two copies of one connection and use
/// both. Store it in one place (a channel handler, an actor) and mutate it there.
public struct Connection {
    /// Limits, timers and leniency switches. Every field documents its unit and default.
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

    /// What ``receive(_:)`` found. Payloads are borrowed: see "Ownership of borrowed payloads".
    public enum Event {
        /// A complete text (validated UTF-8) or binary message (``MessageDelivery/wholeMessages`` mode).
        case message(MessageKind, UnsafeRawBufferPointer)
        /// Part of a message (``MessageDelivery/streaming`` mode). `isFirst` marks the first event of a
        /// message and `isFinal` its last; a message of one empty frame is one event with both set.
        case fragment(MessageKind, UnsafeRawBufferPointer, isFirst: Bool, isFinal: Bool)
        /// A ping with its payload (0-125 bytes). With ``Configuration/autoPong`` its pong is already queued.
        case ping(UnsafeRawBufferPointer)
        /// A pong with its payload (0-125 bytes), solicited or not (RFC 6455 §5.5.3).
        case pong(UnsafeRawBufferPointer)
        /// The peer's close frame. Its code is 1005 when the frame carried none. If we had not sent a close
        /// frame, the echo is already queued (RFC 6455 §5.5.1). Nothing more is received after it.
        case close(CloseStatus)
    }

    /// The close handshake's progress (RFC 6455 §7).
    public enum State: Sendable, Hashable {
        /// Data may flow both ways.
        case open
        /// We sent a close frame and wait for the peer's.
        case closing
        /// The close handshake completed, the connection failed, or the transport ended.
        case closed
    }

    /// The role of this endpoint.
    public let role: Role
    /// The configuration in force.
    public private(set) var configuration: Configuration

    private var parser: FrameParser
    private var maskKeys: any MaskKeyGenerator
    /// The negotiated per-message extension (e.g. permessage-deflate), if any.
    public private(set) var codec: (any MessageCodec)?
    /// Whether the codec owns RSV1 (computed once: reading the existential per frame costs a copy).
    private let rsv1ClaimedByCodec: Bool

    // Inbound message in progress.
    private var inbound: MessageKind? = nil
    private var inboundLength = 0
    private var inboundFragments = 0
    private var inboundFirstChunkPending = false
    private var inboundEncoded = false
    private var decodedLength = 0
    private var validator = UTF8Validator()
    private var currentFrame: FrameHeader? = nil
    private let reassembly: ByteStorage
    private let controlPayload = ByteStorage(maxCapacity: 128)
    private var releaseOnNextCall = false

    // Outbound.
    private let output = ByteStorage()
    private let pongSlot = ByteStorage(maxCapacity: 128)
    private var hasPendingPong = false
    private var outboundMessageInProgress = false

    // Closing.
    /// The close handshake's progress.
    public private(set) var state: State = .open
    private var closeSent = false
    private var closeReceived = false
    private var failed = false
    private var transportEnded = false
    /// How the connection ended, once known: the peer's close status, the error we failed it with, or 1006
    /// (abnormal closure) when it ended without a close frame.
    public private(set) var closeStatus: CloseStatus? = nil
    /// `true` when the caller should write any pending output and then close the TCP connection: after a
    /// failure, after a completed close handshake on the server (the server closes TCP first, RFC 6455 §7.1.1),
    /// when the peer closed TCP, or when a timeout expired.
    public private(set) var shouldCloseTransport = false

    // Time.
    private var lastNow: Instant? = nil
    var activity = false
    private var lastActivity: Instant? = nil
    private var pingSentAt: Instant? = nil
    private var closeDeadline: Instant? = nil
    private var transportCloseDeadline: Instant? = nil
    private var pingCounter: UInt32 = 0

    private static let retainedCapacity = 64 << 10

    /// Creates a connection in the open state, right after the opening handshake.
    ///
    /// - Parameters:
    ///   - role: our role; it decides masking in both directions (RFC 6455 §5.1).
    ///   - configuration: limits and timers.
    ///   - maskKeyGenerator: where masking keys for our frames come from (client role only).
    ///   - codec: the negotiated per-message extension, if any (e.g. permessage-deflate); it claims RSV1.
    public init(
        role: Role,
        configuration: Configuration = Configuration(),
        maskKeyGenerator: some MaskKeyGenerator = SystemRandomMaskKeyGenerator(),
        codec: (any MessageCodec)? = nil
    ) {
        self.role = role
        self.configuration = configuration
        self.maskKeys = maskKeyGenerator
        self.codec = codec
        self.rsv1ClaimedByCodec = codec != nil && !configuration.claimedReservedBits.contains(.rsv1)
        self.parser = FrameParser(
            configuration: Self.parserConfiguration(role: role, configuration, codec: codec != nil))
        self.reassembly = ByteStorage(maxCapacity: max(0, configuration.maxMessageLength))
    }

    /// The most encoded bytes a message may take on the wire when an extension encodes it: the message limit
    /// plus room for the encoding's worst-case growth on incompressible data (DEFLATE's stored blocks add 5 bytes
    /// per 65 535), so that a message that is within the limit once decoded is never refused for its encoding.
    private static func encodedMessageLimit(_ c: Configuration) -> Int {
        withEncodingGrowth(c.maxMessageLength)
    }

    /// `limit` plus the worst-case growth of an encoding (1/256 + 64 bytes, above DEFLATE's 5 bytes per 65 535).
    private static func withEncodingGrowth(_ limit: Int) -> Int {
        let limit = max(0, limit)
        let (sum, overflow) = limit.addingReportingOverflow(limit / 256 + 64)
        return overflow ? .max : sum
    }

    private static func parserConfiguration(role: Role, _ c: Configuration, codec: Bool) -> FrameParser.Configuration {
        FrameParser.Configuration(
            role: role,
            maxFramePayloadLength: codec
                ? min(withEncodingGrowth(c.maxFramePayloadLength), encodedMessageLimit(c))
                : min(c.maxFramePayloadLength, c.maxMessageLength),
            allowsNonMinimalLengths: c.allowsNonMinimalLengths,
            claimedReservedBits: codec ? c.claimedReservedBits.union(.rsv1) : c.claimedReservedBits
        )
    }

    // MARK: - Inbound

    /// Parses bytes received from the peer and returns the next event.
    ///
    /// Call it in a loop on the same data, each time with the bytes after those consumed, until it returns
    /// `event == nil` (then every byte has been consumed). Bytes that arrive after the peer's close frame or
    /// after a failure are consumed and ignored.
    ///
    /// - Parameter buffer: bytes from the peer, owned by the caller. Masked payload is unmasked in place, and
    ///   the event's payload may point into it: keep it alive and unchanged until the next call.
    /// - Returns: `consumed`, how many bytes from the start of `buffer` were used, and the event, if any.
    /// - Throws: ``ProtocolError`` when the peer broke RFC 6455 or a configured limit. The connection has then
    ///   already failed: the close frame with the error's code is queued, ``state`` is `.closed`,
    ///   ``closeStatus`` holds the error's code and reason and ``shouldCloseTransport`` is `true` (RFC 6455
    ///   §7.1.7).
    public mutating func receive(
        _ buffer: UnsafeMutableRawBufferPointer
    ) throws(ProtocolError) -> (consumed: Int, event: Event?) {
        if releaseOnNextCall {
            reassembly.removeAll(retainingAtMost: Self.retainedCapacity)
            releaseOnNextCall = false
        }
        guard !closeReceived && !failed && !transportEnded else { return (buffer.count, nil) }
        if buffer.count > 0 { activity = true }
        do throws(ProtocolError) {
            return try receiveFrames(buffer)
        } catch {
            fail(error)
            throw error
        }
    }

    private mutating func receiveFrames(
        _ buffer: UnsafeMutableRawBufferPointer
    ) throws(ProtocolError) -> (consumed: Int, event: Event?) {
        var offset = 0
        while true {
            let start = offset
            let (consumed, item) = try parser.parse(UnsafeMutableRawBufferPointer(rebasing: buffer[start...]))
            offset += consumed
            guard let item else { return (offset, nil) }
            switch item {
            case .frame(let header, let range):
                try beginFrame(header, wholeFrame: true)
                let payload = UnsafeRawBufferPointer(
                    rebasing: buffer[(start + range.lowerBound)..<(start + range.upperBound)])
                if let event = try payloadChunk(header, payload, frameComplete: true, wholeFrame: true) {
                    return (offset, event)
                }
            case .header(let header):
                try beginFrame(header, wholeFrame: false)
                currentFrame = header
            case .payload(let range, let isFinal):
                guard let header = currentFrame else { continue }
                if isFinal { currentFrame = nil }
                let payload = UnsafeRawBufferPointer(
                    rebasing: buffer[(start + range.lowerBound)..<(start + range.upperBound)])
                if let event = try payloadChunk(header, payload, frameComplete: isFinal, wholeFrame: false) {
                    return (offset, event)
                }
            }
        }
    }

    /// Rules that need the message context: fragmentation order (§5.4) and message limits (§10.4).
    private mutating func beginFrame(_ header: FrameHeader, wholeFrame: Bool) throws(ProtocolError) {
        if header.opcode.isControl {
            if header.rsv1 && rsv1ClaimedByCodec {
                throw ProtocolError.reservedBitsSet.with(reason: "RSV1 set on a control frame")
            }
            controlPayload.removeAll(retainingAtMost: 128)
            return
        }
        switch header.opcode {
        case .continuation:
            guard inbound != nil else { throw ProtocolError.unexpectedContinuationFrame }
            if header.rsv1 && rsv1ClaimedByCodec {
                throw ProtocolError.reservedBitsSet.with(reason: "RSV1 set on a continuation frame")
            }
        case .text, .binary:
            guard inbound == nil else { throw ProtocolError.expectedContinuationFrame }
            inbound = header.opcode == .text ? .text : .binary
            inboundLength = 0
            inboundFragments = 0
            inboundFirstChunkPending = true
            inboundEncoded = header.rsv1 && rsv1ClaimedByCodec
            decodedLength = 0
            validator.reset()
        default:
            return
        }
        inboundFragments += 1
        if inboundFragments > configuration.maxFragmentsPerMessage {
            throw ProtocolError.tooManyFragments.with(
                reason: "message has more than \(configuration.maxFragmentsPerMessage) fragments")
        }
        if rsv1ClaimedByCodec && !inboundEncoded && header.payloadLength > configuration.maxFramePayloadLength {
            // The parser allowed room for encoding growth; a frame of a message that is not encoded has none.
            throw ProtocolError.frameTooLarge.with(
                reason: "frame of \(header.payloadLength) bytes exceeds limit of \(configuration.maxFramePayloadLength)")
        }
        let limit = inboundEncoded ? Self.encodedMessageLimit(configuration) : configuration.maxMessageLength
        if header.payloadLength > limit - inboundLength {
            throw ProtocolError.messageTooLarge.with(
                reason: "message exceeds limit of \(configuration.maxMessageLength) bytes")
        }
        // A message that will be reassembled: reserve for what the header announces, but at most 64 KiB ahead
        // of the bytes that actually arrived, so that a header alone cannot make us reserve up to the limit.
        if !inboundEncoded && configuration.delivery == .wholeMessages && header.payloadLength > 0
            && !(wholeFrame && header.fin && inboundFragments == 1)
        {
            reassembly.reserve(reassembly.count + min(header.payloadLength, Self.retainedCapacity))
        }
    }

    private mutating func payloadChunk(
        _ header: FrameHeader,
        _ payload: UnsafeRawBufferPointer,
        frameComplete: Bool,
        wholeFrame: Bool
    ) throws(ProtocolError) -> Event? {
        if header.opcode.isControl {
            let body: UnsafeRawBufferPointer
            if wholeFrame {
                body = payload
            } else {
                controlPayload.append(payload)
                guard frameComplete else { return nil }
                body = controlPayload.bytes
            }
            return try controlFrame(header.opcode, body)
        }
        guard let kind = inbound else { return nil }
        if inboundEncoded {
            return try encodedPayloadChunk(kind, header, payload, frameComplete: frameComplete)
        }
        if kind == .text, let bad = validator.validate(payload) {
            throw ProtocolError.invalidUTF8.with(reason: "invalid UTF-8 at byte \(inboundLength + bad) of text message")
        }
        let messageComplete = frameComplete && header.fin
        try endChunk(kind, messageComplete: messageComplete)
        inboundLength += payload.count

        switch configuration.delivery {
        case .streaming:
            return fragmentEvent(kind, payload, messageComplete: messageComplete)
        case .wholeMessages:
            if messageComplete && wholeFrame && inboundFragments == 1 {
                return .message(kind, payload)
            }
            reassembly.append(payload)
            guard messageComplete else { return nil }
            releaseOnNextCall = true
            return .message(kind, reassembly.bytes)
        }
    }

    /// A chunk of a message marked with RSV1: decoded by the codec, then validated and delivered like any other
    /// message. In streaming mode the bytes decoded from one chunk form one fragment event.
    private mutating func encodedPayloadChunk(
        _ kind: MessageKind,
        _ header: FrameHeader,
        _ payload: UnsafeRawBufferPointer,
        frameComplete: Bool
    ) throws(ProtocolError) -> Event? {
        guard var codec = self.codec else { return nil }
        self.codec = nil
        defer { self.codec = codec }
        let messageComplete = frameComplete && header.fin
        inboundLength += payload.count
        if configuration.delivery == .streaming && !releaseOnNextCall {
            reassembly.removeAll(retainingAtMost: Self.retainedCapacity)
        }
        let limit = configuration.maxMessageLength
        try codec.decode(payload, isFinal: messageComplete, limit: limit) { (decoded) throws(ProtocolError) in
            if decoded.count > limit - decodedLength {
                throw ProtocolError.messageTooLarge.with(reason: "decompressed message exceeds limit of \(limit) bytes")
            }
            if kind == .text, let bad = validator.validate(decoded) {
                throw ProtocolError.invalidUTF8.with(
                    reason: "invalid UTF-8 at byte \(decodedLength + bad) of decompressed text message")
            }
            decodedLength += decoded.count
            reassembly.append(decoded)
        }
        try endChunk(kind, messageComplete: messageComplete)
        switch configuration.delivery {
        case .streaming:
            releaseOnNextCall = true
            return fragmentEvent(kind, reassembly.bytes, messageComplete: messageComplete)
        case .wholeMessages:
            guard messageComplete else { return nil }
            releaseOnNextCall = true
            return .message(kind, reassembly.bytes)
        }
    }

    /// After a chunk of data: a text message must end on a code point boundary (RFC 6455 §8.1); a complete
    /// message ends the fragmented-message state (§5.4).
    private mutating func endChunk(_ kind: MessageKind, messageComplete: Bool) throws(ProtocolError) {
        if kind == .text && messageComplete && !validator.isComplete {
            throw ProtocolError.invalidUTF8.with(reason: "text message ends inside a UTF-8 sequence")
        }
        if messageComplete { inbound = nil }
    }

    /// The streaming-mode event for a chunk; empty chunks in the middle of a message are not reported.
    private mutating func fragmentEvent(
        _ kind: MessageKind, _ bytes: UnsafeRawBufferPointer, messageComplete: Bool
    ) -> Event? {
        let isFirst = inboundFirstChunkPending
        if bytes.isEmpty && !isFirst && !messageComplete { return nil }
        inboundFirstChunkPending = false
        return .fragment(kind, bytes, isFirst: isFirst, isFinal: messageComplete)
    }

    private mutating func controlFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) throws(ProtocolError) -> Event? {
        switch opcode {
        case .ping:
            if configuration.autoPong && !closeSent {
                pongSlot.removeAll(retainingAtMost: 128)
                pongSlot.append(payload)
                hasPendingPong = true
            }
            return .ping(payload)
        case .pong:
            return .pong(payload)
        case .close:
            return .close(try receiveClose(payload))
        default:
            return nil
        }
    }

    /// The peer's close frame (RFC 6455 §5.5.1, §7.1.5, §7.4).
    private mutating func receiveClose(_ payload: UnsafeRawBufferPointer) throws(ProtocolError) -> CloseStatus {
        var status = CloseStatus(code: .noStatusReceived)
        if payload.count == 1 { throw ProtocolError.closePayloadTooShort }
        if payload.count >= 2 {
            let code = CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
            guard code.isAllowedOnWire else {
                throw ProtocolError.invalidCloseCode.with(reason: "invalid close code \(code.rawValue)")
            }
            let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
            guard UTF8Validator.isValid(reason) else { throw ProtocolError.invalidCloseReason }
            status = CloseStatus(code: code, reason: String(decoding: reason, as: UTF8.self))
        }
        closeReceived = true
        inbound = nil
        currentFrame = nil
        if !closeSent {
            // Echo the status code (RFC 6455 §5.5.1), without a reason.
            writeClose(code: payload.count >= 2 ? status.code : nil, reason: "")
            closeSent = true
        }
        state = .closed
        closeStatus = status
        if role == .server { shouldCloseTransport = true }
        return status
    }

    /// Reports that the peer closed the TCP connection (or it broke). Without a completed close handshake the
    /// status becomes 1006 (abnormal closure, RFC 6455 §7.1.5). Queued output is discarded.
    public mutating func receiveEOF() {
        guard !transportEnded else { return }
        transportEnded = true
        if !closeReceived && !failed && closeStatus == nil {
            closeStatus = CloseStatus(code: .abnormalClosure, reason: "connection closed without a close frame")
        } else if closeSent && !closeReceived && !failed {
            closeStatus = CloseStatus(code: .abnormalClosure, reason: "connection closed during the close handshake")
        }
        state = .closed
        shouldCloseTransport = true
        hasPendingPong = false
        output.removeAll(retainingAtMost: 0)
    }

    /// Fails the connection (RFC 6455 §7.1.7): queues a close frame with `code` and `reason` unless one was
    /// sent already, and asks for the transport to be closed. For errors found above the core, e.g. 1011
    /// (internal error) or 1008 (policy violation).
    ///
    /// - Parameters:
    ///   - code: a code allowed on the wire (RFC 6455 §7.4); another code is replaced by 1011.
    ///   - reason: UTF-8 text, cut to at most 123 bytes at a character boundary.
    public mutating func fail(code: CloseCode, reason: String) {
        guard !failed && !transportEnded else { return }
        failed = true
        hasPendingPong = false
        let wireCode = code.isAllowedOnWire ? code : .internalError
        if !closeSent {
            writeClose(code: wireCode, reason: reason)
            closeSent = true
        }
        state = .closed
        closeStatus = CloseStatus(code: wireCode, reason: reason)
        shouldCloseTransport = true
    }

    private mutating func fail(_ error: ProtocolError) {
        fail(code: error.closeCode, reason: error.reason)
    }

    // MARK: - Outbound

    /// Whether ``withPendingOutput(_:)`` has bytes to hand out.
    public var hasPendingOutput: Bool { hasPendingPong || output.count > 0 }

    /// Hands the queued output (complete frames, in order) to `body`, then empties the queue.
    ///
    /// - Parameter body: receives the bytes to write to the transport, borrowed for the duration of the call:
    ///   copy them (e.g. into a `ByteBuffer`) before returning.
    /// - Returns: what `body` returns.
    @discardableResult
    public mutating func withPendingOutput<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if hasPendingPong { materializePong() }
        defer { output.removeAll(retainingAtMost: Self.retainedCapacity) }
        return try body(output.bytes)
    }

    /// Queues a whole message as one frame (copied, and masked in the client role). With a negotiated
    /// ``MessageCodec`` (e.g. permessage-deflate) the message is encoded and sent with RSV1, unless `encode` is
    /// `false` or the codec declines (e.g. below its size threshold).
    ///
    /// - Parameters:
    ///   - kind: text or binary. Text payload must be UTF-8; it is not validated here.
    ///   - payload: the message, borrowed for the duration of the call.
    ///   - encode: `false` to send this message uncompressed even when an extension is negotiated.
    /// - Throws: ``SendError/connectionClosed`` after our close frame; ``SendError/messageInProgress`` while a
    ///   fragmented message is being sent.
    public mutating func send(_ kind: MessageKind, _ payload: UnsafeRawBufferPointer, encode: Bool = true) throws(SendError) {
        guard encode, var codec = self.codec else {
            try sendFrame(kind.opcode, payload, fin: true)
            return
        }
        try checkDataFrame(kind.opcode, fin: true)
        self.codec = nil
        defer { self.codec = codec }
        let encoded = codec.encode(payload, kind: kind) { encodedPayload in
            writeFrame(kind.opcode, fin: true, rsv: .rsv1, payloadLength: encodedPayload.count) { destination in
                if encodedPayload.count > 0 { destination.copyMemory(from: encodedPayload) }
            }
        }
        if !encoded { writeFrame(kind.opcode, fin: true, payload) }
    }

    /// Queues one data frame (copied, and masked in the client role): start a fragmented message with `.text`
    /// or `.binary` and `fin: false`, continue it with `.continuation`, end it with `fin: true` (RFC 6455 §5.4).
    ///
    /// - Throws: ``SendError/connectionClosed``, ``SendError/notADataOpcode``, ``SendError/messageInProgress``
    ///   (a new message inside a fragmented one), ``SendError/noMessageInProgress`` (a continuation without a
    ///   start).
    public mutating func sendFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool) throws(SendError) {
        try checkDataFrame(opcode, fin: fin)
        writeFrame(opcode, fin: fin, payload)
    }

    /// The zero-copy send path: checks and records a data frame and returns its header, with a fresh masking
    /// key in the client role. The caller must then write, in this order: any pending output
    /// (``withPendingOutput(_:)``), the header (``FrameEncoder/writeHeader(_:into:)``), and exactly
    /// `payloadLength` payload bytes, XORed with `header.maskKey` (``Masking/apply(_:to:keyOffset:)``) when it
    /// is not `nil`.
    ///
    /// - Parameters:
    ///   - opcode: `.text`, `.binary` or `.continuation`.
    ///   - payloadLength: the payload size in bytes, `>= 0`.
    ///   - fin: whether this frame ends its message.
    /// - Throws: the errors of ``sendFrame(_:_:fin:)``.
    public mutating func makeFrameHeader(_ opcode: Opcode, payloadLength: Int, fin: Bool) throws(SendError) -> FrameHeader {
        precondition(payloadLength >= 0, "negative payload length")
        try checkDataFrame(opcode, fin: fin)
        if hasPendingPong { materializePong() }
        return FrameHeader(fin: fin, opcode: opcode, maskKey: role == .client ? maskKeys.next() : nil,
                           payloadLength: payloadLength)
    }

    /// Queues a ping (RFC 6455 §5.5.2).
    ///
    /// - Parameter payload: 0-125 bytes, borrowed for the duration of the call.
    /// - Throws: ``SendError/controlPayloadTooLong``, ``SendError/connectionClosed``.
    public mutating func ping(_ payload: UnsafeRawBufferPointer) throws(SendError) {
        try checkControl(payload.count)
        writeFrame(.ping, fin: true, payload)
    }

    /// Queues an unsolicited pong, e.g. as a unidirectional heartbeat (RFC 6455 §5.5.3).
    ///
    /// - Parameter payload: 0-125 bytes, borrowed for the duration of the call.
    /// - Throws: ``SendError/controlPayloadTooLong``, ``SendError/connectionClosed``.
    public mutating func pong(_ payload: UnsafeRawBufferPointer) throws(SendError) {
        try checkControl(payload.count)
        writeFrame(.pong, fin: true, payload)
    }

    /// Starts the close handshake: queues a close frame; nothing else may be sent after it (RFC 6455 §5.5.1,
    /// §7.1.2). The connection then waits for the peer's close frame, at most ``Configuration/closeTimeout``.
    ///
    /// - Parameters:
    ///   - code: a code allowed on the wire (RFC 6455 §7.4). Default: 1000 (normal closure).
    ///   - reason: UTF-8 text of at most 123 bytes.
    /// - Throws: ``SendError/connectionClosed`` when a close frame was already sent; ``SendError/invalidCloseCode``;
    ///   ``SendError/controlPayloadTooLong`` for a reason above 123 bytes.
    public mutating func close(code: CloseCode = .normalClosure, reason: String = "") throws(SendError) {
        guard !closeSent && !failed && !transportEnded else { throw SendError.connectionClosed }
        guard code.isAllowedOnWire else { throw SendError.invalidCloseCode }
        guard reason.utf8.count <= 123 else { throw SendError.controlPayloadTooLong }
        writeClose(code: code, reason: reason)
        closeSent = true
        state = .closing
    }

    private mutating func checkDataFrame(_ opcode: Opcode, fin: Bool) throws(SendError) {
        guard !closeSent && !failed && !transportEnded else { throw SendError.connectionClosed }
        switch opcode {
        case .continuation:
            guard outboundMessageInProgress else { throw SendError.noMessageInProgress }
        case .text, .binary:
            guard !outboundMessageInProgress else { throw SendError.messageInProgress }
        default:
            throw SendError.notADataOpcode
        }
        outboundMessageInProgress = !fin
    }

    private func checkControl(_ count: Int) throws(SendError) {
        guard !closeSent && !failed && !transportEnded else { throw SendError.connectionClosed }
        guard count <= 125 else { throw SendError.controlPayloadTooLong }
    }

    private mutating func materializePong() {
        hasPendingPong = false
        let bytes = pongSlot.bytes
        writeFrame(.pong, fin: true, payloadLength: bytes.count) { $0.copyMemory(from: bytes) }
    }

    private mutating func writeFrame(_ opcode: Opcode, fin: Bool, _ payload: UnsafeRawBufferPointer) {
        writeFrame(opcode, fin: fin, payloadLength: payload.count) { destination in
            if payload.count > 0 { destination.copyMemory(from: payload) }
        }
    }

    private mutating func writeClose(code: CloseCode?, reason: String) {
        guard let code else {
            writeFrame(.close, fin: true, payloadLength: 0) { _ in }
            return
        }
        var reasonBytes = Array(reason.utf8.prefix(123))
        if reasonBytes.count < reason.utf8.count {
            // Do not cut a character in two.
            while let last = reasonBytes.last, last & 0xC0 == 0x80 { reasonBytes.removeLast() }
            if let last = reasonBytes.last, last >= 0xC0 { reasonBytes.removeLast() }
        }
        writeFrame(.close, fin: true, payloadLength: 2 + reasonBytes.count) { destination in
            destination[0] = UInt8(truncatingIfNeeded: code.rawValue >> 8)
            destination[1] = UInt8(truncatingIfNeeded: code.rawValue)
            reasonBytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: destination[2...]).copyMemory(from: $0) }
        }
    }

    /// Appends one frame to the output queue; `fill` writes the unmasked payload.
    private mutating func writeFrame(
        _ opcode: Opcode,
        fin: Bool,
        rsv: ReservedBits = [],
        payloadLength: Int,
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) {
        if hasPendingPong && opcode != .pong { materializePong() }
        let key: MaskKey? = role == .client ? maskKeys.next() : nil
        let header = FrameHeader(fin: fin, reservedBits: rsv, opcode: opcode, maskKey: key, payloadLength: payloadLength)
        let destination = output.appendUninitialized(header.headerLength + payloadLength)
        let headerLength = FrameEncoder.writeHeader(header, into: destination)
        let payload = UnsafeMutableRawBufferPointer(rebasing: destination[headerLength...])
        fill(payload)
        if let key { Masking.apply(key, to: payload) }
    }

    // MARK: - Time

    /// Advances the connection's timers: the heartbeat ping, the pong timeout, the close-handshake timeout and
    /// (client role) the wait for the server to close TCP. Call it at ``nextDeadline`` or later, then write
    /// pending output and honour ``shouldCloseTransport``.
    ///
    /// - Parameter now: the current reading of the caller's monotonic clock; never earlier than a previous one.
    public mutating func tick(now: Instant) {
        lastNow = now
        if activity {
            activity = false
            lastActivity = now
            pingSentAt = nil
        }
        if shouldCloseTransport { return }
        switch state {
        case .closed:
            // Client role after the close handshake: the server should close TCP first (RFC 6455 §7.1.1).
            if let deadline = transportCloseDeadline {
                if now >= deadline { shouldCloseTransport = true }
            } else {
                transportCloseDeadline = now + configuration.closeTimeout
            }
        case .closing:
            if let deadline = closeDeadline {
                if now >= deadline {
                    state = .closed
                    closeStatus = CloseStatus(code: .abnormalClosure, reason: "close handshake timed out")
                    shouldCloseTransport = true
                }
            } else {
                closeDeadline = now + configuration.closeTimeout
            }
        case .open:
            guard let interval = configuration.pingInterval else { return }
            guard let last = lastActivity else {
                lastActivity = now
                return
            }
            if let sent = pingSentAt {
                if now >= sent + configuration.pongTimeout {
                    fail(code: .internalError, reason: "keepalive ping timeout")
                    closeStatus = CloseStatus(code: .abnormalClosure, reason: "no pong or other traffic after ping")
                }
            } else if now >= last + interval {
                pingCounter &+= 1
                let counter = pingCounter
                writeFrame(.ping, fin: true, payloadLength: 4) { destination in
                    destination.storeBytes(of: counter.bigEndian, as: UInt32.self)
                }
                pingSentAt = now
            }
        }
    }

    /// When ``tick(now:)`` must next be called, on the caller's clock; `nil` when no timer is needed. A value
    /// at or before the current time (possibly ``Instant/init(nanoseconds:)`` with 0) means "as soon as
    /// possible": the connection needs a first reading of the clock to arm a timer.
    public var nextDeadline: Instant? {
        if shouldCloseTransport { return nil }
        let soon = Instant(nanoseconds: 0)
        switch state {
        case .closed:
            return transportCloseDeadline ?? soon
        case .closing:
            return closeDeadline ?? soon
        case .open:
            guard let interval = configuration.pingInterval else { return nil }
            if let sent = pingSentAt { return activity ? soon : sent + configuration.pongTimeout }
            guard let last = lastActivity else { return soon }
            return last + interval
        }
    }
}
