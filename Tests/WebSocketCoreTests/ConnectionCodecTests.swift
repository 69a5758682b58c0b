import Testing
import WebSocketCore
import WebSocketTestSupport

/// A toy per-message codec: encoding XORs every byte with 0x55; decoding XORs back and repeats each byte
/// `expansion` times (to exercise the decoded-size limit like a decompression bomb would).
final class XORCodec: MessageCodec {
    let expansion: Int
    let threshold: Int

    init(expansion: Int = 1, threshold: Int = 0) {
        self.expansion = expansion
        self.threshold = threshold
    }

    func decode(
        _ chunk: UnsafeRawBufferPointer, isFinal: Bool, limit: Int,
        output: (UnsafeRawBufferPointer) throws(ProtocolError) -> Void
    ) throws(ProtocolError) {
        var decoded: [UInt8] = []
        for byte in chunk { decoded += [UInt8](repeating: byte ^ 0x55, count: expansion) }
        if decoded.count > limit { throw ProtocolError.messageTooLarge }
        let result = decoded.withUnsafeBytes { raw in Result { () throws(ProtocolError) in try output(raw) } }
        try result.get()
    }

    func encode(_ message: UnsafeRawBufferPointer, kind: MessageKind, body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard message.count >= threshold else { return false }
        let encoded = message.map { $0 ^ 0x55 }
        encoded.withUnsafeBytes { body($0) }
        return true
    }
}

@Suite("Connection: per-message extensions claiming RSV1 (RFC 6455 §9, RFC 7692 §6)")
struct ConnectionCodecTests {
    static func encoded(_ text: String) -> [UInt8] { Array(text.utf8).map { $0 ^ 0x55 } }

    @Test("an RSV1 message is decoded, split in any way, fragmented or not", arguments: [Role.server, .client])
    func decodes(role: Role) {
        let wire = peerFrame(role, .text, Self.encoded("Hello, "), fin: false, rsv: .rsv1)
            + peerFrame(role, .continuation, Self.encoded("world"))
            + peerFrame(role, .binary, [1, 2])  // RSV1 clear: not decoded
        for chunks in [[], [1], [5]] {
            var connection = Connection(role: role, codec: XORCodec())
            let outcome = connection.feed(wire, chunks: chunks)
            #expect(outcome.error == nil)
            #expect(outcome.events == [.message(.text, Array("Hello, world".utf8)), .message(.binary, [1, 2])])
        }
    }

    @Test("decoded text is validated: invalid UTF-8 after decoding fails with 1007")
    func validatesDecodedText() {
        var connection = Connection(role: .client, codec: XORCodec())
        let outcome = connection.feed(unmaskedFrame(.text, [0xFF ^ 0x55], fin: false, rsv: .rsv1))
        #expect(outcome.error == .invalidUTF8)
        // Encoded bytes that are not UTF-8 themselves are fine.
        var ok = Connection(role: .client, codec: XORCodec())
        let encodedAcute: [UInt8] = [0xC3 ^ 0x55, 0xA9 ^ 0x55]
        let events = ok.feed(unmaskedFrame(.text, encodedAcute, rsv: .rsv1)).events
        #expect(events == [.message(.text, [0xC3, 0xA9])])
    }

    @Test("RSV1 on a continuation frame or a control frame fails with 1002")
    func rsv1Placement() {
        var continuation = Connection(role: .client, codec: XORCodec())
        let fragments: [UInt8] = unmaskedFrame(.text, [0x41], fin: false, rsv: .rsv1)
            + unmaskedFrame(.continuation, [0x41], rsv: .rsv1)
        #expect(continuation.feed(fragments).error == .reservedBitsSet)
        var control = Connection(role: .client, codec: XORCodec())
        #expect(control.feed(unmaskedFrame(.ping, [], rsv: .rsv1)).error == .reservedBitsSet)
        #expect(control.closeStatus?.code == .protocolError)
        var noCodec = Connection(role: .client)
        #expect(noCodec.feed(unmaskedFrame(.text, [0x41], rsv: .rsv1)).error == .reservedBitsSet)
    }

    @Test("decoded size is capped by maxMessageLength (1009), whatever the encoded size")
    func decodedLimit() {
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = 1000
        var connection = Connection(role: .client, configuration: configuration, codec: XORCodec(expansion: 100))
        let outcome = connection.feed(unmaskedFrame(.binary, [UInt8](repeating: 0, count: 11), rsv: .rsv1))
        #expect(outcome.error == .messageTooLarge)
        #expect(connection.closeStatus?.code == .messageTooBig)
        // Across chunks: each within the limit alone, together above it.
        var chunked = Connection(role: .client, configuration: configuration, codec: XORCodec(expansion: 100))
        let split = chunked.feed(unmaskedFrame(.binary, [UInt8](repeating: 0, count: 6), fin: false, rsv: .rsv1)
            + unmaskedFrame(.continuation, [UInt8](repeating: 0, count: 6)))
        #expect(split.error == .messageTooLarge)
    }

    @Test("streaming mode delivers decoded pieces")
    func streaming() {
        var configuration = Connection.Configuration()
        configuration.delivery = .streaming
        var connection = Connection(role: .client, configuration: configuration, codec: XORCodec())
        let wire: [UInt8] = unmaskedFrame(.binary, [1, 2], fin: false, rsv: .rsv1) + unmaskedFrame(.continuation, [3])
        let outcome = connection.feed(wire)
        let first: [UInt8] = [1 ^ 0x55, 2 ^ 0x55]
        let second: [UInt8] = [3 ^ 0x55]
        let expected: [OwnedEvent] = [
            .fragment(.binary, first, isFirst: true, isFinal: false),
            .fragment(.binary, second, isFirst: false, isFinal: true),
        ]
        #expect(outcome.events == expected)
    }

    @Test("send encodes with RSV1 unless told not to, below the threshold, or when fragmented")
    func sending() throws {
        var connection = Connection(role: .server, codec: XORCodec(threshold: 3))
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try connection.send(.binary, $0) }
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try connection.send(.binary, $0, encode: false) }
        try [UInt8]([1, 2]).withUnsafeBytes { try connection.send(.binary, $0) }
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try connection.sendFrame(.binary, $0, fin: true) }
        try [UInt8]([7]).withUnsafeBytes { try connection.ping($0) }
        let claimed = FrameParser.Configuration(role: .client, claimedReservedBits: .rsv1)
        let out = try parseAll(connection.takeOutput(), role: .client, configuration: claimed)
        #expect(out.map(\.0.rsv1) == [true, false, false, false, false])
        let xored: [UInt8] = [1 ^ 0x55, 2 ^ 0x55, 3 ^ 0x55]
        #expect(out[0].1 == xored)
        #expect(out[1].1 == [1, 2, 3])
    }

    @Test("a client and a server with codecs round-trip messages")
    func loopback() throws {
        var client = Connection(role: .client, codec: XORCodec())
        var server = Connection(role: .server, codec: XORCodec())
        try Array("über".utf8).withUnsafeBytes { try client.send(.text, $0) }
        #expect(server.feed(client.takeOutput()).events == [.message(.text, Array("über".utf8))])
    }
}
