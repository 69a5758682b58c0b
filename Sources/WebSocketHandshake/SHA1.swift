/// SHA-1 (FIPS 180-4 §6.1), for `Sec-WebSocket-Accept` only (RFC 6455 §1.3, §4.2.2 item 5.4).
///
/// SHA-1 is broken for collision resistance; the handshake does not rely on it for security (RFC 6455 §10.8:
/// the accept value only proves that the server understood the WebSocket handshake). Do not use it for
/// anything else. Written here so that the module needs no cryptography package.
///
/// ```swift
/// var sha1 = SHA1()
/// sha1.update(Array("abc".utf8))
/// let digest = sha1.finalize()  // 20 bytes: a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
/// ```
struct SHA1: Sendable {
    /// The length of a digest in bytes (160 bits).
    static let digestByteCount = 20

    /// The hash value H(i) (FIPS 180-4 §5.3.1 gives H(0)).
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
        0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0
    )
    /// Bytes of the current 64-byte block that have arrived (fewer than 64 between calls).
    private var block: [UInt8] = []
    /// The message length so far, in bytes. The padding stores it in bits modulo 2^64 (FIPS 180-4 §5.1.1).
    private var messageLength: UInt64 = 0
    /// The 80-word message schedule W (FIPS 180-4 §6.1.2 step 1), kept to avoid an allocation per block.
    private var schedule = [UInt32](repeating: 0, count: 80)

    init() {
        block.reserveCapacity(64)
    }

    /// The digest of `bytes` in one call.
    static func hash(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var sha1 = SHA1()
        sha1.update(bytes)
        return sha1.finalize()
    }

    /// Appends `bytes` to the message; any split of a message into calls gives the same digest.
    mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            block.append(byte)
            messageLength &+= 1
            if block.count == 64 {
                compressBlock()
                block.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Pads the message (FIPS 180-4 §5.1.1) and returns the 20-byte digest, big-endian words H0…H4.
    consuming func finalize() -> [UInt8] {
        let bitLength = messageLength &* 8
        block.append(0x80)
        if block.count > 56 {
            block.append(contentsOf: repeatElement(0, count: 64 - block.count))
            compressBlock()
            block.removeAll(keepingCapacity: true)
        }
        block.append(contentsOf: repeatElement(0, count: 56 - block.count))
        for shift in stride(from: 56, through: 0, by: -8) {
            block.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        compressBlock()

        var digest: [UInt8] = []
        digest.reserveCapacity(Self.digestByteCount)
        for word in [state.0, state.1, state.2, state.3, state.4] {
            digest.append(UInt8(truncatingIfNeeded: word >> 24))
            digest.append(UInt8(truncatingIfNeeded: word >> 16))
            digest.append(UInt8(truncatingIfNeeded: word >> 8))
            digest.append(UInt8(truncatingIfNeeded: word))
        }
        return digest
    }

    /// Processes the 64 bytes in `block` (FIPS 180-4 §6.1.2 steps 1–4).
    private mutating func compressBlock() {
        for t in 0..<16 {
            schedule[t] =
                UInt32(block[4 * t]) << 24 | UInt32(block[4 * t + 1]) << 16 | UInt32(block[4 * t + 2]) << 8
                | UInt32(block[4 * t + 3])
        }
        for t in 16..<80 {
            schedule[t] = rotateLeft(schedule[t - 3] ^ schedule[t - 8] ^ schedule[t - 14] ^ schedule[t - 16], by: 1)
        }

        var (a, b, c, d, e) = state
        for t in 0..<80 {
            // f_t and K_t (FIPS 180-4 §4.1.1, §4.2.1): Ch, Parity, Maj, Parity.
            let f: UInt32
            let k: UInt32
            switch t {
            case 0..<20:
                f = (b & c) | (~b & d)
                k = 0x5A82_7999
            case 20..<40:
                f = b ^ c ^ d
                k = 0x6ED9_EBA1
            case 40..<60:
                f = (b & c) | (b & d) | (c & d)
                k = 0x8F1B_BCDC
            default:
                f = b ^ c ^ d
                k = 0xCA62_C1D6
            }
            let temp = rotateLeft(a, by: 5) &+ f &+ e &+ k &+ schedule[t]
            e = d
            d = c
            c = rotateLeft(b, by: 30)
            b = a
            a = temp
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
    }

    private func rotateLeft(_ word: UInt32, by count: UInt32) -> UInt32 {
        (word << count) | (word >> (32 - count))
    }
}
