/// The role an endpoint plays on a WebSocket connection (RFC 6455 §1.3, §5.1).
///
/// The role decides the masking rule: a client masks every frame it sends and a server rejects unmasked frames;
/// a server never masks and a client rejects masked frames (RFC 6455 §5.1, §5.3).
public enum Role: Sendable, Hashable {
    /// The endpoint that opened the connection.
    case client
    /// The endpoint that accepted the connection.
    case server
}

/// A frame opcode (RFC 6455 §5.2, §11.8).
///
/// Only the six opcodes defined by RFC 6455 are representable. The reserved values `0x3`–`0x7` (data) and
/// `0xB`–`0xF` (control) cannot be constructed: the parser rejects them with ``ProtocolError/reservedOpcode``.
public enum Opcode: UInt8, Sendable, Hashable, CaseIterable {
    /// `0x0`: continues a fragmented message (RFC 6455 §5.4).
    case continuation = 0x0
    /// `0x1`: the first frame of a text message, whose payload is UTF-8 (RFC 6455 §5.6).
    case text = 0x1
    /// `0x2`: the first frame of a binary message (RFC 6455 §5.6).
    case binary = 0x2
    /// `0x8`: a close frame (RFC 6455 §5.5.1).
    case close = 0x8
    /// `0x9`: a ping frame (RFC 6455 §5.5.2).
    case ping = 0x9
    /// `0xA`: a pong frame (RFC 6455 §5.5.3).
    case pong = 0xA

    /// Whether this is a control frame opcode (most significant bit of the 4-bit opcode set, RFC 6455 §5.5).
    @inlinable
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// The kind of a data message (RFC 6455 §5.6).
public enum MessageKind: Sendable, Hashable {
    /// A text message: its payload is UTF-8 and is validated on receipt (RFC 6455 §8.1).
    case text
    /// A binary message: its payload is opaque bytes.
    case binary

    /// The opcode of the first frame of a message of this kind.
    @inlinable
    public var opcode: Opcode { self == .text ? .text : .binary }
}

/// The three reserved bits RSV1, RSV2 and RSV3 of a frame header (RFC 6455 §5.2).
///
/// A bit may only be set on the wire when a negotiated extension claims it (for example RSV1 by
/// permessage-deflate, RFC 7692 §6). The raw values are the bits' positions in the first header byte.
public struct ReservedBits: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    @inlinable
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x70 }

    /// RSV1, bit `0x40` of the first header byte.
    public static let rsv1 = ReservedBits(rawValue: 0x40)
    /// RSV2, bit `0x20` of the first header byte.
    public static let rsv2 = ReservedBits(rawValue: 0x20)
    /// RSV3, bit `0x10` of the first header byte.
    public static let rsv3 = ReservedBits(rawValue: 0x10)
}
