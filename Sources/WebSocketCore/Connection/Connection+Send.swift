extension Connection {
    /// The bytes of buffer memory this connection holds right now: message reassembly, the output queue and
    /// the two 128-byte control-frame slots (capacity, not content). A reassembly buffer grown for a large
    /// message is cut back to at most 64 KiB at the next call to ``receive(_:)`` after the message was handed
    /// out, and the output queue to 64 KiB after each drain; the codec's own state (zlib) is not counted.
    public var bufferCapacity: Int {
        reassembly.capacity + output.capacity + controlPayload.capacity + pongSlot.capacity
    }

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
    public mutating func send(_ kind: MessageKind, _ payload: UnsafeRawBufferPointer, encode: Bool = true)
        throws(SendError)
    {
        guard encode, let codec else {
            try sendFrame(kind.opcode, payload, fin: true)
            return
        }
        try checkDataFrame(kind.opcode, fin: true)
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
    public mutating func makeFrameHeader(_ opcode: Opcode, payloadLength: Int, fin: Bool) throws(SendError)
        -> FrameHeader
    {
        precondition(payloadLength >= 0, "negative payload length")
        try checkDataFrame(opcode, fin: fin)
        if hasPendingPong { materializePong() }
        return FrameHeader(
            fin: fin, opcode: opcode, maskKey: role == .client ? maskKeys.next() : nil,
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
        guard canSend else { throw SendError.connectionClosed }
        guard code.isAllowedOnWire else { throw SendError.invalidCloseCode }
        guard reason.utf8.count <= 123 else { throw SendError.controlPayloadTooLong }
        writeClose(code: code, reason: reason)
        lifecycle = .closeSent(deadline: nil)
    }

    private mutating func checkDataFrame(_ opcode: Opcode, fin: Bool) throws(SendError) {
        guard canSend else { throw SendError.connectionClosed }
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
        guard canSend else { throw SendError.connectionClosed }
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

    /// Queues a close frame; without `code`, an empty one. The reason is cut to 123 bytes at a character
    /// boundary (RFC 6455 §5.5.1).
    mutating func writeClose(code: CloseCode?, reason: String) {
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
            reasonBytes.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: destination[2...]).copyMemory(from: $0)
            }
        }
    }

    /// Appends one frame to the output queue; `fill` writes the unmasked payload.
    mutating func writeFrame(
        _ opcode: Opcode,
        fin: Bool,
        rsv: ReservedBits = [],
        payloadLength: Int,
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) {
        if hasPendingPong && opcode != .pong { materializePong() }
        let key: MaskKey? = role == .client ? maskKeys.next() : nil
        let header = FrameHeader(
            fin: fin, reservedBits: rsv, opcode: opcode, maskKey: key, payloadLength: payloadLength)
        let destination = output.appendUninitialized(header.headerLength + payloadLength)
        let headerLength = FrameEncoder.writeHeader(header, into: destination)
        let payload = UnsafeMutableRawBufferPointer(rebasing: destination[headerLength...])
        fill(payload)
        if let key { Masking.apply(key, to: payload) }
    }
}
