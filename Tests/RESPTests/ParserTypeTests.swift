import RESP
import Testing

/// One test per type of the Redis protocol specification (RESP2) and RESP3.md, each input parsed whole, one byte
/// at a time and split at every position, and re-encoded to the same bytes where the encoding is canonical.
@Suite("RESP types (Redis protocol spec, RESP3.md)")
struct ParserTypeTests {
    func roundTrip(_ text: String, _ expected: RESPValue, sourceLocation: SourceLocation = #_sourceLocation) {
        let parsed = values(text)
        #expect(parsed == [expected], sourceLocation: sourceLocation)
        #expect(expected.encoded == bytes(text), "re-encoded", sourceLocation: sourceLocation)
    }

    @Test("simple string, simple error, integer (RESP2)")
    func simpleTypes() {
        roundTrip("+OK\r\n", .simpleString("OK"))
        roundTrip("+\r\n", .simpleString(""))
        roundTrip("-ERR unknown command 'x'\r\n", .simpleError("ERR unknown command 'x'"))
        roundTrip(":0\r\n", .integer(0))
        roundTrip(":-42\r\n", .integer(-42))
        roundTrip(":9223372036854775807\r\n", .integer(.max))
        roundTrip(":-9223372036854775808\r\n", .integer(.min))
        #expect(values(":+7\r\n") == [.integer(7)])
        #expect(values(":007\r\n") == [.integer(7)])
        #expect(values("+caf\u{e9}\r\n") == [.simpleString("caf\u{e9}")])
    }

    @Test("bulk string, empty, binary, and RESP2's null bulk string")
    func bulkStrings() {
        roundTrip("$5\r\nhello\r\n", .bulkString(bytes("hello")))
        roundTrip("$0\r\n\r\n", .bulkString([]))
        roundTrip("$-1\r\n", .bulkString(nil))
        // CR, LF, NUL and invalid UTF-8 inside are data.
        roundTrip("$4\r\n\r\n\0\u{7F}\r\n", .bulkString([0x0D, 0x0A, 0x00, 0x7F]))
        let binary: [UInt8] = [0x24, 0x32, 0x0D, 0x0A, 0xFF, 0xC0, 0x0D, 0x0A]
        #expect(parseAllSplits(binary).values == [.bulkString([0xFF, 0xC0])])
    }

    @Test("array, empty, nested, mixed, and RESP2's null array")
    func arrays() {
        roundTrip("*0\r\n", .array([]))
        roundTrip("*-1\r\n", .array(nil))
        roundTrip(
            "*3\r\n:1\r\n$5\r\nhello\r\n*2\r\n+a\r\n$-1\r\n",
            .array([.integer(1), .bulkString(bytes("hello")), .array([.simpleString("a"), .bulkString(nil)])])
        )
        roundTrip("*2\r\n*0\r\n*1\r\n*0\r\n", .array([.array([]), .array([.array([])])]))
    }

    @Test("RESP3 null, boolean, big number, bulk error, verbatim string")
    func resp3Scalars() {
        roundTrip("_\r\n", .null)
        roundTrip("#t\r\n", .boolean(true))
        roundTrip("#f\r\n", .boolean(false))
        roundTrip(
            "(3492890328409238509324850943850943825024385\r\n",
            .bigNumber("3492890328409238509324850943850943825024385"))
        roundTrip(
            "(-3492890328409238509324850943850943825024385\r\n",
            .bigNumber("-3492890328409238509324850943850943825024385"))
        roundTrip("!21\r\nSYNTAX invalid syntax\r\n", .bulkError(bytes("SYNTAX invalid syntax")))
        roundTrip("=15\r\ntxt:Some string\r\n", .verbatimString(format: "txt", text: bytes("Some string")))
        roundTrip("=4\r\nmkd:\r\n", .verbatimString(format: "mkd", text: []))
    }

    @Test("RESP3 doubles: the grammar, exponents, inf, -inf, nan in libc spellings")
    func doubles() {
        roundTrip(",1.23\r\n", .double(1.23))
        roundTrip(",1e+20\r\n", .double(1e20))
        roundTrip(",inf\r\n", .double(.infinity))
        roundTrip(",-inf\r\n", .double(-.infinity))
        #expect(values(",10\r\n") == [.double(10)])
        #expect(values(",-0.5E-3\r\n") == [.double(-0.0005)])
        #expect(values(",+2e2\r\n") == [.double(200)])
        #expect(values(",INF\r\n") == [.double(.infinity)])
        for nan in [",nan\r\n", ",-nan\r\n", ",NaN\r\n"] {
            guard case .double(let value) = values(nan).first else {
                Issue.record("\(nan) did not parse")
                continue
            }
            #expect(value.isNaN)
        }
        #expect(RESPValue.double(.nan).encoded == bytes(",nan\r\n"))
    }

    @Test("RESP3 map, set, push (out-of-band data)")
    func resp3Aggregates() {
        roundTrip(
            "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
            .map([.init(.simpleString("first"), .integer(1)), .init(.simpleString("second"), .integer(2))])
        )
        roundTrip("%0\r\n", .map([]))
        roundTrip(
            "~3\r\n+orange\r\n#t\r\n+orange\r\n",
            .set([.simpleString("orange"), .boolean(true), .simpleString("orange")]))
        roundTrip(
            ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
            .push([.bulkString(bytes("message")), .bulkString(bytes("news")), .bulkString(bytes("hi"))])
        )
        roundTrip("%1\r\n*1\r\n:1\r\n~1\r\n_\r\n", .map([.init(.array([.integer(1)]), .set([.null]))]))
    }

    @Test("attributes are dropped by default, also inside aggregates, and do not count as elements")
    func attributesDropped() {
        let mget =
            "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n"
        #expect(values(mget) == [.array([.integer(2_039_123), .integer(9_543_892)])])
        #expect(values("*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n") == [.array([.integer(1), .integer(2)])])
        #expect(values("|0\r\n+OK\r\n") == [.simpleString("OK")])
    }

    @Test("attributes surfaced: each wraps the value that follows it, at its own level")
    func attributesSurfaced() {
        let surfaced = RESPParser.Configuration(surfaceAttributes: true)
        let ttl = [RESPValue.Pair(.simpleString("ttl"), .integer(3600))]
        #expect(
            values("|1\r\n+ttl\r\n:3600\r\n*2\r\n:1\r\n:2\r\n", surfaced)
                == [.attributed(attributes: ttl, value: .array([.integer(1), .integer(2)]))]
        )
        // Inside an array: only the element after the attribute carries it; the array does not.
        #expect(
            values("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", surfaced)
                == [.array([.integer(1), .attributed(attributes: ttl, value: .integer(2))])]
        )
        // Before an aggregate: the aggregate carries it, not its first element.
        #expect(
            values("|1\r\n+ttl\r\n:3600\r\n*1\r\n:1\r\n", surfaced)
                == [.attributed(attributes: ttl, value: .array([.integer(1)]))]
        )
        // Two attributes in a row merge.
        let two = values("|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n_\r\n", surfaced)
        #expect(
            two == [
                .attributed(
                    attributes: [.init(.simpleString("a"), .integer(1)), .init(.simpleString("b"), .integer(2))],
                    value: .null
                )
            ]
        )
        let value = RESPValue.attributed(attributes: ttl, value: .simpleString("OK"))
        #expect(parseAllSplits(value.encoded, surfaced).values == [value])
        #expect(value.withoutAttributes == .simpleString("OK"))
        #expect(value.string == "OK")
    }

    @Test("several replies in one chunk come out in order; pipelining")
    func severalReplies() throws {
        let text = "+OK\r\n:1\r\n$-1\r\n>2\r\n+pubsub\r\n:1\r\n*1\r\n_\r\n"
        #expect(
            values(text) == [
                .simpleString("OK"), .integer(1), .bulkString(nil), .push([.simpleString("pubsub"), .integer(1)]),
                .array([.null]),
            ]
        )
        var parser = RESPParser()
        let thousand = Array(repeating: bytes(":7\r\n"), count: 1000).flatMap { $0 }
        let all = try parser.parse(thousand)
        #expect(all.count == 1000 && all.allSatisfy { $0 == .integer(7) })
    }

    @Test("isIdle is false inside a reply, also after a top-level attribute, and true between replies")
    func idle() throws {
        var parser = RESPParser()
        #expect(parser.isIdle)
        _ = try parser.parse(bytes("*2\r\n:1\r\n"))
        #expect(!parser.isIdle)
        _ = try parser.parse(bytes(":2\r\n"))
        #expect(parser.isIdle)
        _ = try parser.parse(bytes("$5\r\nhel"))
        #expect(!parser.isIdle)
        _ = try parser.parse(bytes("lo\r\n|1\r\n+a\r\n+b\r\n"))
        #expect(!parser.isIdle)
        #expect(try parser.parse(bytes("+c\r\n")) == [.simpleString("c")])
        #expect(parser.isIdle)
    }

    @Test("value accessors")
    func accessors() {
        #expect(RESPValue.bulkString(bytes("x")).string == "x")
        #expect(RESPValue.verbatimString(format: "txt", text: bytes("y")).string == "y")
        #expect(RESPValue.integer(3).integer == 3)
        #expect(RESPValue.set([.null]).elements == [.null])
        #expect(RESPValue.array(nil).isNull && RESPValue.bulkString(nil).isNull && RESPValue.null.isNull)
        #expect(RESPValue.simpleError("ERR x").errorMessage == "ERR x")
        #expect(RESPValue.bulkError(bytes("E y")).errorMessage == "E y")
        #expect(RESPValue.simpleString("OK").errorMessage == nil)
    }
}
