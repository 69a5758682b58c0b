extension Connection {
    /// Parses bytes received from the peer and hands each event to `body`, in order, until every byte is
    /// consumed. Bytes that arrive after the peer's close frame or after a failure are consumed and ignored.
    ///
    /// `body` gets the connection itself, so it can answer while the payload is valid (echo a message, send a
    /// reply, close, or ``fail(code:reason:)`` to stop: the rest of the buffer is then ignored). It must not
    /// call `receive` on it. `body` cannot throw: stopping half-way through a buffer would lose the bytes not
    /// yet parsed. To stop on an error of your own, fail or close the connection in `body` and keep the error
    /// in a variable outside it.
    ///
    /// ```swift
    /// try connection.receive(bytes) { connection, event in
    ///     if case .message(let kind, let payload) = event { try? connection.send(kind, payload) }
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - buffer: bytes from the peer, owned by the caller. Masked payload is unmasked in place, and payloads
    ///     may point into it.
    ///   - body: called once per event. The event's payload is valid only during that call, including while
    ///     `body` sends on the connection it is given: copy what you keep.
    /// - Throws: the ``ProtocolError`` that failed the connection when the peer broke RFC 6455 or a configured
    ///   limit (events before it were delivered). The connection has then already failed: the close frame
    ///   with the error's code is queued, ``state`` is `.closed`, ``closeStatus`` holds the error's code and
    ///   reason and ``shouldCloseTransport`` is `true` (RFC 6455 §7.1.7).
    public mutating func receive(
        _ buffer: UnsafeMutableRawBufferPointer,
        _ body: (inout Connection, Event) -> Void
    ) throws(ProtocolError) {
        var offset = 0
        while true {
            let (consumed, event) = try receive(UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
            offset += consumed
            guard let event else { return }
            body(&self, event)
        }
    }

    /// Parses bytes received from the peer and returns the next event: the step that ``receive(_:_:)`` runs in
    /// a loop, for callers that must deliver an event outside a closure.
    ///
    /// Call it in a loop on the same data, each time with the bytes after those consumed, until it returns
    /// `event == nil` (then every byte has been consumed). Bytes that arrive after the peer's close frame or
    /// after a failure are consumed and ignored.
    ///
    /// - Parameter buffer: bytes from the peer, owned by the caller. Masked payload is unmasked in place, and
    ///   the event's payload may point into it: keep it alive and unchanged until the next call.
    /// - Returns: `consumed`, how many bytes from the start of `buffer` were used, and the event, if any. The
    ///   event's payload is valid until the next call to `receive`.
    /// - Throws: ``ProtocolError`` as ``receive(_:_:)`` does; the connection has then already failed.
    public mutating func receive(
        _ buffer: UnsafeMutableRawBufferPointer
    ) throws(ProtocolError) -> (consumed: Int, event: Event?) {
        if releaseOnNextCall {
            reassembly.removeAll(retainingAtMost: retainedReassemblyCapacity)
            releaseOnNextCall = false
        }
        guard canReceive else { return (buffer.count, nil) }
        if buffer.count > 0 { activity = true }
        do throws(ProtocolError) {
            return try receiveFrames(buffer)
        } catch {
            fail(closeCode: error.closeCode, reason: error.reason)
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
        var message: InboundMessage
        switch header.opcode {
        case .continuation:
            guard let inbound else { throw ProtocolError.unexpectedContinuationFrame }
            if header.rsv1 && rsv1ClaimedByCodec {
                throw ProtocolError.reservedBitsSet.with(reason: "RSV1 set on a continuation frame")
            }
            message = inbound
        case .text, .binary:
            guard inbound == nil else { throw ProtocolError.expectedContinuationFrame }
            message = InboundMessage(
                kind: header.opcode == .text ? .text : .binary, encoded: header.rsv1 && rsv1ClaimedByCodec)
        default:
            return
        }
        if message.fragments >= configuration.maxFragmentsPerMessage {
            throw ProtocolError.tooManyFragments.with(
                reason: "message has more than \(configuration.maxFragmentsPerMessage) fragments")
        }
        message.fragments += 1
        if rsv1ClaimedByCodec && !message.encoded && header.payloadLength > configuration.frameLimit {
            // The parser allowed room for encoding growth; a frame of a message that is not encoded has none.
            throw ProtocolError.frameTooLarge.with(
                reason: "frame of \(header.payloadLength) bytes exceeds limit of \(configuration.frameLimit)")
        }
        // `length` never exceeds `limit` (checked here for every frame), so the subtraction cannot overflow.
        let limit = message.encoded ? configuration.encodedMessageLimit : configuration.messageLimit
        if header.payloadLength > limit - message.length {
            throw ProtocolError.messageTooLarge.with(
                reason: "message exceeds limit of \(configuration.messageLimit) bytes")
        }
        // A message that will be reassembled: reserve for what the header announces, but at most 64 KiB ahead
        // of the bytes that actually arrived, so that a header alone cannot make us reserve up to the limit.
        if !message.encoded && configuration.delivery == .wholeMessages && header.payloadLength > 0
            && !(wholeFrame && header.fin && message.fragments == 1)
        {
            reassembly.reserve(reassembly.count + min(header.payloadLength, Self.retainedCapacity))
        }
        inbound = message
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
        guard var message = inbound else { return nil }
        let messageComplete = frameComplete && header.fin
        let event: Event?
        if message.encoded {
            event = try encodedPayloadChunk(&message, payload, messageComplete: messageComplete)
        } else {
            if message.kind == .text, let bad = message.validator.validate(payload) {
                throw ProtocolError.invalidUTF8.with(
                    reason: "invalid UTF-8 at byte \(message.length + bad) of text message")
            }
            try checkEnd(of: message, messageComplete: messageComplete)
            message.length += payload.count
            switch configuration.delivery {
            case .streaming:
                event = fragmentEvent(&message, payload, messageComplete: messageComplete)
            case .wholeMessages:
                if messageComplete && wholeFrame && message.fragments == 1 {
                    event = .message(message.kind, payload)
                } else {
                    reassembly.append(payload)
                    if messageComplete {
                        releaseOnNextCall = true
                        event = .message(message.kind, reassembly.bytes)
                    } else {
                        event = nil
                    }
                }
            }
        }
        // A complete message ends the fragmented-message state (§5.4).
        inbound = messageComplete ? nil : message
        return event
    }

    /// A chunk of a message marked with RSV1: decoded by the codec, then validated and delivered like any other
    /// message. In streaming mode the bytes decoded from one chunk form one fragment event.
    private mutating func encodedPayloadChunk(
        _ message: inout InboundMessage,
        _ payload: UnsafeRawBufferPointer,
        messageComplete: Bool
    ) throws(ProtocolError) -> Event? {
        guard let codec else { return nil }
        message.length += payload.count
        if configuration.delivery == .streaming && !releaseOnNextCall {
            reassembly.removeAll(retainingAtMost: retainedReassemblyCapacity)
        }
        let limit = configuration.messageLimit
        let reassembly = self.reassembly
        try codec.decode(payload, isFinal: messageComplete, limit: limit) { (decoded) throws(ProtocolError) in
            // `decodedLength` never exceeds `limit`, so the subtraction cannot overflow.
            if decoded.count > limit - message.decodedLength {
                throw ProtocolError.messageTooLarge.with(reason: "decompressed message exceeds limit of \(limit) bytes")
            }
            if message.kind == .text, let bad = message.validator.validate(decoded) {
                throw ProtocolError.invalidUTF8.with(
                    reason: "invalid UTF-8 at byte \(message.decodedLength + bad) of decompressed text message")
            }
            message.decodedLength += decoded.count
            reassembly.append(decoded)
        }
        try checkEnd(of: message, messageComplete: messageComplete)
        switch configuration.delivery {
        case .streaming:
            releaseOnNextCall = true
            return fragmentEvent(&message, reassembly.bytes, messageComplete: messageComplete)
        case .wholeMessages:
            guard messageComplete else { return nil }
            releaseOnNextCall = true
            return .message(message.kind, reassembly.bytes)
        }
    }

    /// A text message must end on a code point boundary (RFC 6455 §8.1).
    private func checkEnd(of message: InboundMessage, messageComplete: Bool) throws(ProtocolError) {
        if message.kind == .text && messageComplete && !message.validator.isComplete {
            throw ProtocolError.invalidUTF8.with(reason: "text message ends inside a UTF-8 sequence")
        }
    }

    /// The streaming-mode event for a chunk; empty chunks in the middle of a message are not reported.
    private func fragmentEvent(
        _ message: inout InboundMessage, _ bytes: UnsafeRawBufferPointer, messageComplete: Bool
    ) -> Event? {
        let isFirst = message.firstChunkPending
        if bytes.isEmpty && !isFirst && !messageComplete { return nil }
        message.firstChunkPending = false
        return .fragment(message.kind, bytes, isFirst: isFirst, isFinal: messageComplete)
    }

    private mutating func controlFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) throws(ProtocolError)
        -> Event?
    {
        switch opcode {
        case .ping:
            // Nothing goes out after our close frame, not even a pong.
            if configuration.autoPong && canSend {
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
        inbound = nil
        currentFrame = nil
        if canSend {
            // Echo the status code (RFC 6455 §5.5.1), without a reason.
            writeClose(code: payload.count >= 2 ? status.code : nil, reason: "")
        }
        // The handshake is complete. The server closes TCP first; the client waits for it (RFC 6455 §7.1.1).
        if role == .server {
            lifecycle = .closed(status, transportEnded: false)
        } else {
            lifecycle = .closeReceived(status, transportDeadline: nil)
        }
        return status
    }

    /// Reports that the peer closed the TCP connection (or it broke). Without a completed close handshake the
    /// status becomes 1006 (abnormal closure, RFC 6455 §7.1.5): "connection closed without a close frame", or
    /// "connection closed during the close handshake" when we had sent ours. A status already known (the
    /// peer's close, a failure, a timeout) is kept. Queued output is discarded.
    public mutating func receiveEOF() {
        let status: CloseStatus
        switch lifecycle {
        case .closed(_, transportEnded: true):
            return
        case .open:
            status = CloseStatus(code: .abnormalClosure, reason: "connection closed without a close frame")
        case .closeSent:
            status = CloseStatus(code: .abnormalClosure, reason: "connection closed during the close handshake")
        case .closeReceived(let known, _), .failed(let known), .closed(let known, transportEnded: false):
            status = known
        }
        lifecycle = .closed(status, transportEnded: true)
        hasPendingPong = false
        output.removeAll(retainingAtMost: 0)
    }

    /// Fails the connection (RFC 6455 §7.1.7): queues a close frame with `code` and `reason` unless one was
    /// sent already, and asks for the transport to be closed. For errors found above the core, e.g. 1011
    /// (internal error) or 1008 (policy violation). ``closeStatus`` becomes `code` and `reason`, except after a
    /// completed close handshake (the peer's status stands; the transport is closed now) and after an earlier
    /// failure or the end of the transport (nothing changes).
    ///
    /// - Parameters:
    ///   - code: a code allowed on the wire (RFC 6455 §7.4); another code is replaced by 1011.
    ///   - reason: UTF-8 text, cut to at most 123 bytes at a character boundary in the close frame.
    public mutating func fail(code: CloseCode, reason: String) {
        fail(closeCode: code, reason: reason)
    }

    /// Fails the connection with `closeCode` on the wire; reports `reported` instead when given (a dead peer
    /// gets 1011 but the connection reports 1006).
    mutating func fail(closeCode: CloseCode, reason: String, reporting reported: CloseStatus? = nil) {
        let wireCode = closeCode.isAllowedOnWire ? closeCode : .internalError
        switch lifecycle {
        case .open:
            hasPendingPong = false  // no pong goes out ahead of the close frame
            writeClose(code: wireCode, reason: reason)
        case .closeSent:
            break
        case .closeReceived(let status, _):
            lifecycle = .closed(status, transportEnded: false)
            return
        case .failed, .closed:
            return
        }
        lifecycle = .failed(reported ?? CloseStatus(code: wireCode, reason: reason))
    }
}
