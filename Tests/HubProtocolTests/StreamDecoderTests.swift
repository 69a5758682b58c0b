import HubProtocol
import Testing
import WebSocketTestSupport

@Suite struct StreamDecoderTests {
    static func frame(_ codec: AnyCodec) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for message in everyMessage { try codec.encode(message, &bytes) }
        return bytes
    }

    static func format(_ codec: AnyCodec) -> HubStreamDecoder.Format { codec == .json ? .json : .messagePack }

    @Test(arguments: [AnyCodec.json, .messagePack])
    func anySplitGivesTheSameMessages(codec: AnyCodec) throws {
        let bytes = try Self.frame(codec)
        var random = SeededGenerator(seed: 7)
        for _ in 0..<50 {
            var decoder = HubStreamDecoder(format: Self.format(codec))
            var messages: [HubMessage] = []
            var index = 0
            while index < bytes.count {
                let length = min(bytes.count - index, Int.random(in: 1...40, using: &random))
                try decoder.decode(bytes[index..<index + length], into: &messages)
                index += length
            }
            #expect(messages == everyMessage)
            #expect(decoder.isAtMessageBoundary)
        }
        // One byte at a time.
        var decoder = HubStreamDecoder(format: Self.format(codec))
        var messages: [HubMessage] = []
        for byte in bytes { try decoder.decode([byte], into: &messages) }
        #expect(messages == everyMessage)
    }

    @Test func incompleteTailWaitsAndIsBounded() throws {
        var decoder = HubStreamDecoder(format: .json, limits: .init(maximumMessageSize: 16))
        var messages: [HubMessage] = []
        try decoder.decode(Array(#"{"type":6}"#.utf8), into: &messages)
        #expect(messages.isEmpty)
        #expect(!decoder.isAtMessageBoundary)
        try decoder.decode([0x1E], into: &messages)
        #expect(messages == [.ping])
        #expect(decoder.isAtMessageBoundary)
        do {
            try decoder.decode(Array(repeating: 0x20, count: 17), into: &messages)
            Issue.record("an unterminated tail above the limit was kept")
        } catch {
            #expect(error.code == .messageTooLarge)
            #expect(decoder.bufferedByteCount == 0)
        }
        // Broken for good: the same error again.
        #expect(throws: HubProtocolError.self) {
            try decoder.decode(Array(#"{"type":6}"#.utf8) + [0x1E], into: &messages)
        }
    }

    @Test func messagePackLengthAboveTheLimitFailsBeforeTheBody() throws {
        var decoder = HubStreamDecoder(format: .messagePack, limits: .init(maximumMessageSize: 100))
        var messages: [HubMessage] = []
        try decoder.decode([0x02, 0x91], into: &messages)
        try decoder.decode([0x06, 0x80], into: &messages)
        #expect(messages == [.ping])
        do {
            try decoder.decode([0x01], into: &messages)  // 0x80 0x01 = 128 > 100
            Issue.record("accepted")
        } catch {
            #expect(error.code == .messageTooLarge)
        }
    }

    @Test func invalidVarIntIsRefusedWithoutWaitingForMore() {
        var decoder = HubStreamDecoder(format: .messagePack)
        var messages: [HubMessage] = []
        #expect(throws: HubProtocolError.self) { try decoder.decode([0x80, 0x80, 0x80, 0x80, 0x80], into: &messages) }
    }

    @Test func messagesBeforeABadOneAreDelivered() {
        var decoder = HubStreamDecoder(format: .json)
        var messages: [HubMessage] = []
        let bytes = Array(#"{"type":6}"#.utf8) + [0x1E] + Array(#"{"type":77}"#.utf8) + [0x1E]
        #expect(throws: HubProtocolError.self) { try decoder.decode(bytes, into: &messages) }
        #expect(messages == [.ping])
    }
}
