import HubProtocol
import Testing

struct ChatMessage: Codable, Equatable, Sendable {
    enum Kind: String, Codable { case text, image }
    struct Point: Codable, Equatable { var x: Int8, y: UInt16 }

    var user: String
    var text: String?
    var kind: Kind
    var sent: Int64
    var huge: UInt64
    var score: Double
    var ratio: Float
    var tags: [String]
    var attachment: [UInt8]
    var position: Point
    var lookup: [String: Int]
    var nested: [[Bool]]
    var any: JSONValue
}

class Base: Codable {
    var id = 1
}

final class Derived: Base, @unchecked Sendable {
    var name = "n"
    enum CodingKeys: String, CodingKey { case name }
    override init() { super.init() }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try super.encode(to: container.superEncoder())
    }
}

@Suite struct CodableTests {
    static let sample = ChatMessage(
        user: "ann", text: nil, kind: .image, sent: Int64.min, huge: UInt64.max, score: 0.1, ratio: 0.1,
        tags: ["a", "é"], attachment: [0, 1, 254, 255], position: .init(x: -5, y: 65535), lookup: ["k": 3],
        nested: [[true], []], any: ["free": [1, "form"]])

    @Test func roundTripThroughJSON() throws {
        let json = try JSONValue(encoding: Self.sample)
        #expect(json["attachment"] == "AAH+/w==", "[UInt8] is base64 in JSON")
        #expect(json["huge"] == .uint(UInt64.max))
        #expect(json["ratio"] == .double(0.1), "Float keeps its own shortest digits")
        #expect(json["text"] == nil, "encodeIfPresent omits nil")
        #expect(try json.decode(ChatMessage.self) == Self.sample)
        // And through the bytes.
        #expect(try JSONValue(parsing: try json.serialized()).decode(ChatMessage.self) == Self.sample)
    }

    @Test func roundTripThroughMessagePack() throws {
        let value = try MessagePackValue(encoding: Self.sample)
        #expect(value["attachment"] == .binary([0, 1, 254, 255]), "[UInt8] is bin in MessagePack")
        #expect(value["ratio"] == .float(0.1), "Float is float 32")
        #expect(try value.decode(ChatMessage.self) == Self.sample)
        #expect(try MessagePackValue(decoding: value.encoded()).decode(ChatMessage.self) == Self.sample)
    }

    @Test func keyedFieldsInDeclarationOrder() throws {
        guard case .object(let object) = try JSONValue(encoding: Self.sample) else {
            Issue.record("not an object")
            return
        }
        #expect(object.keys.prefix(4) == ["user", "kind", "sent", "huge"])
    }

    @Test func numbersConvertOnlyWhenExact() throws {
        #expect(try JSONValue.double(42).decode(Int.self) == 42)
        #expect(try MessagePackValue.int(7).decode(Double.self) == 7)
        #expect(throws: DecodingError.self) { try JSONValue.double(42.5).decode(Int.self) }
        #expect(throws: DecodingError.self) { try JSONValue.int(300).decode(UInt8.self) }
        #expect(throws: DecodingError.self) { try JSONValue.int(-1).decode(UInt.self) }
        #expect(throws: DecodingError.self) { try MessagePackValue.uint(UInt64.max).decode(Int64.self) }
        #expect(throws: DecodingError.self) { try JSONValue.string("1").decode(Int.self) }
        #expect(throws: DecodingError.self) { try JSONValue.int(1).decode(String.self) }
    }

    @Test func missingKeysAndWrongShapesAreDecodingErrors() throws {
        #expect(throws: DecodingError.self) { try (["user": "x"] as JSONValue).decode(ChatMessage.self) }
        #expect(throws: DecodingError.self) { try ([1, 2] as JSONValue).decode(ChatMessage.self) }
        #expect(throws: DecodingError.self) { try MessagePackValue.map([.init(1, 2)]).decode(ChatMessage.Point.self) }
    }

    @Test func bytesDecodeFromEveryForm() throws {
        #expect(try JSONValue.string("AAH+/w==").decode([UInt8].self) == [0, 1, 254, 255])
        #expect(try ([1, 2] as JSONValue).decode([UInt8].self) == [1, 2])
        #expect(try MessagePackValue.binary([9]).decode([UInt8].self) == [9])
        #expect(try ([1, 2] as MessagePackValue).decode([UInt8].self) == [1, 2])
        #expect(throws: DecodingError.self) { try JSONValue.string("not base64!").decode([UInt8].self) }
        #expect(throws: DecodingError.self) { try ([256] as JSONValue).decode([UInt8].self) }
    }

    @Test func topLevelScalarsOptionalsAndSuperEncoders() throws {
        #expect(try JSONValue(encoding: 5) == 5)
        #expect(try JSONValue(encoding: "s") == "s")
        #expect(try JSONValue(encoding: Int?.none) == nil)
        #expect(try JSONValue.null.decode(Int?.self) == nil)
        let derived = Derived()
        derived.id = 9
        let json = try JSONValue(encoding: derived)
        #expect(json == ["name": "n", "super": ["id": 9]])
        #expect(try json.decode(Derived.self).id == 9)
        let messagePack = try MessagePackValue(encoding: derived)
        #expect(try messagePack.decode(Derived.self).id == 9)
    }

    @Test func treesEmbedAndConvert() throws {
        let inner: MessagePackValue = .map([.init("k", .binary([1]))])
        struct Wrapper: Codable { var value: MessagePackValue }
        let json = try JSONValue(encoding: Wrapper(value: inner))
        #expect(json == ["value": ["k": "AQ=="]])
        #expect(try MessagePackValue(encoding: Wrapper(value: inner)) == .map([.init("value", inner)]))
        #expect(try (["x": 1] as JSONValue).decode(MessagePackValue.self) == .map([.init("x", 1)]))
        #expect(throws: EncodingError.self) {
            try JSONValue(encoding: Wrapper(value: .ext(type: 1, data: [])))
        }
    }

    @Test func hubValueDecodesFromAnyProtocol() throws {
        let point = ChatMessage.Point(x: 1, y: 2)
        #expect(try HubValue(point).decode(ChatMessage.Point.self) == point)
        #expect(try HubValue.json(["x": 1, "y": 2]).decode(ChatMessage.Point.self) == point)
        #expect(try HubValue.messagePack(.map([.init("x", 1), .init("y", 2)])).decode(ChatMessage.Point.self) == point)
        #expect(HubValue(point) == .json(["x": 1, "y": 2]))
        #expect(HubValue(JSONValue(3)) == .json(3))
    }
}
