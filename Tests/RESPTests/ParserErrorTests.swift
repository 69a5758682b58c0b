import RESP
import Testing

/// Protocol violations and limits: each input fails with its precise error, whatever the split, and the
/// parser stays failed.
@Suite("RESP violations and limits")
struct ParserErrorTests {
    @Test("an unknown type byte")
    func typeByte() {
        #expect(error("x\r\n") == .invalidTypeByte(UInt8(ascii: "x")))
        #expect(error("+OK\r\n\r\n") == .invalidTypeByte(0x0D))
        #expect(error(" +OK\r\n") == .invalidTypeByte(0x20))
        #expect(error(";4\r\n") == .invalidTypeByte(UInt8(ascii: ";")))
    }

    @Test("lines end with CRLF: no lone LF, no CR without LF")
    func lineEnds() {
        #expect(error("+OK\n") == .lineFeedWithoutCarriageReturn)
        #expect(error("+O\nK\r\n") == .lineFeedWithoutCarriageReturn)
        #expect(error("+OK\rX\r\n") == .carriageReturnWithoutLineFeed)
        #expect(error(":1\r\r\n") == .carriageReturnWithoutLineFeed)
        #expect(error("$1\n") == .lineFeedWithoutCarriageReturn)
    }

    @Test("bulk data must be followed by exactly CRLF")
    func bulkTerminator() {
        #expect(error("$2\r\nabc\r\n") == .missingBulkTerminator)
        #expect(error("$2\r\nab\n") == .missingBulkTerminator)
        #expect(error("$2\r\nab\rX") == .missingBulkTerminator)
        #expect(error("!1\r\nab") == .missingBulkTerminator)
    }

    @Test("lengths and counts: digits only, -1 only for $ and *, at most 19 digits")
    func lengths() {
        let dollar = UInt8(ascii: "$")
        #expect(error("$\r\n") == .invalidLength(type: dollar))
        #expect(error("$+1\r\n") == .invalidLength(type: dollar))
        #expect(error("$1a\r\n") == .invalidLength(type: dollar))
        #expect(error("$-2\r\n") == .invalidLength(type: dollar))
        #expect(error("$ 1\r\n") == .invalidLength(type: dollar))
        #expect(error("$99999999999999999999\r\n") == .invalidLength(type: dollar))  // 20 digits, at the 20th
        #expect(error("$9999999999999999999\r\n") == .invalidLength(type: dollar))  // above 2^63 - 1
        #expect(error("$9223372036854775807\r\n") == .bulkTooLong(length: .max, limit: 16 << 20))
        #expect(error("!-1\r\n") == .invalidLength(type: UInt8(ascii: "!")))
        #expect(error("=-1\r\n") == .invalidLength(type: UInt8(ascii: "=")))
        #expect(error("%-1\r\n") == .invalidLength(type: UInt8(ascii: "%")))
        #expect(error("~-1\r\n") == .invalidLength(type: UInt8(ascii: "~")))
        #expect(error(">-1\r\n") == .invalidLength(type: UInt8(ascii: ">")))
        #expect(error("|-1\r\n") == .invalidLength(type: UInt8(ascii: "|")))
        #expect(error("*-0\r\n") == .invalidLength(type: UInt8(ascii: "*")))
        #expect(error("$?\r\n") == .streamedTypeUnsupported(type: dollar))
        #expect(error("*?\r\n") == .streamedTypeUnsupported(type: UInt8(ascii: "*")))
    }

    @Test("a length line longer than 19 bytes fails before its CRLF arrives")
    func longLengthLine() {
        let outcome = parseAllSplits(bytes("*" + String(repeating: "1", count: 20)))
        #expect(outcome.error == .invalidLength(type: UInt8(ascii: "*")))
    }

    @Test("a line breaking two limits reports the one its first excess byte breaks, however it is split")
    func firstLimitWins() {
        let long = "*" + String(repeating: "1", count: 25)
        #expect(error(long, RESPParser.Configuration(maxReplyBytes: 10)) == .replyTooLarge(limit: 10))
        #expect(error(long, RESPParser.Configuration(maxReplyBytes: 100)) == .invalidLength(type: UInt8(ascii: "*")))
        // Fuzzer regression: a map length line of NULs past both limits.
        let nuls = "+k\r\n%" + String(repeating: "\u{12}", count: 70)
        #expect(error(nuls, RESPParser.Configuration(maxReplyBytes: 60)) == .invalidLength(type: UInt8(ascii: "%")))
    }

    @Test("consecutive attributes, merged for the value after them, stay within the aggregate limit")
    func mergedAttributesLimit() {
        let surfaced = RESPParser.Configuration(maxAggregateCount: 4, surfaceAttributes: true)
        // Two attributes of one pair each: 2 pairs (4 elements) merged, within 4.
        #expect(error("|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n:7\r\n", surfaced) == nil)
        // A third would make 3 pairs (6 elements): refused when its header is read (fuzzer regression).
        #expect(
            error("|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n|1\r\n+c\r\n:3\r\n:7\r\n", surfaced)
                == .aggregateTooLarge(count: 3, limit: 4))
        // Dropped attributes are not merged, so not limited together.
        let dropped = RESPParser.Configuration(maxAggregateCount: 4)
        #expect(error("|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n|1\r\n+c\r\n:3\r\n:7\r\n", dropped) == nil)
    }

    @Test("integers: sign and digits, 64-bit range")
    func integers() {
        for bad in [
            ":\r\n", ":-\r\n", ":1.5\r\n", ":1 \r\n", ":9223372036854775808\r\n", ":-9223372036854775809\r\n",
            ":0x1\r\n",
        ] {
            #expect(error(bad) == .invalidInteger, "\(bad)")
        }
    }

    @Test("doubles: RESP3.md's grammar")
    func doubles() {
        for bad in [
            ",\r\n", ",.5\r\n", ",1.\r\n", ",1e\r\n", ",1e+\r\n", ",abc\r\n", ",1.5x\r\n", ",--1\r\n", ",infinity\r\n",
        ] {
            #expect(error(bad) == .invalidDouble, "\(bad)")
        }
    }

    @Test("booleans, nulls, big numbers, verbatim strings")
    func resp3Scalars() {
        #expect(error("#T\r\n") == .invalidBoolean)
        #expect(error("#\r\n") == .invalidBoolean)
        #expect(error("#tt\r\n") == .invalidBoolean)
        #expect(error("_x\r\n") == .invalidNull)
        #expect(error("(\r\n") == .invalidBigNumber)
        #expect(error("(12a\r\n") == .invalidBigNumber)
        #expect(error("(-\r\n") == .invalidBigNumber)
        #expect(error("=3\r\ntxt\r\n") == .invalidVerbatimString)
        #expect(error("=5\r\ntxt-x\r\n") == .invalidVerbatimString)
        #expect(error("=4\r\nt\u{e9}:\r\n") == .invalidVerbatimString)  // a format of 3 bytes, not ASCII
    }

    @Test("$999999999999 fails at once, before any allocation, with the announced length")
    func hugeBulk() {
        #expect(error("$999999999999\r\n") == .bulkTooLong(length: 999_999_999_999, limit: 16 << 20))
        let small = RESPParser.Configuration(maxBulkLength: 4)
        #expect(values("$4\r\nabcd\r\n", small) == [.bulkString(bytes("abcd"))])
        #expect(error("$5\r\nabcde\r\n", small) == .bulkTooLong(length: 5, limit: 4))
        #expect(error("!5\r\n", small) == .bulkTooLong(length: 5, limit: 4))
        #expect(error("=9\r\n", small) == .bulkTooLong(length: 9, limit: 4))
    }

    @Test("aggregate counts: the announced count, pairs counting twice")
    func aggregateCount() {
        let limit = RESPParser.Configuration(maxAggregateCount: 4)
        #expect(values("*4\r\n_\r\n_\r\n_\r\n_\r\n", limit).count == 1)
        #expect(error("*5\r\n", limit) == .aggregateTooLarge(count: 5, limit: 4))
        #expect(error("~5\r\n", limit) == .aggregateTooLarge(count: 5, limit: 4))
        #expect(error(">5\r\n", limit) == .aggregateTooLarge(count: 5, limit: 4))
        #expect(values("%2\r\n_\r\n_\r\n_\r\n_\r\n", limit).count == 1)
        #expect(error("%3\r\n", limit) == .aggregateTooLarge(count: 3, limit: 4))
        #expect(error("|3\r\n", limit) == .aggregateTooLarge(count: 3, limit: 4))
        #expect(error("*9223372036854775807\r\n") == .aggregateTooLarge(count: .max, limit: 1 << 20))
        #expect(error("%9223372036854775807\r\n") == .aggregateTooLarge(count: .max, limit: 1 << 20))
    }

    @Test("nesting depth: a top-level aggregate is depth 1; attributes count")
    func depth() {
        let two = RESPParser.Configuration(maxDepth: 2)
        #expect(values("*1\r\n*1\r\n:1\r\n", two) == [.array([.array([.integer(1)])])])
        #expect(error("*1\r\n*1\r\n*1\r\n:1\r\n", two) == .nestingTooDeep(limit: 2))
        #expect(error("*1\r\n|1\r\n*0\r\n", two) == .nestingTooDeep(limit: 2))
        #expect(error(String(repeating: "*1\r\n", count: 33)) == .nestingTooDeep(limit: 32))
    }

    @Test("total bytes of one reply, attributes included; the counter restarts with each reply")
    func replyBytes() {
        let ten = RESPParser.Configuration(maxReplyBytes: 10)
        #expect(values("+1234567\r\n+1234567\r\n", ten).count == 2)  // 10 bytes each
        #expect(error("+123456789\r\n", ten) == .replyTooLarge(limit: 10))
        #expect(error("+1234567890123", ten) == .replyTooLarge(limit: 10))  // fails before the CRLF
        // A bulk that cannot fit fails when its length is read: 4 + 5 + 2 > 10.
        #expect(error("$5\r\nabcde\r\n", ten) == .replyTooLarge(limit: 10))
        #expect(values("$4\r\nabcd\r\n", ten) == [.bulkString(bytes("abcd"))])
        #expect(error("*3\r\n:1\r\n:2\r\n", ten) == .replyTooLarge(limit: 10))
        #expect(error("|1\r\n+a\r\n+b\r\n+c\r\n", ten) == .replyTooLarge(limit: 10))
    }

    @Test("a failure is final: values before it are delivered, later calls throw it again until reset()")
    func sticky() throws {
        var parser = RESPParser()
        var seen: [RESPValue] = []
        #expect(throws: RESPParseError.invalidTypeByte(UInt8(ascii: "?"))) {
            try parser.parse(bytes("+OK\r\n?")) { seen.append($0) }
        }
        #expect(seen == [.simpleString("OK")])
        #expect(!parser.isIdle)
        #expect(throws: RESPParseError.invalidTypeByte(UInt8(ascii: "?"))) { try parser.parse(bytes("+OK\r\n")) }
        parser.reset()
        #expect(try parser.parse(bytes("+OK\r\n")) == [.simpleString("OK")])
    }

    @Test("errors describe themselves")
    func descriptions() {
        #expect(RESPParseError.invalidTypeByte(0x0D).description == "invalid RESP type byte 0xd")
        #expect(RESPParseError.bulkTooLong(length: 9, limit: 4).description == "bulk of 9 bytes exceeds the limit of 4")
    }
}
