import HubProtocol
import Testing

/// The byte examples of HubProtocol.md ("MessagePack (MsgPack) encoding" and "JSON Encoding"). Each MessagePack
/// example decodes to the message the spec describes and that message encodes back to exactly the spec's bytes.
/// (The spec's comment on the error Completion says 0x94; its bytes say 0x95, which is right: 5 elements.)
@Suite struct SpecExampleTests {
    static func hex(_ text: String) -> [UInt8] {
        text.split(separator: " ").map { UInt8($0.dropFirst(2), radix: 16)! }
    }

    static let examples: [(String, HubMessage)] = [
        (
            "0x96 0x01 0x80 0xa3 0x78 0x79 0x7a 0xa6 0x6d 0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
            .invocation(.init(invocationId: "xyz", target: "method", arguments: [.messagePack(42)]))
        ),
        (
            "0x96 0x01 0x80 0xc0 0xa6 0x6d 0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
            .invocation(.init(invocationId: nil, target: "method", arguments: [.messagePack(42)]))
        ),
        (
            "0x96 0x04 0x80 0xa3 0x78 0x79 0x7a 0xa6 0x6d 0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
            .streamInvocation(.init(invocationId: "xyz", target: "method", arguments: [.messagePack(42)]))
        ),
        ("0x94 0x02 0x80 0xa3 0x78 0x79 0x7a 0x2a", .streamItem(.init(invocationId: "xyz", item: .messagePack(42)))),
        (
            "0x95 0x03 0x80 0xa3 0x78 0x79 0x7a 0x01 0xa5 0x45 0x72 0x72 0x6f 0x72",
            .completion(.init(invocationId: "xyz", result: .error("Error")))
        ),
        ("0x94 0x03 0x80 0xa3 0x78 0x79 0x7a 0x02", .completion(.init(invocationId: "xyz", result: .void))),
        (
            "0x95 0x03 0x80 0xa3 0x78 0x79 0x7a 0x03 0x2a",
            .completion(.init(invocationId: "xyz", result: .value(.messagePack(42))))
        ),
        ("0x93 0x05 0x80 0xa3 0x78 0x79 0x7a", .cancelInvocation(.init(invocationId: "xyz"))),
        ("0x91 0x06", .ping),
        ("0x93 0x07 0xa3 0x78 0x79 0x7a 0xc3", .close(.init(error: "xyz", allowReconnect: true))),
        ("0x92 0x08 0xcc 0x24", .ack(sequenceId: 36)),
        ("0x92 0x09 0xcc 0x13", .sequence(sequenceId: 19)),
        (
            "0x96 0x01 0x82 0xa1 0x78 0xa1 0x79 0xa1 0x7a 0xa1 0x7a 0xa3 0x78 0x79 0x7a 0xa6 0x6d 0x65 0x74 0x68 0x6f "
                + "0x64 0x91 0x2a 0x90",
            .invocation(
                .init(
                    headers: ["x": "y", "z": "z"], invocationId: "xyz", target: "method", arguments: [.messagePack(42)])
            )
        ),
    ]

    @Test(arguments: 0..<examples.count)
    func messagePackExampleDecodesAndEncodesBack(index: Int) throws {
        let (text, message) = Self.examples[index]
        let body = Self.hex(text)
        let codec = MessagePackHubProtocol()
        #expect(try codec.decodeMessage(body[...]) == message)
        let framed = try codec.encode(message)
        // Our Ack/Sequence ids use the shortest format (fixint), the spec's use uint8 ("any unsigned int size is
        // fine"): those two compare decoded, the rest byte for byte.
        if case .ack = message { return }
        if case .sequence = message { return }
        #expect(framed == [UInt8(body.count)] + body)
    }

    @Test func closeWithoutAllowReconnectDecodes() throws {
        // [7, "xyz"]: the two-element form of the spec.
        let message = try MessagePackHubProtocol().decodeMessage(Self.hex("0x92 0x07 0xa3 0x78 0x79 0x7a")[...])
        #expect(message == .close(.init(error: "xyz", allowReconnect: false)))
    }

    @Test func ackAndSequenceEncodeShortest() throws {
        #expect(try MessagePackHubProtocol().encode(.ack(sequenceId: 36)) == [0x03, 0x92, 0x08, 0x24])
        #expect(
            try MessagePackHubProtocol().encode(.sequence(sequenceId: 1394)) == [0x05, 0x92, 0x09, 0xCD, 0x05, 0x72])
    }

    @Test func pingIsAlwaysExactly0x91_0x06() throws {
        #expect(try MessagePackHubProtocol().encode(.ping) == [0x02, 0x91, 0x06])
    }

    @Test func varIntExamplesOfTheSpec() throws {
        // 0x35 = 53; 0x80 0x29 = 5248; the largest, 0x7fffffff = FF FF FF FF 07.
        #expect(try MessagePackHubProtocol.readVarInt([0x35])! == (53, 1))
        #expect(try MessagePackHubProtocol.readVarInt([0x80, 0x29])! == (5248, 2))
        #expect(try MessagePackHubProtocol.readVarInt([0xFF, 0xFF, 0xFF, 0xFF, 0x07])! == (Int(Int32.max), 5))
        var bytes: [UInt8] = []
        MessagePackHubProtocol.writeVarInt(5248, into: &bytes)
        MessagePackHubProtocol.writeVarInt(Int(Int32.max), into: &bytes)
        #expect(bytes == [0x80, 0x29, 0xFF, 0xFF, 0xFF, 0xFF, 0x07])
    }

    @Test func binaryFramingExampleOfTheSpec() throws {
        // "Hello\nWorld" and 0x01 0x02 framed: 0x0B, the 11 bytes, 0x02, 0x01 0x02.
        let frame: [UInt8] = [0x0B] + Array("Hello\nWorld".utf8) + [0x02, 0x01, 0x02]
        #expect(try MessagePackHubProtocol.readVarInt(frame)! == (11, 1))
        #expect(try MessagePackHubProtocol.readVarInt(frame[12...])! == (2, 1))
    }

    static let jsonExamples: [(String, HubMessage)] = [
        (
            #"{"type":1,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#,
            .invocation(.init(invocationId: "123", target: "Send", arguments: [.json(42), .json("Test Message")]))
        ),
        (
            #"{"type":1,"target":"Send","arguments":[42,"Test Message"]}"#,
            .invocation(.init(invocationId: nil, target: "Send", arguments: [.json(42), .json("Test Message")]))
        ),
        (
            #"{"type":1,"invocationId":"123","target":"Send","arguments":[42],"streamIds":["1"]}"#,
            .invocation(.init(invocationId: "123", target: "Send", arguments: [.json(42)], streamIds: ["1"]))
        ),
        (
            #"{"type":4,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#,
            .streamInvocation(
                .init(invocationId: "123", target: "Send", arguments: [.json(42), .json("Test Message")]))
        ),
        (#"{"type":2,"invocationId":"123","item":42}"#, .streamItem(.init(invocationId: "123", item: .json(42)))),
        (#"{"type":3,"invocationId":"123"}"#, .completion(.init(invocationId: "123", result: .void))),
        (
            #"{"type":3,"invocationId":"123","result":42}"#,
            .completion(.init(invocationId: "123", result: .value(.json(42))))
        ),
        (
            #"{"type":3,"invocationId":"123","error":"It didn't work!"}"#,
            .completion(.init(invocationId: "123", result: .error("It didn't work!")))
        ),
        (#"{"type":5,"invocationId":"123"}"#, .cancelInvocation(.init(invocationId: "123"))),
        (#"{"type":6}"#, .ping),
        (#"{"type":7}"#, .close(.init())),
        (
            #"{"type":7,"error":"Connection closed because of an error!"}"#,
            .close(.init(error: "Connection closed because of an error!"))
        ),
        (
            #"{"type":7,"error":"Connection closed because of an error!","allowReconnect":true}"#,
            .close(.init(error: "Connection closed because of an error!", allowReconnect: true))
        ),
        (#"{"type":8,"sequenceId":1394}"#, .ack(sequenceId: 1394)),
        (#"{"type":9,"sequenceId":1234}"#, .sequence(sequenceId: 1234)),
        (
            #"{"type":1,"headers":{"Foo":"Bar"},"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#,
            .invocation(
                .init(
                    headers: ["Foo": "Bar"], invocationId: "123", target: "Send",
                    arguments: [.json(42), .json("Test Message")]))
        ),
    ]

    @Test(arguments: 0..<jsonExamples.count)
    func jsonExampleDecodesAndEncodesBack(index: Int) throws {
        let (text, message) = Self.jsonExamples[index]
        let codec = JSONHubProtocol()
        let frame = Array(text.utf8) + [0x1E]
        #expect(try codec.decode(frame: frame) == [message])
        #expect(try codec.encode(message) == frame)
    }

    @Test func jsonWithWhitespaceAsInTheSpecDecodes() throws {
        let text = "{\n    \"type\": 2,\n    \"invocationId\": \"123\",\n    \"item\": 42\n}\u{1E}"
        #expect(
            try JSONHubProtocol().decode(frame: Array(text.utf8)) == [
                .streamItem(.init(invocationId: "123", item: .json(42)))
            ])
    }
}
