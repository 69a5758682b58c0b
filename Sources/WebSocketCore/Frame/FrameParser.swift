/// An incremental, zero-copy frame parser (RFC 6455 §5.2).
///
/// The parser reads frames from contiguous, mutable buffers that the caller owns. It never copies payload: it
/// reports where each payload lies in the caller's buffer and unmasks it there, in place. A header split across
/// calls is gathered in 14 bytes of inline state, so the parser never allocates, and any split of the input
/// (down to one byte per call) yields the same headers and the same payload bytes.
///
/// Each call consumes bytes from the start of the buffer and returns at most one ``Item``:
/// - ``Item/frame(_:payload:)``: a header and its whole payload, which lies in this buffer (the common case);
/// - ``Item/header(_:)``: a header whose payload is not all in this buffer yet; its payload follows as
/// - ``Item/payload(_:isFinal:)`` chunks, one per call, the last with `isFinal == true`.
///
/// Every rule of RFC 6455 §5 that can be checked from a single frame is checked as soon as the bytes that break
/// it arrive (fail fast), before any payload is consumed; see ``ProtocolError`` for the list. After a thrown
/// error the parser's state is unspecified: the connection must be failed.
public struct FrameParser: Sendable {
    /// The rules the parser enforces.
    public struct Configuration: Sendable, Hashable {
        /// The role of the endpoint that *receives* the frames. A server requires masked frames and a client
        /// rejects them (RFC 6455 §5.1).
        public var role: Role
        /// The largest payload accepted in one frame, in bytes. Checked from the header, before any payload is
        /// buffered (``ProtocolError/frameTooLarge``). Negative values count as zero; `Int.max` means no limit
        /// beyond RFC 6455's own (2^63 - 1). Default: 16 MiB.
        public var maxFramePayloadLength: Int
        /// Accept payload lengths that are not encoded in the minimal number of bytes. RFC 6455 §5.2 says the
        /// minimal number MUST be used; default `false` (strict).
        public var allowsNonMinimalLengths: Bool
        /// The reserved bits that negotiated extensions claim (RFC 6455 §5.2, §9); any other set bit fails with
        /// ``ProtocolError/reservedBitsSet``. Default: none.
        public var claimedReservedBits: ReservedBits

        public init(
            role: Role,
            maxFramePayloadLength: Int = 16 << 20,
            allowsNonMinimalLengths: Bool = false,
            claimedReservedBits: ReservedBits = []
        ) {
            self.role = role
            self.maxFramePayloadLength = max(0, maxFramePayloadLength)
            self.allowsNonMinimalLengths = allowsNonMinimalLengths
            self.claimedReservedBits = claimedReservedBits
        }
    }

    /// What one call to ``parse(_:)`` found.
    public enum Item: Sendable, Hashable {
        /// A complete frame: its header, and the range of its already unmasked payload in the buffer passed to
        /// this call.
        case frame(FrameHeader, payload: Range<Int>)
        /// A frame header whose payload did not fit in this buffer; the payload follows as ``payload(_:isFinal:)``
        /// items. The header's `payloadLength` is at least 1.
        case header(FrameHeader)
        /// The next chunk of the current frame's payload: a non-empty range in the buffer passed to this call,
        /// already unmasked. `isFinal` is `true` for the chunk that completes the frame's payload.
        case payload(Range<Int>, isFinal: Bool)
    }

    /// The rules in force. They may be changed between frames (e.g. once an extension is negotiated).
    public var configuration: Configuration

    // Header bytes gathered across calls (at most 14).
    private var stash: (UInt64, UInt64) = (0, 0)
    private var stashed = 0
    private var headerLengthNeeded = 2
    private var stashedOpcode = Opcode.continuation
    // Payload of the current frame still to come, when a `.header` was returned.
    private var remainingPayload = 0
    private var maskKey: MaskKey? = nil
    private var keyOffset = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Whether the parser is between frames (no partial header and no payload pending).
    public var isAtFrameBoundary: Bool { stashed == 0 && remainingPayload == 0 }

    /// Parses from the start of `buffer`.
    ///
    /// - Parameter buffer: caller-owned bytes received from the peer. Payload bytes that the result reports are
    ///   unmasked in place; the caller keeps ownership, and the reported ranges are offsets into this buffer.
    /// - Returns: `consumed`, the number of bytes at the start of `buffer` that the parser used (they must not
    ///   be passed again), and the item found, or `nil` when `buffer` held too few bytes to report anything
    ///   (then `consumed == buffer.count`: partial header bytes are kept inside the parser).
    /// - Throws: ``ProtocolError`` for a frame that breaks RFC 6455 §5 or the configured limits.
    public mutating func parse(
        _ buffer: UnsafeMutableRawBufferPointer
    ) throws(ProtocolError) -> (consumed: Int, item: Item?) {
        let count = buffer.count
        if remainingPayload > 0 {
            let n = min(remainingPayload, count)
            guard n > 0, let base = buffer.baseAddress else { return (0, nil) }
            if let key = maskKey {
                keyOffset = Masking.apply(key, to: UnsafeMutableRawBufferPointer(start: base, count: n),
                                          keyOffset: keyOffset)
            }
            remainingPayload -= n
            return (n, .payload(0..<n, isFinal: remainingPayload == 0))
        }
        guard let base = buffer.baseAddress, count > 0 else { return (0, nil) }

        let header: FrameHeader
        var consumed: Int
        if stashed == 0 && count >= 2 {
            // Fast path: the header starts at the start of this buffer.
            let (needed, opcode) = try checkFirstTwoBytes(base.load(as: UInt8.self),
                                                          base.load(fromByteOffset: 1, as: UInt8.self))
            if count >= needed {
                header = try decodeHeader(UnsafeRawPointer(base), opcode: opcode)
                consumed = needed
            } else {
                stashBytes(from: UnsafeRawPointer(base), count: count)
                headerLengthNeeded = needed
                stashedOpcode = opcode
                return (count, nil)
            }
        } else {
            consumed = 0
            if stashed < 2 {
                let take = min(2 - stashed, count)
                stashBytes(from: UnsafeRawPointer(base), count: take)
                consumed += take
                if stashed < 2 { return (consumed, nil) }
                let (b0, b1) = withUnsafeBytes(of: &stash) { ($0[0], $0[1]) }
                (headerLengthNeeded, stashedOpcode) = try checkFirstTwoBytes(b0, b1)
            }
            let take = min(headerLengthNeeded - stashed, count - consumed)
            stashBytes(from: UnsafeRawPointer(base + consumed), count: take)
            consumed += take
            if stashed < headerLengthNeeded { return (consumed, nil) }
            var copy = stash
            let opcode = stashedOpcode
            let decoded = withUnsafeBytes(of: &copy) { raw -> Result<FrameHeader, ProtocolError> in
                // The stash is a 16-byte tuple, so its base address always exists.
                Result { () throws(ProtocolError) -> FrameHeader in
                    try decodeHeader(raw.baseAddress.unsafelyUnwrapped, opcode: opcode)
                }
            }
            header = try decoded.get()
            stashed = 0
            stash = (0, 0)
        }

        let length = header.payloadLength
        let available = count - consumed
        if available >= length {
            if let key = header.maskKey, length > 0 {
                Masking.apply(key, to: UnsafeMutableRawBufferPointer(start: base + consumed, count: length))
            }
            return (consumed + length, .frame(header, payload: consumed..<(consumed + length)))
        }
        remainingPayload = length
        maskKey = header.maskKey
        keyOffset = 0
        return (consumed, .header(header))
    }

    private mutating func stashBytes(from source: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        let offset = stashed
        withUnsafeMutableBytes(of: &stash) { raw in
            for i in 0..<count { raw[offset + i] = source.load(fromByteOffset: i, as: UInt8.self) }
        }
        stashed += count
    }

    /// Checks everything the first two header bytes decide (RFC 6455 §5.1, §5.2, §5.5) and returns the full
    /// header length (2-14 bytes).
    private func checkFirstTwoBytes(_ b0: UInt8, _ b1: UInt8) throws(ProtocolError) -> (length: Int, opcode: Opcode) {
        let rsv = b0 & 0x70
        if rsv & ~configuration.claimedReservedBits.rawValue != 0 {
            throw ProtocolError.reservedBitsSet.with(
                reason: "reserved bits set without an extension (RSV bits 0x\(String(rsv, radix: 16)))")
        }
        guard let opcode = Opcode(rawValue: b0 & 0x0F) else {
            throw ProtocolError.reservedOpcode.with(reason: "reserved opcode 0x\(String(b0 & 0x0F, radix: 16))")
        }
        let length7 = b1 & 0x7F
        if opcode.isControl {
            if b0 & 0x80 == 0 { throw ProtocolError.fragmentedControlFrame }
            if length7 > 125 { throw ProtocolError.controlFrameTooLong }
        }
        let masked = b1 & 0x80 != 0
        switch configuration.role {
        case .server where !masked: throw ProtocolError.unmaskedFrameFromClient
        case .client where masked: throw ProtocolError.maskedFrameFromServer
        default: break
        }
        let extended = length7 == 126 ? 2 : (length7 == 127 ? 8 : 0)
        return (2 + extended + (masked ? 4 : 0), opcode)
    }

    /// Decodes a complete header whose first two bytes passed ``checkFirstTwoBytes(_:_:)``.
    private func decodeHeader(_ p: UnsafeRawPointer, opcode: Opcode) throws(ProtocolError) -> FrameHeader {
        let b0 = p.load(as: UInt8.self)
        let b1 = p.load(fromByteOffset: 1, as: UInt8.self)
        let length7 = b1 & 0x7F
        var index = 2
        var length = UInt64(length7)
        if length7 == 126 {
            length = UInt64(p.load(fromByteOffset: 2, as: UInt8.self)) << 8
                | UInt64(p.load(fromByteOffset: 3, as: UInt8.self))
            index = 4
            if length < 126 && !configuration.allowsNonMinimalLengths {
                throw ProtocolError.nonMinimalPayloadLength.with(
                    reason: "payload length \(length) encoded in 16 bits")
            }
        } else if length7 == 127 {
            length = 0
            for i in 0..<8 { length = length << 8 | UInt64(p.load(fromByteOffset: 2 + i, as: UInt8.self)) }
            index = 10
            if length & (1 << 63) != 0 { throw ProtocolError.payloadLengthMostSignificantBitSet }
            if length <= 0xFFFF && !configuration.allowsNonMinimalLengths {
                throw ProtocolError.nonMinimalPayloadLength.with(
                    reason: "payload length \(length) encoded in 64 bits")
            }
        }
        // Clamped: the limit may have been set to a negative value after `init`.
        if length > UInt64(clamping: configuration.maxFramePayloadLength) {
            throw ProtocolError.frameTooLarge.with(
                reason: "frame of \(length) bytes exceeds limit of \(configuration.maxFramePayloadLength)")
        }
        var maskKey: MaskKey? = nil
        if b1 & 0x80 != 0 {
            maskKey = MaskKey(
                p.load(fromByteOffset: index, as: UInt8.self), p.load(fromByteOffset: index + 1, as: UInt8.self),
                p.load(fromByteOffset: index + 2, as: UInt8.self), p.load(fromByteOffset: index + 3, as: UInt8.self))
        }
        return FrameHeader(
            fin: b0 & 0x80 != 0,
            reservedBits: ReservedBits(rawValue: b0 & 0x70),
            opcode: opcode,
            maskKey: maskKey,
            payloadLength: Int(length)
        )
    }
}
