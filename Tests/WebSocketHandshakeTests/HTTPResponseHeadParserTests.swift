import HTTPTypes
import Testing
import WebSocketTestSupport
import WebSocketHandshake

@Suite("HTTP/1.1 response head parser (RFC 9112 §2–§5)")
struct HTTPResponseHeadParserTests {
    /// The RFC 6455 §1.3 answer, with a second field line for one name and OWS to trim.
    static let head = Array(
        ("HTTP/1.1 101 Switching Protocols\r\n" + "Upgrade: websocket\r\n" + "Connection:Upgrade\r\n"
            + "Sec-WebSocket-Accept: \t s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \t\r\n" + "X-Multi: a\r\n" + "X-Multi: b\r\n"
            + "X-Empty:\r\n" + "\r\n").utf8)
    /// A text frame "hi" that the server sent right behind its head.
    static let frame: [UInt8] = [0x81, 0x02, 0x68, 0x69]

    enum Outcome: Equatable, CustomStringConvertible {
        case complete(HTTPResponseHead, consumedTotal: Int)
        case incomplete(consumedTotal: Int)
        case failed(HTTPResponseHeadError)

        var description: String {
            switch self {
            case .complete(let head, let consumed): return "complete \(head.response.status) after \(consumed)"
            case .incomplete(let consumed): return "incomplete after \(consumed)"
            case .failed(let error): return "\(error)"
            }
        }
    }

    /// Feeds `bytes` cut at `cuts` (offsets, ascending); stops at completion. `consumedTotal` counts the bytes
    /// the parser took over all calls, which must be where the head ends.
    static func feed(
        _ bytes: [UInt8],
        cuts: [Int],
        limits: HTTPResponseHeadParser.Limits = .init()
    ) -> Outcome {
        var parser = HTTPResponseHeadParser(limits: limits)
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            do {
                switch try parser.parse(bytes[start..<end]) {
                case .needMoreBytes:
                    break
                case .complete(let head, let consumed):
                    #expect(consumed <= end - start)
                    #expect(parser.headLength == start + consumed)
                    return .complete(head, consumedTotal: start + consumed)
                }
            } catch {
                return .failed(error)
            }
            start = end
        }
        #expect(parser.headLength == bytes.count)
        return .incomplete(consumedTotal: start)
    }

    static func feed(_ text: String, oneByteAtATime: Bool = false) -> Outcome {
        let bytes = Array(text.utf8)
        return feed(bytes, cuts: oneByteAtATime ? Array(0..<bytes.count) : [])
    }

    @Test("a 101 response: status, version, fields in order and trimmed; the frame behind it is not consumed")
    func complete() throws {
        let input = Self.head + Self.frame
        guard case .complete(let head, let consumed) = Self.feed(input, cuts: []) else {
            Issue.record("not complete")
            return
        }
        #expect(consumed == Self.head.count)
        #expect(Array(input[consumed...]) == Self.frame)
        #expect(head.version == .http1_1)
        #expect(head.response.status.code == 101)
        #expect(head.response.status.reasonPhrase == "Switching Protocols")
        let fields = head.response.headerFields
        #expect(fields[.upgrade] == "websocket")
        #expect(fields[.connection] == "Upgrade")
        #expect(fields[.secWebSocketAccept] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let multi = try #require(HTTPField.Name("X-Multi"))
        #expect(fields[values: multi] == ["a", "b"])
        let empty = try #require(HTTPField.Name("X-Empty"))
        #expect(fields[empty] == "")
        #expect(
            fields.map(\.name.rawName) == [
                "Upgrade", "Connection", "Sec-WebSocket-Accept", "X-Multi", "X-Multi", "X-Empty",
            ])
    }

    @Test("every split in two, every byte alone, and random splits give the same head and end")
    func anySplit() {
        let input = Self.head + Self.frame
        let whole = Self.feed(input, cuts: [])
        #expect(Self.feed(input, cuts: Array(0...input.count)) == whole)
        for cut in 0...input.count {
            #expect(Self.feed(input, cuts: [cut]) == whole, "cut at \(cut)")
        }
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let cuts = (0..<Int.random(in: 1...6, using: &generator))
                .map { _ in Int.random(in: 0...input.count, using: &generator) }.sorted()
            #expect(Self.feed(input, cuts: cuts) == whole, "cuts \(cuts)")
        }
    }

    @Test("a head in several calls stays incomplete until the empty line")
    func incomplete() throws {
        var parser = HTTPResponseHeadParser()
        #expect(try parser.parse(Self.head.dropLast(1)) == .needMoreBytes)
        #expect(parser.headLength == Self.head.count - 1)
        guard case .complete(_, let consumed) = try parser.parse([UInt8(ascii: "\n")] + Self.frame) else {
            Issue.record("not complete")
            return
        }
        #expect(consumed == 1)
        // Once complete, the parser consumes nothing more and returns the same head.
        guard case .complete(let again, let consumedAgain) = try parser.parse(Self.frame) else {
            Issue.record("not complete")
            return
        }
        #expect(consumedAgain == 0)
        #expect(again.response.status.code == 101)
    }

    @Test(
        "accepted variants",
        arguments: [
            ("HTTP/1.1 101 \r\n\r\n", 101, ""),
            ("HTTP/1.0 403 Forbidden\r\n\r\n", 403, "Forbidden"),
            ("HTTP/1.9 599 x\tthe reason: with ~ marks\r\n\r\n", 599, "x\tthe reason: with ~ marks"),
            ("HTTP/1.1 100 Continue\r\nA-b.c!#$%&'*+^_`|~9: v a l u e\r\n\r\n", 100, "Continue"),
        ]
    )
    func variants(text: String, code: Int, reason: String) {
        guard case .complete(let head, _) = Self.feed(text) else {
            Issue.record("refused \(text.debugDescription)")
            return
        }
        #expect(head.response.status.code == code)
        #expect(head.response.status.reasonPhrase == reason)
        #expect(Self.feed(text, oneByteAtATime: true) == Self.feed(text))
    }

    @Test("obs-text (bytes 0x80–0xFF) is allowed in field values and the reason phrase")
    func obsText() throws {
        let bytes =
            Array("HTTP/1.1 101 Gr".utf8) + [0xFC, 0xDF] + Array("e\r\nX-Name: caf".utf8) + [0xC3, 0xA9, 0xFF]
            + Array("\r\n\r\n".utf8)
        guard case .complete(let head, let consumed) = Self.feed(bytes, cuts: []) else {
            Issue.record("refused obs-text")
            return
        }
        #expect(consumed == bytes.count)
        let name = try #require(HTTPField.Name("X-Name"))
        #expect(head.response.headerFields[name] != nil)
    }

    @Test(
        "malformed heads are refused with the rule they break, whole and one byte at a time",
        arguments: [
            ("HTTP/1.1 101\r\n\r\n", HTTPResponseHeadError.malformedStatusLine),
            ("HTTP/1.1  101 x\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 1O1 x\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 1011 x\r\n\r\n", .malformedStatusLine),
            ("http/1.1 101 x\r\n\r\n", .malformedStatusLine),
            ("HTTP/11 101 x\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 101 a\u{7F}b\r\n\r\n", .malformedStatusLine),
            ("SSH-2.0-OpenSSH_9.6\r\n\r\n", .malformedStatusLine),
            ("\r\nHTTP/1.1 101 x\r\n\r\n", .malformedStatusLine),
            ("HTTP/2.0 101 x\r\n\r\n", .unsupportedVersion),
            ("HTTP/0.9 200 x\r\n\r\n", .unsupportedVersion),
            ("HTTP/1.1 099 x\r\n\r\n", .invalidStatusCode),
            ("HTTP/1.1 600 x\r\n\r\n", .invalidStatusCode),
            ("HTTP/1.1 101 x\n\n", .invalidLineEnding),
            ("HTTP/1.1 101 x\r\nA: b\n\r\n", .invalidLineEnding),
            ("HTTP/1.1 101 x\r\nA: b\rc\r\n\r\n", .invalidLineEnding),
            ("HTTP/1.1 101 x\r\nA: b\r\n\n", .invalidLineEnding),
            ("HTTP/1.1 101 x\r\nA: b\r\n c\r\n\r\n", .obsoleteLineFolding),
            ("HTTP/1.1 101 x\r\nA: b\r\n\tc\r\n\r\n", .obsoleteLineFolding),
            ("HTTP/1.1 101 x\r\n A: b\r\n\r\n", .obsoleteLineFolding),
            ("HTTP/1.1 101 x\r\nUpgrade : websocket\r\n\r\n", .whitespaceBeforeColon),
            ("HTTP/1.1 101 x\r\nUpgrade\t: websocket\r\n\r\n", .whitespaceBeforeColon),
            ("HTTP/1.1 101 x\r\nUpgrade websocket\r\n\r\n", .missingColon),
            ("HTTP/1.1 101 x\r\n: websocket\r\n\r\n", .invalidFieldName),
            ("HTTP/1.1 101 x\r\nUp grade: websocket\r\n\r\n", .invalidFieldName),
            ("HTTP/1.1 101 x\r\nUp(grade): websocket\r\n\r\n", .invalidFieldName),
            ("HTTP/1.1 101 x\r\nUpgräde: websocket\r\n\r\n", .invalidFieldName),
            ("HTTP/1.1 101 x\r\nA: b\u{0}c\r\n\r\n", .invalidFieldValue),
            ("HTTP/1.1 101 x\r\nA: b\u{7F}\r\n\r\n", .invalidFieldValue),
            ("HTTP/1.1 101 x\r\nA: \u{1B}[31m\r\n\r\n", .invalidFieldValue),
        ]
    )
    func refused(text: String, expected: HTTPResponseHeadError) {
        #expect(Self.feed(text) == .failed(expected))
        #expect(Self.feed(text, oneByteAtATime: true) == .failed(expected))
    }

    @Test("a non-HTTP peer is refused at its first byte, without waiting for a line end")
    func failsFast() {
        var parser = HTTPResponseHeadParser()
        #expect(throws: HTTPResponseHeadError.malformedStatusLine) { try parser.parse(Array("S".utf8)) }
        // The parser stays failed.
        #expect(throws: HTTPResponseHeadError.malformedStatusLine) { try parser.parse(Array("HTTP/1.1".utf8)) }
    }

    @Test("the head length limit counts the head only, up to and including the last LF")
    func headLengthLimit() {
        let length = Self.head.count
        let exact = HTTPResponseHeadParser.Limits(maxHeadLength: length)
        let input = Self.head + Self.frame
        #expect(Self.feed(input, cuts: [], limits: exact) == Self.feed(input, cuts: []))
        #expect(Self.feed(input, cuts: Array(0...input.count), limits: exact) == Self.feed(input, cuts: []))
        let short = HTTPResponseHeadParser.Limits(maxHeadLength: length - 1)
        #expect(Self.feed(input, cuts: [], limits: short) == .failed(.headTooLong))
        #expect(Self.feed(input, cuts: Array(0...input.count), limits: short) == .failed(.headTooLong))
    }

    @Test("a head that never ends fails at the limit, having consumed no more than the limit")
    func endlessHead() throws {
        var parser = HTTPResponseHeadParser()
        #expect(try parser.parse(Array("HTTP/1.1 101 x\r\nX: ".utf8)) == .needMoreBytes)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        var error: HTTPResponseHeadError?
        for _ in 0..<20 where error == nil {
            do {
                _ = try parser.parse(chunk)
            } catch let caught {
                error = caught
            }
        }
        #expect(error == .headTooLong)
        #expect(parser.headLength == 16 * 1024)
        #expect(error?.description.contains("16384") == true)
    }

    @Test("the field count limit")
    func fieldCountLimit() {
        let fields = (0..<5).map { "X-\($0): \($0)\r\n" }.joined()
        let text = "HTTP/1.1 101 x\r\n" + fields + "\r\n"
        let bytes = Array(text.utf8)
        #expect(Self.feed(bytes, cuts: [], limits: .init(maxFieldCount: 5)) != .failed(.tooManyFields))
        #expect(Self.feed(bytes, cuts: [], limits: .init(maxFieldCount: 4)) == .failed(.tooManyFields))
        #expect(Self.feed(bytes, cuts: [], limits: .init(maxFieldCount: 0)) == .failed(.tooManyFields))
    }

    @Test("error descriptions name the rule and show the offending bytes escaped")
    func descriptions() {
        guard case .failed(let error) = Self.feed("HTTP/1.1 101 x\r\nA: b\u{0}c\r\n\r\n") else {
            Issue.record("accepted")
            return
        }
        #expect(error.description.contains("RFC 9110 §5.5"))
        #expect(error.description.contains("0x0"))
        guard case .failed(let statusError) = Self.feed("SSH-2.0\u{1B}\r\n") else {
            Issue.record("accepted")
            return
        }
        #expect(statusError.description.contains("RFC 9112 §4"))
    }
}
