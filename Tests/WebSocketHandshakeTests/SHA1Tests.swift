import Foundation
import Testing
import WebSocketTestSupport

@testable import WebSocketHandshake

@Suite("SHA-1 (FIPS 180-4) for Sec-WebSocket-Accept")
struct SHA1Tests {
    struct Vector: CustomStringConvertible, Sendable {
        var message: [UInt8]
        var digest: String
        var description: String { "\(message.count) bytes → \(digest)" }
    }

    /// `Tests/Vectors/sha1.txt`: digests from Python's hashlib for every length 0…300 and 100 more.
    static let vectors: [Vector] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Vectors/sha1.txt")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, !line.hasPrefix("#"), let length = Int(fields[0]) else { return nil }
            let message = fields[1] == "-" ? [] : hex(String(fields[1]))
            guard message.count == length else { return nil }
            return Vector(message: message, digest: String(fields[2]))
        }
    }()

    @Test(
        "FIPS 180 examples and the empty message",
        arguments: [
            ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
            ),
            (
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                    + "mnopqrstnopqrstu",
                "a49b2446a02c645bf419f995b67091253a04a259"
            ),
        ]
    )
    func fipsExamples(message: String, digest: String) {
        #expect(hexString(SHA1.hash(message.utf8)) == digest)
    }

    @Test("one million 'a' (FIPS 180 long message), fed in uneven chunks")
    func millionA() {
        var sha1 = SHA1()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 999)
        var remaining = 1_000_000
        while remaining > 0 {
            let count = min(remaining, chunk.count)
            sha1.update(chunk[..<count])
            remaining -= count
        }
        #expect(hexString(sha1.finalize()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test("the vector file is present and complete")
    func vectorFileLoads() {
        #expect(Self.vectors.count == 401)
        #expect(Set(Self.vectors.map(\.message.count)) == Set(0...300))
    }

    @Test("digests match hashlib's for messages of 0…300 bytes, whole and split")
    func hashlibVectors() {
        for vector in Self.vectors {
            #expect(hexString(SHA1.hash(vector.message)) == vector.digest, "\(vector)")
            // A split inside the message must not change the digest.
            var split = SHA1()
            let cut = vector.message.count / 3
            split.update(vector.message[..<cut])
            split.update(vector.message[cut...])
            #expect(hexString(split.finalize()) == vector.digest, "\(vector) cut at \(cut)")
        }
    }

    @Test("RFC 6455 §1.3: SHA-1 of the example key and the GUID, then base64")
    func rfc6455Example() {
        let digest = SHA1.hash(Array("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11".utf8))
        // The RFC gives the digest as the bytes 0xb3 0x7a 0x4f 0x2c 0xc0 0x62 0x4f 0x16 0x90 0xf6 0x46 0x06
        // 0xcf 0x38 0x59 0x45 0xb2 0xbe 0xc4 0xea.
        #expect(hexString(digest) == "b37a4f2cc0624f1690f64606cf385945b2bec4ea")
        #expect(Base64.encode(digest) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(OpeningHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }
}
