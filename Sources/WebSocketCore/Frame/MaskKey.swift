/// A 4-byte masking key (RFC 6455 §5.3).
///
/// Byte `i` of a masked payload is XORed with key byte `i % 4`. Bytes are kept in wire order.
public struct MaskKey: Sendable, Hashable {
    /// The key bytes in wire order, as one value: byte 0 in the lowest 8 bits.
    @usableFromInline
    internal var packed: UInt32

    /// Creates a key from its four bytes in wire order.
    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        packed = UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16 | UInt32(b3) << 24
    }

    /// Key byte `index % 4`, in wire order.
    @inlinable
    public subscript(index: Int) -> UInt8 { UInt8(truncatingIfNeeded: packed >> UInt32((index & 3) * 8)) }

    /// The four key bytes in wire order.
    public var bytes: [UInt8] { [self[0], self[1], self[2], self[3]] }
}

/// A source of masking keys for frames a client sends.
///
/// RFC 6455 §5.3 requires each key to be freshly chosen and unpredictable ("derived from a strong source of
/// entropy"). The default, ``SystemRandomMaskKeyGenerator``, uses the operating system's random source. Tests
/// inject a deterministic generator to make masked output reproducible.
public protocol MaskKeyGenerator {
    /// Returns the key for the next frame.
    mutating func next() -> MaskKey
}

/// Draws masking keys from `SystemRandomNumberGenerator` (the OS's cryptographically secure source), two keys
/// per 64-bit draw.
public struct SystemRandomMaskKeyGenerator: MaskKeyGenerator, Sendable {
    private var generator = SystemRandomNumberGenerator()
    private var spare: UInt32? = nil

    public init() {}

    public mutating func next() -> MaskKey {
        let word: UInt32
        if let spare {
            word = spare
            self.spare = nil
        } else {
            let draw = generator.next()
            word = UInt32(truncatingIfNeeded: draw)
            spare = UInt32(truncatingIfNeeded: draw >> 32)
        }
        var key = MaskKey(0, 0, 0, 0)
        key.packed = word
        return key
    }
}
