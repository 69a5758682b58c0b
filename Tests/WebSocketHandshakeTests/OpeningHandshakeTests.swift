import Testing
import WebSocketTestSupport

@testable import WebSocketHandshake

@Suite("Sec-WebSocket-Accept and keys (RFC 6455 §1.3, §4.1)")
struct OpeningHandshakeTests {
    @Test("RFC 6455 §1.3 example key gives the RFC's accept value")
    func rfcExample() {
        #expect(OpeningHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("the accept value depends on the key")
    func differentKeys() {
        #expect(
            OpeningHandshake.acceptValue(forKey: "AAAAAAAAAAAAAAAAAAAAAA==")
                != OpeningHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==")
        )
    }

    @Test(
        "base64 encodes RFC 4648 §10 test vectors",
        arguments: [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ]
    )
    func base64Vectors(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test("base64 round-trips every byte value")
    func base64AllBytes() {
        let bytes = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
    }

    @Test(
        "base64 decoding rejects non-canonical input",
        arguments: ["Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zg==Zg==", "Zm-v", "=Zm9"]
    )
    func base64Rejects(input: String) {
        #expect(Base64.decode(input) == nil)
    }

    @Test("a key is valid only if it decodes to exactly 16 bytes")
    func keyValidity() {
        #expect(OpeningHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ=="))
        #expect(!OpeningHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZQ"))  // unpadded
        #expect(!OpeningHandshake.isValidKey("dGhlIHNhbXBsZSBub25jZXg="))  // 17 bytes
        #expect(!OpeningHandshake.isValidKey("dGhlIHNhbXBsZSBub25j"))  // 15 bytes
        #expect(!OpeningHandshake.isValidKey("not base64 at all!!!!!!="))
        #expect(!OpeningHandshake.isValidKey(""))
    }

    @Test("generated keys are valid, random, and reproducible with a seeded generator")
    func generatedKeys() {
        var first = SeededGenerator(seed: 42)
        var second = SeededGenerator(seed: 42)
        var system = SystemRandomNumberGenerator()
        let a = OpeningHandshake.makeKey(using: &first)
        let b = OpeningHandshake.makeKey(using: &second)
        let c = OpeningHandshake.makeKey(using: &first)
        #expect(OpeningHandshake.isValidKey(a))
        #expect(a == b)
        #expect(a != c)
        #expect(OpeningHandshake.isValidKey(OpeningHandshake.makeKey(using: &system)))
    }

    @Test("HTTP versions order")
    func versions() {
        #expect(HTTPProtocolVersion.http1_0 < .http1_1)
        #expect(HTTPProtocolVersion(major: 2, minor: 0) > .http1_1)
        #expect(HTTPProtocolVersion.http1_1.description == "HTTP/1.1")
    }
}
