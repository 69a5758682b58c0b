/// Writes frame headers into caller storage (RFC 6455 §5.2).
///
/// The encoder writes only the 2-14 header bytes, so that a payload can follow in a separate (vectored) write
/// without being copied. It always uses the minimal payload length encoding. It never allocates.
public enum FrameEncoder {
    /// The largest header: 2 bytes, a 64-bit extended length and a masking key.
    public static let maxHeaderLength = 14

    /// Writes `header` to the start of `buffer`.
    ///
    /// - Parameters:
    ///   - header: the header to write; `payloadLength` must be `>= 0`.
    ///   - buffer: caller-owned storage of at least `header.headerLength` bytes (``maxHeaderLength`` always
    ///     suffices).
    /// - Returns: the number of bytes written, `header.headerLength`.
    /// - Precondition: `buffer.count >= header.headerLength` and `header.payloadLength >= 0`; both are caller
    ///   errors, never input-derived.
    @inlinable
    @discardableResult
    public static func writeHeader(_ header: FrameHeader, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = header.headerLength
        precondition(header.payloadLength >= 0, "negative payload length")
        precondition(buffer.count >= length, "buffer too small for a \(length)-byte frame header")
        let first = (header.fin ? 0x80 : 0) | header.reservedBits.rawValue | header.opcode.rawValue
        let maskBit: UInt8 = header.maskKey == nil ? 0 : 0x80
        buffer[0] = first
        var index: Int
        let payloadLength = header.payloadLength
        if payloadLength <= 125 {
            buffer[1] = maskBit | UInt8(truncatingIfNeeded: payloadLength)
            index = 2
        } else if payloadLength <= 0xFFFF {
            buffer[1] = maskBit | 126
            buffer[2] = UInt8(truncatingIfNeeded: payloadLength >> 8)
            buffer[3] = UInt8(truncatingIfNeeded: payloadLength)
            index = 4
        } else {
            buffer[1] = maskBit | 127
            let value = UInt64(payloadLength)
            for i in 0..<8 {
                buffer[2 + i] = UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * i))
            }
            index = 10
        }
        if let key = header.maskKey {
            buffer[index] = key[0]
            buffer[index + 1] = key[1]
            buffer[index + 2] = key[2]
            buffer[index + 3] = key[3]
            index += 4
        }
        return index
    }
}
