/// One WebSocket frame on the wire (RFC 6455 §5.2), built and parsed by hand, independently of
/// `WebSocketCore`'s encoder and parser, so that tests compare our engine with a second implementation.
public struct RawFrame: Equatable, Sendable {
    /// The first byte: FIN, RSV1-3 and the opcode.
    public var first: UInt8
    /// The payload, unmasked.
    public var payload: [UInt8]
    /// The masking key when the frame was masked (client to server).
    public var maskKey: [UInt8]?
    /// The frame's length on the wire: header, key and payload.
    public var wireLength: Int

    public var fin: Bool { self.first & 0x80 != 0 }
    public var rsv1: Bool { self.first & 0x40 != 0 }
    /// The reserved bits as they stand in the first byte.
    public var rsv: UInt8 { self.first & 0x70 }
    public var opcode: UInt8 { self.first & 0x0F }
    public var isMasked: Bool { self.maskKey != nil }

    /// The fixed key of client frames built by tests.
    public static let testMaskKey: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    /// Serialises a frame with the minimal length encoding, masking the payload with `maskKey` when given.
    /// `rsv` holds the reserved bits as they stand in the first byte (`0x40` is RSV1).
    public static func bytes(
        opcode: UInt8,
        _ payload: [UInt8],
        fin: Bool = true,
        rsv: UInt8 = 0,
        maskKey: [UInt8]? = nil
    ) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 0x70) | opcode]
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        if payload.count < 126 {
            bytes.append(maskBit | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            bytes += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            bytes.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: payload.count >> shift)) }
        }
        if let maskKey {
            bytes += maskKey
            bytes += payload.enumerated().map { $0.element ^ maskKey[$0.offset % 4] }
        } else {
            bytes += payload
        }
        return bytes
    }

    /// Parses the complete frame at the start of `bytes` (any length encoding, masked or not); nil while
    /// incomplete.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> RawFrame? {
        let bytes = Array(bytes)
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        var maskKey: [UInt8]?
        if bytes[1] & 0x80 != 0 {
            guard bytes.count >= offset + 4 else { return nil }
            maskKey = Array(bytes[offset..<(offset + 4)])
            offset += 4
        }
        guard bytes.count >= offset + length else { return nil }
        var payload = Array(bytes[offset..<(offset + length)])
        if let maskKey {
            for index in payload.indices { payload[index] ^= maskKey[index % 4] }
        }
        return RawFrame(first: bytes[0], payload: payload, maskKey: maskKey, wireLength: offset + length)
    }

    /// Parses every complete frame at the start of `bytes`; the incomplete rest is left out.
    public static func parseAll<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [RawFrame] {
        var rest = Array(bytes)[...]
        var frames: [RawFrame] = []
        while let frame = parse(rest) {
            frames.append(frame)
            rest = rest.dropFirst(frame.wireLength)
        }
        return frames
    }
}

/// A client frame (masked with ``RawFrame/testMaskKey``, RFC 6455 §5.3).
public func maskedFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0) -> [UInt8] {
    RawFrame.bytes(opcode: opcode, payload, fin: fin, rsv: rsv, maskKey: RawFrame.testMaskKey)
}

/// A server frame (unmasked).
public func unmaskedFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0) -> [UInt8] {
    RawFrame.bytes(opcode: opcode, payload, fin: fin, rsv: rsv)
}

/// A close frame's payload: the code in network byte order, then the reason.
public func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
    closePayload(code, Array(reason.utf8))
}

/// A close frame's payload with a reason given as bytes (which may be invalid UTF-8).
public func closePayload(_ code: UInt16, _ reason: [UInt8]) -> [UInt8] {
    [UInt8(code >> 8), UInt8(code & 0xFF)] + reason
}
