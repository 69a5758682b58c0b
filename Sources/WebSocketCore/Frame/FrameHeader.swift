/// The decoded header of one frame (RFC 6455 §5.2).
///
/// A header on the wire is 2 to 14 bytes: FIN, RSV1-3 and the opcode; the mask flag and a 7-bit payload length,
/// extended to 16 bits (`126`) or 64 bits (`127`); and, when masked, a 4-byte masking key.
public struct FrameHeader: Sendable, Hashable {
    /// FIN: this is the final fragment of a message (RFC 6455 §5.2, §5.4).
    public var fin: Bool
    /// RSV1, RSV2 and RSV3 as set on the wire.
    public var reservedBits: ReservedBits
    /// The frame's opcode.
    public var opcode: Opcode
    /// The masking key, or `nil` when the frame is not masked (RFC 6455 §5.3).
    public var maskKey: MaskKey?
    /// The payload length in bytes (RFC 6455 §5.2: at most 2^63 - 1; the parser enforces a smaller limit).
    public var payloadLength: Int

    /// Creates a header.
    ///
    /// - Parameters:
    ///   - fin: FIN; `true` for an unfragmented message or the last fragment.
    ///   - reservedBits: RSV1-3; empty unless an extension claims them.
    ///   - opcode: the opcode.
    ///   - maskKey: the masking key for a masked (client-to-server) frame, else `nil`.
    ///   - payloadLength: the payload length in bytes, `>= 0`.
    @inlinable
    public init(
        fin: Bool = true,
        reservedBits: ReservedBits = [],
        opcode: Opcode,
        maskKey: MaskKey? = nil,
        payloadLength: Int
    ) {
        self.fin = fin
        self.reservedBits = reservedBits
        self.opcode = opcode
        self.maskKey = maskKey
        self.payloadLength = payloadLength
    }

    /// RSV1 (RFC 6455 §5.2; claimed by permessage-deflate, RFC 7692 §6).
    @inlinable public var rsv1: Bool { reservedBits.contains(.rsv1) }
    /// RSV2 (RFC 6455 §5.2).
    @inlinable public var rsv2: Bool { reservedBits.contains(.rsv2) }
    /// RSV3 (RFC 6455 §5.2).
    @inlinable public var rsv3: Bool { reservedBits.contains(.rsv3) }

    /// The number of bytes this header occupies on the wire with the minimal length encoding: 2 to 14.
    @inlinable
    public var headerLength: Int {
        FrameHeader.headerLength(payloadLength: payloadLength, masked: maskKey != nil)
    }

    /// The wire size of a header for a payload of `payloadLength` bytes, minimal length encoding (RFC 6455 §5.2).
    @inlinable
    public static func headerLength(payloadLength: Int, masked: Bool) -> Int {
        let extended = payloadLength <= 125 ? 0 : (payloadLength <= 0xFFFF ? 2 : 8)
        return 2 + extended + (masked ? 4 : 0)
    }
}
