import Testing
import WebSocketTestSupport
import WebSocketHandshake

@Suite("Sec-WebSocket-Extensions grammar (RFC 6455 §9.1)")
struct ExtensionHeaderTests {
    typealias P = WebSocketExtension.Parameter

    @Test("a bare extension name")
    func bareName() throws {
        #expect(try WebSocketExtension.parse("permessage-deflate") == [WebSocketExtension(name: "permessage-deflate")])
    }

    @Test("parameters with and without values, token and quoted")
    func parameters() throws {
        let parsed = try WebSocketExtension.parse(
            #"permessage-deflate; client_max_window_bits; server_max_window_bits="10""#)
        #expect(
            parsed == [
                WebSocketExtension(
                    name: "permessage-deflate",
                    parameters: [P(name: "client_max_window_bits"), P(name: "server_max_window_bits", value: "10")]
                )
            ]
        )
        #expect(parsed[0].parameter(named: "server_max_window_bits") == .some("10"))
        #expect(parsed[0].parameter(named: "client_max_window_bits") == .some(nil))
        #expect(parsed[0].parameter(named: "absent") == nil)
    }

    @Test("several extensions in one line and over several lines keep their order")
    func lists() throws {
        let oneLine = try WebSocketExtension.parse("a; x=1, b, c;y")
        let severalLines = try WebSocketExtension.parse(["a; x=1", "b", "c;y"])
        let expected = [
            WebSocketExtension(name: "a", parameters: [P(name: "x", value: "1")]),
            WebSocketExtension(name: "b"),
            WebSocketExtension(name: "c", parameters: [P(name: "y")]),
        ]
        #expect(oneLine == expected)
        #expect(severalLines == expected)
    }

    @Test("whitespace around separators and empty list elements are accepted")
    func whitespace() throws {
        let parsed = try WebSocketExtension.parse(" ,\ta ;  x = 1 ;y\t, , b ,")
        #expect(
            parsed == [
                WebSocketExtension(name: "a", parameters: [P(name: "x", value: "1"), P(name: "y")]),
                WebSocketExtension(name: "b"),
            ]
        )
        #expect(try WebSocketExtension.parse("") == [])
        #expect(try WebSocketExtension.parse([String]()) == [])
    }

    @Test("quoted values are unescaped")
    func quotedEscapes() throws {
        let parsed = try WebSocketExtension.parse(#"x; a="b\c"; d="1""#)
        #expect(parsed[0].parameters == [P(name: "a", value: "bc"), P(name: "d", value: "1")])
    }

    @Test(
        "malformed headers are rejected with the rule they break",
        arguments: [
            ("; a", ExtensionHeaderError.expectedExtensionName),
            ("\"x\"", .expectedExtensionName),
            ("a;", .expectedParameterName),
            ("a; =1", .expectedParameterName),
            ("a; b=", .expectedParameterValue),
            ("a; b=;", .expectedParameterValue),
            ("a; b=\"1", .unterminatedQuotedString),
            ("a; b=\"1\\", .unterminatedQuotedString),
            ("a; b=\"two words\"", .quotedValueNotToken),
            ("a; b=\"\"", .quotedValueNotToken),
            ("a b", .unexpectedCharacter),
            ("a; b=1=2", .unexpectedCharacter),
            ("a; b=1 c", .unexpectedCharacter),
            ("a/b", .unexpectedCharacter),
            ("a; b=\"x\u{1}\"", .unexpectedCharacter),
        ]
    )
    func malformed(input: String, expected: ExtensionHeaderError) {
        #expect(throws: expected) { try WebSocketExtension.parse(input) }
    }

    @Test("errors report the offset and the RFC section")
    func errorDescription() {
        do {
            _ = try WebSocketExtension.parse("abc; =1")
            Issue.record("expected an error")
        } catch {
            #expect(error.offset == 5)
            #expect(error.description.contains("RFC 6455 §9.1"))
        }
    }

    @Test(
        "parse and serialise round-trip",
        arguments: ["a", "a; b", "a; b=1", "permessage-deflate; client_max_window_bits, x-foo; y=z; w", "a, b, c"]
    )
    func roundTrip(text: String) throws {
        let parsed = try WebSocketExtension.parse(text)
        #expect(WebSocketExtension.serialize(parsed) == text)
        #expect(try WebSocketExtension.parse(WebSocketExtension.serialize(parsed)) == parsed)
    }

    @Test("serialisation quotes values that are not tokens, escaping quotes and backslashes")
    func serializeQuoting() {
        #expect(WebSocketExtension.serializedValue(of: "10") == "10")
        #expect(WebSocketExtension.serializedValue(of: "a b") == #""a b""#)
        #expect(WebSocketExtension.serializedValue(of: #"q"\"#) == #""q\"\\""#)
        #expect(WebSocketExtension.serializedValue(of: "") == #""""#)
        let ext = WebSocketExtension(name: "x", parameters: [P(name: "v", value: "a,b")])
        #expect(ext.description == #"x; v="a,b""#)
    }

    @Test("arbitrary bytes never trap the parser, and whatever parses survives serialize → parse unchanged")
    func noTrap() throws {
        var generator = SeededGenerator(seed: 7)
        let alphabet = Array(#"ab=;," \"\#t\x"#.utf8)
        var parsedCount = 0
        var refusedCount = 0
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<16, using: &generator)
            let bytes = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
            let text = String(decoding: bytes, as: UTF8.self)
            guard let parsed = try? WebSocketExtension.parse(text) else {
                refusedCount += 1
                continue
            }
            parsedCount += 1
            let again = try WebSocketExtension.parse(WebSocketExtension.serialize(parsed))
            #expect(again == parsed, "round trip changed \(text.debugDescription)")
        }
        // Both outcomes must be exercised, or the alphabet no longer tests anything.
        #expect(parsedCount > 100)
        #expect(refusedCount > 100)
    }
}
