/// Constants and the `Sec-WebSocket-Accept` computation of the opening handshake (RFC 6455 §4).
///
/// The server side lives in ``UpgradeRequest`` (``UpgradeRequest/init(validating:httpVersion:)``) and the
/// client side in ``ClientHandshake``.
public enum OpeningHandshake {
    /// The GUID that RFC 6455 §1.3 appends to the key before hashing.
    public static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The only protocol version this implementation speaks: `Sec-WebSocket-Version: 13` (RFC 6455 §4.1, §11.6).
    public static let supportedVersion = "13"

    /// The number of bytes a `Sec-WebSocket-Key` decodes to (RFC 6455 §4.1, item 7).
    public static let keyByteCount = 16

    /// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §1.3, §4.2.2 item 5.4):
    /// `base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))`.
    ///
    /// The key is used exactly as sent (after removal of surrounding whitespace by the HTTP layer); it is not
    /// decoded. For the RFC example key `dGhlIHNhbXBsZSBub25jZQ==` the result is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
    /// SHA-1 is computed by this module (FIPS 180-4); it serves interoperability, not security (RFC 6455 §10.8).
    public static func acceptValue(forKey key: String) -> String {
        var sha1 = SHA1()
        sha1.update(key.utf8)
        sha1.update(acceptGUID.utf8)
        return Base64.encode(sha1.finalize())
    }

    /// Whether `key` is a valid `Sec-WebSocket-Key`: canonical padded base64 that decodes to exactly 16 bytes
    /// (RFC 6455 §4.1 item 7, §4.2.1 item 5).
    public static func isValidKey(_ key: some StringProtocol) -> Bool {
        Base64.decode(key)?.count == keyByteCount
    }

    /// Makes a fresh `Sec-WebSocket-Key`: 16 bytes from `generator`, base64-encoded (RFC 6455 §4.1 item 7).
    ///
    /// Pass a seeded generator in tests for a deterministic key; use the system generator otherwise.
    public static func makeKey(using generator: inout some RandomNumberGenerator) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(keyByteCount)
        for _ in 0..<keyByteCount {
            bytes.append(UInt8.random(in: .min ... .max, using: &generator))
        }
        return Base64.encode(bytes)
    }
}

/// An HTTP protocol version as the request line states it (`HTTP/1.1` is `major: 1, minor: 1`).
///
/// `HTTPRequest` does not carry the version, so the server-side validation takes it as a parameter.
public struct HTTPProtocolVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// HTTP/1.0: too old for an upgrade (RFC 6455 §4.1 item 2 requires HTTP/1.1 or higher).
    public static let http1_0 = HTTPProtocolVersion(major: 1, minor: 0)
    /// HTTP/1.1.
    public static let http1_1 = HTTPProtocolVersion(major: 1, minor: 1)

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }

    public var description: String { "HTTP/\(major).\(minor)" }
}
