import HubProtocol
import Testing

func jsonError(_ text: String, limits: HubProtocolLimits = .default) -> HubProtocolError.Code? {
    do {
        _ = try JSONValue(parsing: Array(text.utf8), limits: limits)
        return nil
    } catch {
        return error.code
    }
}

func messagePackError(_ bytes: [UInt8], limits: HubProtocolLimits = .default) -> HubProtocolError.Code? {
    do {
        _ = try MessagePackValue(decoding: bytes, limits: limits)
        return nil
    } catch {
        return error.code
    }
}

@Suite struct JSONValueTests {
    @Test func integersStayExact() throws {
        #expect(try JSONValue(parsing: Array("9223372036854775807".utf8)) == .int(Int64.max))
        #expect(try JSONValue(parsing: Array("-9223372036854775808".utf8)) == .int(Int64.min))
        if case .uint(let value) = try JSONValue(parsing: Array("18446744073709551615".utf8)) {
            #expect(value == UInt64.max)
        } else {
            Issue.record("UInt64.max is not .uint")
        }
        if case .double = try JSONValue(parsing: Array("18446744073709551616".utf8)) {
        } else {
            Issue.record("above UInt64 is a double")
        }
        if case .double(let value) = try JSONValue(parsing: Array("-9223372036854775809".utf8)) {
            #expect(value == -9223372036854775809.0)
        } else {
            Issue.record("below Int64 is a double")
        }
        if case .double(let value) = try JSONValue(parsing: Array("1.0".utf8)) {
            #expect(value == 1)
        } else {
            Issue.record("1.0 is a double")
        }
        #expect(try JSONValue(parsing: Array("-0".utf8)) == .int(0))
        #expect(try JSONValue(parsing: Array("2.5e-3".utf8)) == .double(0.0025))
        #expect(try JSONValue(parsing: Array("1E+2".utf8)) == .double(100))
    }

    @Test func stringsAndEscapes() throws {
        let text = #""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00é€""#
        #expect(try JSONValue(parsing: Array(text.utf8)) == .string("a\"b\\c/d\u{8}\u{C}\n\r\tAé😀é€"))
    }

    @Test func objectsKeepInsertionOrder() throws {
        let value = try JSONValue(parsing: Array(#"{"b":1,"a":2,"c":{"z":[],"y":{}}}"#.utf8))
        guard case .object(let object) = value else { throw HubProtocolError(.invalidMessage, "") }
        #expect(object.keys == ["b", "a", "c"])
        #expect(value.description == #"{"b":1,"a":2,"c":{"z":[],"y":{}}}"#)
    }

    @Test(arguments: [
        ("", HubProtocolError.Code.malformedJSON), ("{", .malformedJSON), ("[1,]", .malformedJSON),
        ("{\"a\":1,}", .malformedJSON), ("01", .malformedJSON), ("1.", .malformedJSON), (".5", .malformedJSON),
        ("1e", .malformedJSON), ("+1", .malformedJSON), ("tru", .malformedJSON), ("nul", .malformedJSON),
        ("NaN", .malformedJSON), ("Infinity", .malformedJSON), ("'a'", .malformedJSON), ("\"\\x\"", .malformedJSON),
        ("\"a\nb\"", .malformedJSON), ("\"abc", .malformedJSON), ("{1:2}", .malformedJSON), ("[1 2]", .malformedJSON),
        ("1 2", .trailingBytes), ("{} x", .trailingBytes), ("1e400", .numberOutOfRange), ("-1e400", .numberOutOfRange),
        ("\"\\ud800\"", .invalidUTF8), ("\"\\udc00\"", .invalidUTF8), ("\"\\ud800\\u0041\"", .invalidUTF8),
        ("{\"a\":1,\"a\":2}", .duplicateKey), ("\"\\u12G4\"", .malformedJSON),
    ])
    func malformedInputIsRefused(text: String, code: HubProtocolError.Code) {
        #expect(jsonError(text) == code, "\(text)")
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: HubProtocolError.self) { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: HubProtocolError.self) { try JSONValue(parsing: [0x22, 0xED, 0xA0, 0x80, 0x22]) }
    }

    @Test func limits() {
        let limits = HubProtocolLimits(maximumMessageSize: 100, maximumDepth: 3, maximumCollectionCount: 4)
        #expect(jsonError("[[[1]]]", limits: limits) == nil)
        #expect(jsonError("[[[[1]]]]", limits: limits) == .depthLimitExceeded)
        #expect(jsonError("{\"a\":{\"b\":{\"c\":{}}}}", limits: limits) == .depthLimitExceeded)
        #expect(jsonError("[1,2,3,4]", limits: limits) == nil)
        #expect(jsonError("[1,2,3,4,5]", limits: limits) == .collectionTooLarge)
        #expect(jsonError("{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1}", limits: limits) == .collectionTooLarge)
        #expect(jsonError(String(repeating: " ", count: 101) + "1", limits: limits) == .messageTooLarge)
        // Deep nesting at the default limit never reaches the stack's end.
        #expect(
            jsonError(String(repeating: "[", count: 100_000), limits: .init(maximumMessageSize: 1 << 20))
                == .depthLimitExceeded)
    }

    @Test func writerEscapesAndRoundTrips() throws {
        let value: JSONValue = [
            "s": .string("q\"b\\n\n\u{1}\u{1E}é😀"), "n": nil, "t": true, "i": -5, "u": .uint(UInt64.max),
            "d": 0.1, "e": 1e-7, "big": 1e300, "a": [1, [2, [3]]],
        ]
        let bytes = try value.serialized()
        #expect(!bytes.contains(0x1E), "a record separator inside a string is escaped")
        #expect(try JSONValue(parsing: bytes) == value)
        #expect(String(decoding: bytes, as: UTF8.self).contains(#"\u0001\u001e"#))
    }

    @Test func nonFiniteDoublesAreNotJSON() {
        #expect(throws: HubProtocolError.self) { try JSONValue.double(.nan).serialized() }
        #expect(throws: HubProtocolError.self) { try JSONValue.array([.double(.infinity)]).serialized() }
    }
}

@Suite struct MessagePackValueTests {
    static func roundTrip(_ value: MessagePackValue, _ bytes: [UInt8]) throws {
        #expect(value.encoded() == bytes, "\(value)")
        #expect(try MessagePackValue(decoding: bytes) == value)
    }

    @Test func shortestFormats() throws {
        try Self.roundTrip(0, [0x00])
        try Self.roundTrip(127, [0x7F])
        try Self.roundTrip(128, [0xCC, 0x80])
        try Self.roundTrip(256, [0xCD, 0x01, 0x00])
        try Self.roundTrip(65536, [0xCE, 0x00, 0x01, 0x00, 0x00])
        try Self.roundTrip(.int(1 << 32), [0xCF, 0, 0, 0, 1, 0, 0, 0, 0])
        try Self.roundTrip(.uint(UInt64.max), [0xCF] + [UInt8](repeating: 0xFF, count: 8))
        try Self.roundTrip(-1, [0xFF])
        try Self.roundTrip(-32, [0xE0])
        try Self.roundTrip(-33, [0xD0, 0xDF])
        try Self.roundTrip(-129, [0xD1, 0xFF, 0x7F])
        try Self.roundTrip(.int(-32769), [0xD2, 0xFF, 0xFF, 0x7F, 0xFF])
        try Self.roundTrip(.int(Int64.min), [0xD3, 0x80, 0, 0, 0, 0, 0, 0, 0])
        try Self.roundTrip(nil, [0xC0])
        try Self.roundTrip(true, [0xC3])
        try Self.roundTrip(false, [0xC2])
        try Self.roundTrip(.float(1.5), [0xCA, 0x3F, 0xC0, 0x00, 0x00])
        try Self.roundTrip(.double(1.5), [0xCB, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0])
        try Self.roundTrip("", [0xA0])
        try Self.roundTrip(.string(String(repeating: "a", count: 31)), [0xBF] + Array(repeating: 0x61, count: 31))
        try Self.roundTrip(.string(String(repeating: "a", count: 32)), [0xD9, 32] + Array(repeating: 0x61, count: 32))
        try Self.roundTrip(
            .string(String(repeating: "a", count: 256)), [0xDA, 1, 0] + Array(repeating: 0x61, count: 256))
        try Self.roundTrip(.binary([1, 2]), [0xC4, 2, 1, 2])
        try Self.roundTrip(.binary(Array(repeating: 7, count: 256)), [0xC5, 1, 0] + Array(repeating: 7, count: 256))
        try Self.roundTrip([], [0x90])
        try Self.roundTrip(.array(Array(repeating: nil, count: 16)), [0xDC, 0, 16] + Array(repeating: 0xC0, count: 16))
        try Self.roundTrip(.map([.init("a", 1)]), [0x81, 0xA1, 0x61, 0x01])
        try Self.roundTrip(.map([.init(1, "a"), .init(nil, [])]), [0x82, 0x01, 0xA1, 0x61, 0xC0, 0x90])
        try Self.roundTrip(.ext(type: 5, data: [1]), [0xD4, 5, 1])
        try Self.roundTrip(
            .ext(type: -1, data: Array(repeating: 0, count: 8)), [0xD7, 0xFF] + Array(repeating: 0, count: 8))
        try Self.roundTrip(.ext(type: 1, data: [1, 2, 3]), [0xC7, 3, 1, 1, 2, 3])
    }

    @Test func longerFormatsDecodeToTheSameValue() throws {
        #expect(try MessagePackValue(decoding: [0xD0, 0x05]) == 5)
        #expect(try MessagePackValue(decoding: [0xCF, 0, 0, 0, 0, 0, 0, 0, 5]) == 5)
        #expect(try MessagePackValue(decoding: [0xDD, 0, 0, 0, 1, 0x01]) == [1])
        #expect(try MessagePackValue(decoding: [0xDB, 0, 0, 0, 1, 0x61]) == "a")
        #expect(try MessagePackValue(decoding: [0xC6, 0, 0, 0, 1, 0x61]) == .binary([0x61]))
    }

    @Test func hostileHeadersDoNotAllocate() {
        // 2^32 - 1 elements claimed: refused by count, nothing reserved.
        #expect(messagePackError([0xDD, 0xFF, 0xFF, 0xFF, 0xFF]) == .collectionTooLarge)
        #expect(messagePackError([0xDF, 0xFF, 0xFF, 0xFF, 0xFF]) == .collectionTooLarge)
        // Below the count limit but more than the bytes left.
        #expect(messagePackError([0xDC, 0x10, 0x00, 0xC0]) == .truncated)
        #expect(messagePackError([0xDE, 0x00, 0x02, 0xC0, 0xC0, 0xC0]) == .truncated)
        // 4 GiB strings, binaries and extensions claimed.
        #expect(messagePackError([0xDB, 0xFF, 0xFF, 0xFF, 0xFF, 0x61]) == .truncated)
        #expect(messagePackError([0xC6, 0xFF, 0xFF, 0xFF, 0xFF]) == .truncated)
        #expect(messagePackError([0xC9, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) == .truncated)
    }

    @Test func malformedInput() {
        #expect(messagePackError([]) == .truncated)
        #expect(messagePackError([0xC1]) == .malformedMessagePack)
        #expect(messagePackError([0xA2, 0x61]) == .truncated)
        #expect(messagePackError([0xCD, 0x01]) == .truncated)
        #expect(messagePackError([0xA2, 0xC3, 0x28]) == .invalidUTF8)
        #expect(messagePackError([0x01, 0x02]) == .trailingBytes)
        #expect(messagePackError([0x82, 0xA1, 0x61, 0x01, 0xA1, 0x61, 0x02]) == .duplicateKey)
    }

    @Test func limits() {
        let limits = HubProtocolLimits(maximumMessageSize: 64, maximumDepth: 3, maximumCollectionCount: 4)
        #expect(messagePackError([0x91, 0x91, 0x91, 0x01], limits: limits) == nil)
        #expect(messagePackError([0x91, 0x91, 0x91, 0x91, 0x01], limits: limits) == .depthLimitExceeded)
        #expect(messagePackError([0x95, 1, 2, 3, 4, 5], limits: limits) == .collectionTooLarge)
        #expect(messagePackError([0xC4, 65] + Array(repeating: 0, count: 65), limits: limits) == .messageTooLarge)
        #expect(
            messagePackError(
                Array(repeating: 0x91, count: 100_000) + [0x01], limits: .init(maximumMessageSize: 1 << 20))
                == .depthLimitExceeded)
    }

    @Test func conversionsBetweenTheTwoTrees() throws {
        let json: JSONValue = ["a": [1, -2, 2.5, "x", nil, true], "b": .uint(UInt64.max)]
        #expect(try JSONValue(MessagePackValue(json)) == json)
        #expect(try JSONValue(MessagePackValue.binary([0, 1, 2, 255])) == "AAEC/w==")
        #expect(try JSONValue(MessagePackValue.float(0.1)) == .double(0.1))
        #expect(throws: HubProtocolError.self) { try JSONValue(MessagePackValue.ext(type: 1, data: [])) }
        #expect(throws: HubProtocolError.self) { try JSONValue(MessagePackValue.map([.init(1, 1)])) }
        #expect(throws: HubProtocolError.self) { try JSONValue(MessagePackValue.double(.nan)) }
    }
}
