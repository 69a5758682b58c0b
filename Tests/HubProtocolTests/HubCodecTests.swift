import HubProtocol
import Testing
import WebSocketTestSupport

/// Messages of every type, with and without headers, whose values are representable in both encodings.
let everyMessage: [HubMessage] = [
    .invocation(.init(invocationId: "1", target: "Add", arguments: [.json(40), .json(2)])),
    .invocation(.init(headers: ["traceparent": "00-ab-cd-01"], invocationId: nil, target: "Fire", arguments: [])),
    .invocation(.init(invocationId: "2", target: "Upload", arguments: [.json("x")], streamIds: ["s1", "s2"])),
    .streamItem(.init(invocationId: "3", item: .json(["a": [1, 2.5, nil, true]]))),
    .streamItem(.init(headers: ["h": "v"], invocationId: "3", item: .json(nil))),
    .completion(.init(invocationId: "4", result: .void)),
    .completion(.init(invocationId: "4", result: .value(.json(nil)))),
    .completion(.init(invocationId: "4", result: .value(.json([1, "two"])))),
    .completion(.init(headers: ["a": "b"], invocationId: "4", result: .error("It didn't work!"))),
    .streamInvocation(.init(invocationId: "5", target: "Counter", arguments: [.json(3)])),
    .streamInvocation(.init(headers: ["x": "y"], invocationId: "5", target: "C", arguments: [], streamIds: ["u"])),
    .cancelInvocation(.init(invocationId: "6")),
    .cancelInvocation(.init(headers: ["k": ""], invocationId: "6")),
    .ping,
    .close(.init()),
    .close(.init(error: "Server shutting down", allowReconnect: true)),
    .close(.init(error: nil, allowReconnect: true)),
    .ack(sequenceId: 0),
    .ack(sequenceId: Int64.max),
    .sequence(sequenceId: 1),
]

func jsonErrorCode(_ text: String) -> HubProtocolError.Code? {
    do {
        _ = try JSONHubProtocol().decode(frame: Array(text.utf8))
        return nil
    } catch {
        return error.code
    }
}

func messagePackErrorCode(_ bytes: [UInt8], limits: HubProtocolLimits = .default) -> HubProtocolError.Code? {
    do {
        _ = try MessagePackHubProtocol(limits: limits).decode(frame: bytes)
        return nil
    } catch {
        return error.code
    }
}

@Suite struct HubCodecTests {
    @Test(arguments: 0..<everyMessage.count)
    func everyMessageRoundTripsInBothProtocols(index: Int) throws {
        let message = everyMessage[index]
        let json = JSONHubProtocol()
        let jsonBytes = try json.encode(message)
        #expect(jsonBytes.last == 0x1E)
        #expect(try json.decode(frame: jsonBytes) == [message])
        let messagePack = MessagePackHubProtocol()
        let messagePackBytes = try messagePack.encode(message)
        #expect(try messagePack.decode(frame: messagePackBytes) == [message])
    }

    @Test func severalMessagesPerFrameInOrder() throws {
        for codec in [AnyCodec.json, .messagePack] {
            var frame: [UInt8] = []
            for message in everyMessage { try codec.encode(message, &frame) }
            #expect(try codec.decode(frame) == everyMessage)
        }
    }

    @Test func encodeOnceForManyRecipients() throws {
        // One message with a typed argument: each protocol serializes it once into its own buffer.
        struct Payload: Codable, Sendable {
            var text: String
            var bytes: [UInt8]
        }
        let message = HubMessage.invocation(
            .init(invocationId: nil, target: "send", arguments: [HubValue(Payload(text: "hi", bytes: [1, 2]))]))
        let json = try JSONHubProtocol().encode(message)
        let messagePack = try MessagePackHubProtocol().encode(message)
        #expect(
            String(decoding: json, as: UTF8.self)
                == #"{"type":1,"target":"send","arguments":[{"text":"hi","bytes":"AQI="}]}\#u{1E}"#)
        var expected: [UInt8] = [0x1E, 0x96, 0x01, 0x80, 0xC0, 0xA4]
        expected += Array("send".utf8)
        expected += [0x91, 0x82, 0xA4] + Array("text".utf8)
        expected += [0xA2] + Array("hi".utf8)
        expected += [0xA5] + Array("bytes".utf8)
        expected += [0xC4, 0x02, 0x01, 0x02, 0x90]
        #expect(messagePack == expected)
        // A decoded argument reads back as the typed value in both.
        guard case .invocation(let fromJSON) = try JSONHubProtocol().decode(frame: json)[0],
            case .invocation(let fromMessagePack) = try MessagePackHubProtocol().decode(frame: messagePack)[0]
        else {
            Issue.record("not invocations")
            return
        }
        #expect(try fromJSON.arguments[0].decode(Payload.self).bytes == [1, 2])
        #expect(try fromMessagePack.arguments[0].decode(Payload.self).bytes == [1, 2])
    }

    @Test func encodingAppendsToTheCallersBufferAndLeavesItIntactOnError() throws {
        var buffer: [UInt8] = [0xAA]
        try JSONHubProtocol().encode(.ping, into: &buffer)
        #expect(buffer == [0xAA] + Array(#"{"type":6}"#.utf8) + [0x1E])
        let bad = HubMessage.streamItem(.init(invocationId: "1", item: .json(.double(.nan))))
        #expect(throws: HubProtocolError.self) { try JSONHubProtocol().encode(bad, into: &buffer) }
        #expect(buffer == [0xAA] + Array(#"{"type":6}"#.utf8) + [0x1E])
        struct Failing: Encodable, Sendable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(0, .init(codingPath: [], debugDescription: "no"))
            }
        }
        var binary: [UInt8] = [0xBB]
        let failing = HubMessage.completion(.init(invocationId: "1", result: .value(HubValue(Failing()))))
        #expect(throws: HubProtocolError.self) { try MessagePackHubProtocol().encode(failing, into: &binary) }
        #expect(binary == [0xBB])
    }

    @Test func longMessagesGetLongerLengthPrefixes() throws {
        let codec = MessagePackHubProtocol(limits: .init(maximumMessageSize: 1 << 20))
        for size in [100, 127, 128, 20_000, 300_000] {
            let message = HubMessage.streamItem(
                .init(invocationId: "1", item: .messagePack(.binary(Array(repeating: 1, count: size)))))
            let bytes = try codec.encode(message)
            #expect(try codec.decode(frame: bytes) == [message])
        }
    }

    @Test func messagesBeforeABadOneAreKept() {
        var messages: [HubMessage] = []
        let frame =
            Array(#"{"type":6}"#.utf8) + [0x1E] + Array(#"{"type":99}"#.utf8) + [0x1E] + Array(#"{"type":6}"#.utf8) + [
                0x1E
            ]
        #expect(throws: HubProtocolError.self) { try JSONHubProtocol().decode(frame: frame, into: &messages) }
        #expect(messages == [.ping])
        var binary: [HubMessage] = []
        #expect(throws: HubProtocolError.self) {
            try MessagePackHubProtocol().decode(frame: [0x02, 0x91, 0x06, 0x02, 0x91, 0x0A], into: &binary)
        }
        #expect(binary == [.ping])
    }

    @Test func jsonFrameWithoutFinalSeparatorIsRefusedWhole() {
        var messages: [HubMessage] = []
        let frame = Array(#"{"type":6}"#.utf8) + [0x1E] + Array(#"{"type":6}"#.utf8)
        #expect(throws: HubProtocolError.self) { try JSONHubProtocol().decode(frame: frame, into: &messages) }
        #expect(messages.isEmpty)
    }

    static let jsonBadInputs: [(String, HubProtocolError.Code)] = [
        (#"{"type":6}"#, HubProtocolError.Code.missingRecordSeparator),
        ("\u{1E}", .emptyMessage),
        (#"{"type":6}\#u{1E}\#u{1E}"#, .emptyMessage),
        (#"{"type":6\#u{1E}"#, .malformedJSON),
        (#"{"type":0}\#u{1E}"#, .unknownMessageType),
        (#"{"type":10}\#u{1E}"#, .unknownMessageType),
        (#"{"type":-1}\#u{1E}"#, .unknownMessageType),
        (#"{"type":1.0}\#u{1E}"#, .wrongFieldType),
        (#"{"type":null}\#u{1E}"#, .wrongFieldType),
        (#"{}\#u{1E}"#, .missingField),
        (#""ping"\#u{1E}"#, .invalidMessage),
        (#"{"type":1,"target":"x"}\#u{1E}"#, .missingField),
        (#"{"type":1,"target":"x","arguments":{}}\#u{1E}"#, .wrongFieldType),
        (#"{"type":1,"target":"x","arguments":[],"invocationId":5}\#u{1E}"#, .wrongFieldType),
        (#"{"type":1,"target":"x","arguments":[],"streamIds":[1]}\#u{1E}"#, .wrongFieldType),
        (#"{"type":1,"target":"x","arguments":[],"headers":{"a":1}}\#u{1E}"#, .wrongFieldType),
        (#"{"type":1,"target":"x","arguments":[],"headers":[]}\#u{1E}"#, .wrongFieldType),
        (#"{"type":4,"target":"x","arguments":[]}\#u{1E}"#, .missingField),
        (#"{"type":2,"invocationId":"1"}\#u{1E}"#, .missingField),
        (#"{"type":2,"item":1}\#u{1E}"#, .missingField),
        (#"{"type":3,"invocationId":"1","result":1,"error":"e"}\#u{1E}"#, .resultAndError),
        (#"{"type":3,"invocationId":"1","error":7}\#u{1E}"#, .wrongFieldType),
        (#"{"type":5}\#u{1E}"#, .missingField),
        (#"{"type":7,"allowReconnect":"yes"}\#u{1E}"#, .wrongFieldType),
        (#"{"type":7,"error":1}\#u{1E}"#, .wrongFieldType),
        (#"{"type":8}\#u{1E}"#, .missingField),
        (#"{"type":9,"sequenceId":-1}\#u{1E}"#, .wrongFieldType),
        (#"{"type":9,"sequenceId":1.5}\#u{1E}"#, .wrongFieldType),
    ]

    @Test(arguments: jsonBadInputs)
    func jsonBadInput(text: String, code: HubProtocolError.Code) {
        #expect(jsonErrorCode(text) == code, "\(text)")
    }

    @Test func jsonErrorsNameTheField() {
        do {
            _ = try JSONHubProtocol().decode(frame: Array((#"{"type":1,"arguments":[]}\#u{1E}"#).utf8))
            Issue.record("accepted")
        } catch {
            #expect(error.field == "target")
            #expect(error.description.contains("target"))
        }
    }

    @Test func jsonLeniencyOfTheShippedPeers() throws {
        // Unknown fields ignored, null invocationId = non-blocking, Ping headers ignored, null headers.
        let text =
            #"{"type":1,"invocationId":null,"target":"x","arguments":[],"new":{"a":[1]},"headers":null}"#
            + "\u{1E}" + #"{"type":6,"headers":{"a":"b"}}\#u{1E}"#
        #expect(
            try JSONHubProtocol().decode(frame: Array(text.utf8)) == [
                .invocation(.init(invocationId: nil, target: "x", arguments: [])), .ping,
            ])
    }

    @Test func jsonMessageSizeLimit() {
        let codec = JSONHubProtocol(limits: .init(maximumMessageSize: 20))
        let small = Array(#"{"type":6}"#.utf8) + [0x1E]
        let large = Array(#"{"type":6,"padding":"0123456789"}"#.utf8) + [0x1E]
        #expect((try? codec.decode(frame: small)) == [.ping])
        do {
            _ = try codec.decode(frame: small + large)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .messageTooLarge)
        }
    }

    @Test func messagePackBadInput() {
        #expect(messagePackErrorCode([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]) == .invalidVarInt)
        #expect(messagePackErrorCode([0x80, 0x80, 0x80, 0x80, 0x80]) == .invalidVarInt)
        #expect(messagePackErrorCode([0xFF, 0xFF, 0xFF, 0xFF, 0x08]) == .invalidVarInt)
        #expect(messagePackErrorCode([0x80]) == .truncated)
        #expect(messagePackErrorCode([0x03, 0x91, 0x06]) == .truncated)
        #expect(messagePackErrorCode([0x00]) == .invalidMessage)
        #expect(messagePackErrorCode([0x01, 0x06]) == .invalidMessage)
        #expect(messagePackErrorCode([0x01, 0x90]) == .invalidMessage)
        #expect(messagePackErrorCode([0x02, 0x91, 0x0A]) == .unknownMessageType)
        #expect(messagePackErrorCode([0x02, 0x91, 0xA0]) == .wrongFieldType)
        #expect(messagePackErrorCode([0x03, 0x92, 0x06, 0xC1]) == .malformedMessagePack)
        #expect(messagePackErrorCode([0x03, 0x91, 0x06, 0x00]) == .trailingBytes)
        // [3, {}, "x", 4]
        #expect(messagePackErrorCode([0x06, 0x94, 0x03, 0x80, 0xA1, 0x78, 0x04]) == .invalidResultKind)
        // [3, {}, "x", 1] (error kind without the error)
        #expect(messagePackErrorCode([0x06, 0x94, 0x03, 0x80, 0xA1, 0x78, 0x01]) == .invalidMessage)
        // [3, {}, "x", 1, 5] (error not a string)
        #expect(messagePackErrorCode([0x07, 0x95, 0x03, 0x80, 0xA1, 0x78, 0x01, 0x05]) == .wrongFieldType)
        // [5, [], "x"] (headers not a map)
        #expect(messagePackErrorCode([0x05, 0x93, 0x05, 0x90, 0xA1, 0x78]) == .wrongFieldType)
        // [5, {"a": "b", "a": "c"}, "x"]
        #expect(
            messagePackErrorCode([0x0D, 0x93, 0x05, 0x82, 0xA1, 0x61, 0xA1, 0x62, 0xA1, 0x61, 0xA1, 0x63, 0xA1, 0x78])
                == .duplicateKey)
        // [4, {}, nil, "t", []] (a StreamInvocation needs an id)
        #expect(messagePackErrorCode([0x07, 0x95, 0x04, 0x80, 0xC0, 0xA1, 0x74, 0x90]) == .wrongFieldType)
        // [8, -1]
        #expect(messagePackErrorCode([0x03, 0x92, 0x08, 0xFF]) == .wrongFieldType)
        // [7] (Close needs its error slot)
        #expect(messagePackErrorCode([0x02, 0x91, 0x07]) == .invalidMessage)
    }

    @Test func messagePackSizeLimitIsCheckedBeforeTheBody() {
        // A 1 GiB length prefix with no body: refused by size, not by truncation.
        #expect(messagePackErrorCode([0x80, 0x80, 0x80, 0x80, 0x04]) == .messageTooLarge)
        let limits = HubProtocolLimits(maximumMessageSize: 2)
        #expect(messagePackErrorCode([0x02, 0x91, 0x06], limits: limits) == nil)
        #expect(messagePackErrorCode([0x03, 0x92, 0x08, 0x01], limits: limits) == .messageTooLarge)
    }

    @Test func messagePackOlderAndNewerShapes() throws {
        // Invocation without StreamIds (5 elements), streamIds nil, extra trailing elements ignored.
        let five: [UInt8] = [0x95, 0x01, 0x80, 0xA1, 0x31, 0xA1, 0x74, 0x90]
        let nilIds: [UInt8] = [0x96, 0x01, 0x80, 0xA1, 0x31, 0xA1, 0x74, 0x90, 0xC0]
        let extra: [UInt8] = [0x97, 0x01, 0x80, 0xA1, 0x31, 0xA1, 0x74, 0x90, 0x90, 0x81, 0xA1, 0x61, 0x01]
        let expected = HubMessage.invocation(.init(invocationId: "1", target: "t", arguments: []))
        for body in [five, nilIds, extra] {
            #expect(try MessagePackHubProtocol().decode(frame: [UInt8(body.count)] + body) == [expected])
        }
        // Ping with extra elements (headers are not valid in Ping, but tolerated when reading).
        #expect(try MessagePackHubProtocol().decode(frame: [0x03, 0x92, 0x06, 0x80]) == [.ping])
    }

    @Test func messagePackClientStreamShapesOfSignalrcore() throws {
        // [1, {}, "Sum", [], ["s"]]: signalrcore 1.0.2 leaves the InvocationId slot out.
        let invocation: [UInt8] = [0x0B, 0x95, 0x01, 0x80, 0xA3, 0x53, 0x75, 0x6D, 0x90, 0x91, 0xA1, 0x73]
        #expect(
            try MessagePackHubProtocol().decode(frame: invocation) == [
                .invocation(.init(invocationId: nil, target: "Sum", arguments: [], streamIds: ["s"]))
            ])
        // [3, {}, "s"]: and the stream's Completion without a ResultKind.
        #expect(
            try MessagePackHubProtocol().decode(frame: [0x05, 0x93, 0x03, 0x80, 0xA1, 0x73]) == [
                .completion(.init(invocationId: "s", result: .void))
            ])
        // The spec's 5-element Invocation (id, target, arguments) still reads as before.
        let spec: [UInt8] = [0x0B, 0x95, 0x01, 0x80, 0xA1, 0x31, 0xA3, 0x53, 0x75, 0x6D, 0x91, 0x01]
        #expect(
            try MessagePackHubProtocol().decode(frame: spec) == [
                .invocation(.init(invocationId: "1", target: "Sum", arguments: [.json(1)]))
            ])
        // A StreamInvocation keeps its id slot: [4, {}, "Sum", [], []] is refused (target not a string).
        #expect(messagePackErrorCode([0x09, 0x95, 0x04, 0x80, 0xA3, 0x53, 0x75, 0x6D, 0x90, 0x90]) == .wrongFieldType)
    }

    @Test func randomMessagesRoundTrip() throws {
        var random = SeededGenerator(seed: 15)
        for round in 0..<400 {
            let messages = (0..<Int.random(in: 1...4, using: &random)).map { _ in randomMessage(&random) }
            for codec in [AnyCodec.json, .messagePack] {
                var frame: [UInt8] = []
                for message in messages { try codec.encode(message, &frame) }
                let decoded = try codec.decode(frame)
                #expect(decoded == messages, "round \(round) \(codec)")
                // decode ∘ encode ∘ decode is stable: re-encoding the decoded messages gives the same bytes.
                var again: [UInt8] = []
                for message in decoded { try codec.encode(message, &again) }
                #expect(again == frame, "round \(round) \(codec)")
            }
        }
    }
}

enum AnyCodec: CustomStringConvertible {
    case json, messagePack

    func encode(_ message: HubMessage, _ buffer: inout [UInt8]) throws {
        switch self {
        case .json: try JSONHubProtocol().encode(message, into: &buffer)
        case .messagePack: try MessagePackHubProtocol().encode(message, into: &buffer)
        }
    }

    func decode(_ frame: [UInt8]) throws -> [HubMessage] {
        switch self {
        case .json: try JSONHubProtocol().decode(frame: frame)
        case .messagePack: try MessagePackHubProtocol().decode(frame: frame)
        }
    }

    var description: String { self == .json ? "json" : "messagepack" }
}

func randomString(_ random: inout SeededGenerator) -> String {
    let pieces = ["a", "Z", "0", " ", "\"", "\\", "\n", "\u{1}", "\u{1E}", "é", "€", "😀", "中", "/"]
    return (0..<Int.random(in: 0...12, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
}

func randomJSON(_ random: inout SeededGenerator, depth: Int = 0) -> JSONValue {
    switch Int.random(in: 0..<(depth < 3 ? 9 : 7), using: &random) {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &random))
    case 2:
        return .int(
            Int64.random(in: Int64.min...Int64.max, using: &random) >> UInt64.random(in: 0...63, using: &random))
    case 3: return .uint(UInt64.random(in: UInt64(Int64.max) + 1...UInt64.max, using: &random))
    case 4: return .double(Double.random(in: -1e6...1e6, using: &random))
    case 5, 6: return .string(randomString(&random))
    case 7:
        return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in randomJSON(&random, depth: depth + 1) })
    default:
        var object = JSONObject()
        for _ in 0..<Int.random(in: 0...4, using: &random) {
            object[randomString(&random)] = randomJSON(&random, depth: depth + 1)
        }
        return .object(object)
    }
}

func randomHeaders(_ random: inout SeededGenerator) -> [String: String] {
    guard Bool.random(using: &random) else { return [:] }
    var headers: [String: String] = [:]
    for _ in 0..<Int.random(in: 1...3, using: &random) { headers[randomString(&random)] = randomString(&random) }
    return headers
}

func randomMessage(_ random: inout SeededGenerator) -> HubMessage {
    let id = "\(UInt32.random(in: 0...UInt32.max, using: &random))"
    let arguments = (0..<Int.random(in: 0...3, using: &random)).map { _ in HubValue.json(randomJSON(&random)) }
    let streamIds = (0..<Int.random(in: 0...2, using: &random)).map { "s\($0)" }
    let headers = randomHeaders(&random)
    switch HubMessageType.allCases.randomElement(using: &random)! {
    case .invocation:
        return .invocation(
            .init(
                headers: headers, invocationId: Bool.random(using: &random) ? id : nil, target: randomString(&random),
                arguments: arguments, streamIds: streamIds))
    case .streamItem: return .streamItem(.init(headers: headers, invocationId: id, item: .json(randomJSON(&random))))
    case .completion:
        let result: HubMessage.Completion.Result =
            switch Int.random(in: 0..<3, using: &random) {
            case 0: .void
            case 1: .value(.json(randomJSON(&random)))
            default: .error(randomString(&random))
            }
        return .completion(.init(headers: headers, invocationId: id, result: result))
    case .streamInvocation:
        return .streamInvocation(
            .init(
                headers: headers, invocationId: id, target: randomString(&random), arguments: arguments,
                streamIds: streamIds))
    case .cancelInvocation: return .cancelInvocation(.init(headers: headers, invocationId: id))
    case .ping: return .ping
    case .close:
        return .close(
            .init(
                error: Bool.random(using: &random) ? randomString(&random) : nil,
                allowReconnect: Bool.random(using: &random)))
    case .ack: return .ack(sequenceId: Int64.random(in: 0...Int64.max, using: &random))
    case .sequence: return .sequence(sequenceId: Int64.random(in: 0...Int64.max, using: &random))
    }
}
