/// Payload masking (RFC 6455 §5.3): `transformed[i] = original[i] ^ key[(keyOffset + i) % 4]`.
///
/// Masking and unmasking are the same operation. The implementation XORs 64 bytes per iteration with SIMD
/// vectors (unaligned loads and stores, so any alignment is fine), then 8-byte words, then single bytes; the
/// result is identical to the byte-by-byte definition for every length, alignment and key offset.
public enum Masking {
    /// XORs `buffer` in place with `key`.
    ///
    /// - Parameters:
    ///   - key: the masking key.
    ///   - buffer: the bytes to transform in place; the caller owns them. May be empty.
    ///   - keyOffset: the index into the key of the first byte of `buffer`, i.e. the number of payload bytes
    ///     of this frame that came before `buffer`, modulo 4. Values outside `0...3` are reduced modulo 4.
    /// - Returns: the key offset for the byte that follows `buffer`, so that a payload split into several
    ///   buffers can be masked piece by piece.
    @discardableResult
    public static func apply(_ key: MaskKey, to buffer: UnsafeMutableRawBufferPointer, keyOffset: Int = 0) -> Int {
        let offset = keyOffset & 3
        guard let base = buffer.baseAddress, buffer.count > 0 else { return offset }
        let count = buffer.count

        // Rotate the key so that lane i of every 4-byte group lines up with buffer byte i: key byte `offset`
        // moves to the lowest 8 bits, which `littleEndian` puts first in memory on any platform; then splat
        // the word over 16 bytes (one shift and one broadcast instead of sixteen byte lanes).
        let rotated = key.packed >> UInt32(offset * 8) | key.packed << UInt32((4 - offset) * 8 & 31)
        let lane = unsafeBitCast(SIMD4<UInt32>(repeating: rotated.littleEndian), to: SIMD16<UInt8>.self)

        var index = 0
        while count - index >= 64 {
            let p = base + index
            let a = p.loadUnaligned(as: SIMD16<UInt8>.self) ^ lane
            let b = p.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self) ^ lane
            let c = p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt8>.self) ^ lane
            let d = p.loadUnaligned(fromByteOffset: 48, as: SIMD16<UInt8>.self) ^ lane
            p.storeBytes(of: a, as: SIMD16<UInt8>.self)
            p.storeBytes(of: b, toByteOffset: 16, as: SIMD16<UInt8>.self)
            p.storeBytes(of: c, toByteOffset: 32, as: SIMD16<UInt8>.self)
            p.storeBytes(of: d, toByteOffset: 48, as: SIMD16<UInt8>.self)
            index += 64
        }
        while count - index >= 16 {
            let p = base + index
            p.storeBytes(of: p.loadUnaligned(as: SIMD16<UInt8>.self) ^ lane, as: SIMD16<UInt8>.self)
            index += 16
        }
        let lane8 = lane.lowHalf
        while count - index >= 8 {
            let p = base + index
            p.storeBytes(of: p.loadUnaligned(as: SIMD8<UInt8>.self) ^ lane8, as: SIMD8<UInt8>.self)
            index += 8
        }
        // index is a multiple of 4 here, so the tail starts at lane 0.
        while index < count {
            let p = base + index
            p.storeBytes(of: p.load(as: UInt8.self) ^ lane[index & 3], as: UInt8.self)
            index += 1
        }
        return (offset + count) & 3
    }
}
