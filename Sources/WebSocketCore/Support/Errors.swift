/// A violation of RFC 6455 by the peer. The connection fails with ``closeCode`` (RFC 6455 §7.1.7).
///
/// One case per rule, named after the rule. Two errors are equal when they are the same case; ``reason``
/// carries the detail (the offending value) and is also the reason sent in the close frame.
///
/// | Error | Rule | Close code |
/// |---|---|---|
/// | ``reservedBitsSet`` | RSV1-3 set without an extension claiming them (§5.2) | 1002 |
/// | ``reservedOpcode`` | opcode 0x3-0x7 or 0xB-0xF (§5.2) | 1002 |
/// | ``fragmentedControlFrame`` | control frame with FIN = 0 (§5.5) | 1002 |
/// | ``controlFrameTooLong`` | control frame payload > 125 bytes (§5.5) | 1002 |
/// | ``unmaskedFrameFromClient`` | a server received an unmasked frame (§5.1) | 1002 |
/// | ``maskedFrameFromServer`` | a client received a masked frame (§5.1) | 1002 |
/// | ``payloadLengthMostSignificantBitSet`` | 64-bit length with its MSB set (§5.2) | 1002 |
/// | ``nonMinimalPayloadLength`` | length not in the minimal number of bytes (§5.2) | 1002 |
/// | ``unexpectedContinuationFrame`` | continuation frame with no message in progress (§5.4) | 1002 |
/// | ``expectedContinuationFrame`` | text/binary frame inside a fragmented message (§5.4) | 1002 |
/// | ``closePayloadTooShort`` | close payload of exactly 1 byte (§5.5.1) | 1002 |
/// | ``invalidCloseCode`` | close code not allowed on the wire (§7.4) | 1002 |
/// | ``invalidUTF8`` | text message that is not UTF-8 (§8.1) | 1007 |
/// | ``invalidCloseReason`` | close reason that is not UTF-8 (§5.5.1) | 1007 |
/// | ``frameTooLarge`` | frame payload above the configured limit (§10.4) | 1009 |
/// | ``messageTooLarge`` | message above the configured limit (§10.4) | 1009 |
/// | ``tooManyFragments`` | more fragments in one message than the configured limit (§10.4) | 1009 |
/// | ``invalidCompressedData`` | a message an extension could not decode (RFC 7692 §7.2.2) | 1007 |
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    @usableFromInline
    internal enum Kind: Sendable, Hashable {
        case reservedBitsSet, reservedOpcode, fragmentedControlFrame, controlFrameTooLong
        case unmaskedFrameFromClient, maskedFrameFromServer, payloadLengthMostSignificantBitSet
        case nonMinimalPayloadLength, unexpectedContinuationFrame, expectedContinuationFrame
        case closePayloadTooShort, invalidCloseCode, invalidUTF8, invalidCloseReason
        case frameTooLarge, messageTooLarge, tooManyFragments, invalidCompressedData
    }

    @usableFromInline
    internal let kind: Kind
    /// The close code the connection fails with.
    public let closeCode: CloseCode
    /// A short explanation (at most 123 bytes of ASCII), also sent as the close frame's reason.
    public let reason: String

    @usableFromInline
    internal init(_ kind: Kind, _ closeCode: CloseCode, _ reason: String) {
        self.kind = kind
        self.closeCode = closeCode
        self.reason = reason
    }

    public static func == (lhs: ProtocolError, rhs: ProtocolError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }
    public var description: String { "\(reason) (close code \(closeCode))" }

    /// RSV1, RSV2 or RSV3 set without a negotiated extension claiming it (RFC 6455 §5.2). Close code 1002.
    public static let reservedBitsSet = ProtocolError(.reservedBitsSet, .protocolError, "reserved bits set")
    /// Opcode 0x3-0x7 or 0xB-0xF (RFC 6455 §5.2). Close code 1002.
    public static let reservedOpcode = ProtocolError(.reservedOpcode, .protocolError, "reserved opcode")
    /// A control frame with FIN = 0 (RFC 6455 §5.5). Close code 1002.
    public static let fragmentedControlFrame = ProtocolError(
        .fragmentedControlFrame, .protocolError, "fragmented control frame")
    /// A control frame with a payload above 125 bytes (RFC 6455 §5.5). Close code 1002.
    public static let controlFrameTooLong = ProtocolError(
        .controlFrameTooLong, .protocolError, "control frame payload longer than 125 bytes")
    /// A server received an unmasked frame (RFC 6455 §5.1). Close code 1002.
    public static let unmaskedFrameFromClient = ProtocolError(
        .unmaskedFrameFromClient, .protocolError, "unmasked frame from client")
    /// A client received a masked frame (RFC 6455 §5.1). Close code 1002.
    public static let maskedFrameFromServer = ProtocolError(
        .maskedFrameFromServer, .protocolError, "masked frame from server")
    /// A 64-bit payload length with its most significant bit set (RFC 6455 §5.2). Close code 1002.
    public static let payloadLengthMostSignificantBitSet = ProtocolError(
        .payloadLengthMostSignificantBitSet, .protocolError, "64-bit payload length with most significant bit set")
    /// A payload length not encoded in the minimal number of bytes (RFC 6455 §5.2 "MUST"). Close code 1002.
    /// Tolerated when ``Connection/Configuration/allowsNonMinimalLengths`` is set.
    public static let nonMinimalPayloadLength = ProtocolError(
        .nonMinimalPayloadLength, .protocolError, "payload length not minimally encoded")
    /// A continuation frame while no fragmented message is in progress (RFC 6455 §5.4). Close code 1002.
    public static let unexpectedContinuationFrame = ProtocolError(
        .unexpectedContinuationFrame, .protocolError, "continuation frame without a message in progress")
    /// A text or binary frame while a fragmented message is in progress (RFC 6455 §5.4). Close code 1002.
    public static let expectedContinuationFrame = ProtocolError(
        .expectedContinuationFrame, .protocolError, "new data frame inside a fragmented message")
    /// A close frame with a 1-byte payload (RFC 6455 §5.5.1). Close code 1002.
    public static let closePayloadTooShort = ProtocolError(
        .closePayloadTooShort, .protocolError, "close frame payload of 1 byte")
    /// A close frame with a code not allowed on the wire (RFC 6455 §7.4). Close code 1002.
    public static let invalidCloseCode = ProtocolError(.invalidCloseCode, .protocolError, "invalid close code")
    /// A text message that is not valid UTF-8 (RFC 6455 §8.1). Close code 1007.
    public static let invalidUTF8 = ProtocolError(
        .invalidUTF8, .invalidFramePayloadData, "invalid UTF-8 in text message")
    /// A close reason that is not valid UTF-8 (RFC 6455 §5.5.1). Close code 1007.
    public static let invalidCloseReason = ProtocolError(
        .invalidCloseReason, .invalidFramePayloadData, "invalid UTF-8 in close reason")
    /// A frame whose payload length exceeds ``Connection/Configuration/maxFramePayloadLength``, detected from
    /// the header before any payload is buffered (RFC 6455 §10.4). Close code 1009.
    public static let frameTooLarge = ProtocolError(.frameTooLarge, .messageTooBig, "frame too large")
    /// A message whose length would exceed ``Connection/Configuration/maxMessageLength``, detected from each
    /// frame header before its payload is buffered (RFC 6455 §10.4). Close code 1009.
    public static let messageTooLarge = ProtocolError(.messageTooLarge, .messageTooBig, "message too large")
    /// A message with more fragments than ``Connection/Configuration/maxFragmentsPerMessage``. Close code 1009.
    public static let tooManyFragments = ProtocolError(
        .tooManyFragments, .messageTooBig, "too many fragments in one message")

    /// A message marked with RSV1 that the negotiated extension (e.g. permessage-deflate) could not decode
    /// (RFC 7692 §7.2.2). Close code 1007.
    public static let invalidCompressedData = ProtocolError(
        .invalidCompressedData, .invalidFramePayloadData, "invalid compressed data")

    /// The same error with a more precise reason.
    /// - Parameter reason: at most 123 bytes of ASCII.
    public func with(reason: String) -> ProtocolError { ProtocolError(kind, closeCode, reason) }


}

/// A send the connection refused; nothing was queued. These are caller errors, not peer errors.
public struct SendError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Kind: Sendable, Hashable {
        case connectionClosed, controlPayloadTooLong, invalidCloseCode, noMessageInProgress
        case messageInProgress, notADataOpcode
    }
    private let kind: Kind
    private init(_ kind: Kind) { self.kind = kind }

    /// We already sent a close frame, or the connection failed: nothing may be sent after it (RFC 6455 §5.5.1).
    public static let connectionClosed = SendError(.connectionClosed)
    /// A control frame payload (ping, pong, close code + reason) above 125 bytes (RFC 6455 §5.5).
    public static let controlPayloadTooLong = SendError(.controlPayloadTooLong)
    /// A close code that may not be sent (1005, 1006, 1015, reserved ranges; RFC 6455 §7.4).
    public static let invalidCloseCode = SendError(.invalidCloseCode)
    /// A continuation frame was sent with no fragmented message in progress (RFC 6455 §5.4).
    public static let noMessageInProgress = SendError(.noMessageInProgress)
    /// A new text or binary message was started before the previous fragmented one was finished (§5.4).
    public static let messageInProgress = SendError(.messageInProgress)
    /// A control opcode was passed where a data frame (text, binary, continuation) is expected.
    public static let notADataOpcode = SendError(.notADataOpcode)

    public var description: String {
        switch kind {
        case .connectionClosed: return "the connection is closing or closed"
        case .controlPayloadTooLong: return "control frame payload longer than 125 bytes"
        case .invalidCloseCode: return "close code may not be sent"
        case .noMessageInProgress: return "continuation frame without a fragmented message in progress"
        case .messageInProgress: return "a fragmented message is in progress"
        case .notADataOpcode: return "not a data opcode"
        }
    }
}
