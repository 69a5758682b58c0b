import ServerSentEvents
import Testing
import WebSocketTestSupport

@Suite("Event stream encoding (WHATWG HTML §9.2.5, §9.2.7)")
struct EncoderTests {
    func text(_ event: ServerSentEvent) -> String {
        String(decoding: EventStreamEncoder.encode(event), as: UTF8.self)
    }

    @Test("fields in order event, data, id, retry, then an empty line; LF line ends")
    func fieldOrder() throws {
        let event = try ServerSentEvent(type: "tick", data: "1", id: "1", retry: 3000)
        #expect(text(event) == "event: tick\ndata: 1\nid: 1\nretry: 3000\n\n")
        #expect(text(ServerSentEvent(data: "x")) == "data: x\n\n")
    }

    @Test("data is split on CR, LF and CRLF into one data line each")
    func dataSplit() throws {
        #expect(text(ServerSentEvent(data: "a\nb\rc\r\nd")) == "data: a\ndata: b\ndata: c\ndata: d\n\n")
        #expect(text(ServerSentEvent(data: "a\n")) == "data: a\ndata: \n\n")
        #expect(text(ServerSentEvent(data: "")) == "data: \n\n")
        #expect(text(ServerSentEvent(data: "\r\r\n")) == "data: \ndata: \ndata: \n\n")
    }

    @Test("a value starting with a space survives (the parser removes only the space we add)")
    func leadingSpace() throws {
        var parser = EventStreamParser()
        let outputs = try parser.parse(EventStreamEncoder.encode(ServerSentEvent(data: "  x")))
        #expect(outputs == [.event(MessageEvent(data: "  x"))])
    }

    @Test("without data only the other fields are written (the client dispatches nothing)")
    func noData() throws {
        #expect(text(try ServerSentEvent(id: "5")) == "id: 5\n\n")
        #expect(EventStreamEncoder.retry(milliseconds: 1500) == Array("retry: 1500\n\n".utf8))
        #expect(EventStreamEncoder.retry(milliseconds: -1) == nil)
    }

    @Test("an empty id is written (it resets the client's last event ID)")
    func emptyID() throws {
        #expect(text(try ServerSentEvent(data: "x", id: "")) == "data: x\nid: \n\n")
    }

    @Test("CR or LF in the event type is refused", arguments: ["a\nb", "a\rb", "\r\n", "x\n"])
    func lineBreakInType(type: String) {
        #expect(throws: ServerSentEventError.lineBreakInType) { try ServerSentEvent(type: type, data: "x") }
    }

    @Test("CR or LF in the id is refused (never on the wire)", arguments: ["1\n", "1\r", "1\r\ndata: injected"])
    func lineBreakInID(id: String) {
        #expect(throws: ServerSentEventError.lineBreakInID) { try ServerSentEvent(data: "x", id: id) }
    }

    @Test("NUL in the id is refused")
    func nullInID() {
        #expect(throws: ServerSentEventError.nullInID) { try ServerSentEvent(data: "x", id: "1\u{0}") }
    }

    @Test("a negative retry is refused")
    func negativeRetry() {
        #expect(throws: ServerSentEventError.negativeRetry) { try ServerSentEvent(retry: -1) }
    }

    @Test("comments: one line per line of text, ':' alone for an empty one")
    func comments() throws {
        #expect(EventStreamEncoder.comment() == Array(":\n".utf8))
        #expect(EventStreamEncoder.comment("hi\nthere\r\n") == Array(": hi\n: there\n:\n".utf8))
        var parser = EventStreamParser()
        #expect(try parser.parse(EventStreamEncoder.comment("a\rb")) == [.comment(" a"), .comment(" b")])
    }
}

@Suite("Encoder → parser round trips over random events and random splits")
struct RoundTripTests {
    static let alphabet: [String] = [
        "a", "b", "z", " ", ":", "\n", "\r", "\r\n", "\u{FEFF}", "é", "\u{2026}", "😀", "\t", "\0", "data", "id: 1",
    ]

    static func randomString(_ rng: inout SeededGenerator, maxLength: Int, excluding: Set<String> = []) -> String {
        let symbols = alphabet.filter { !excluding.contains($0) }
        var result = ""
        for _ in 0..<Int.random(in: 0...maxLength, using: &rng) {
            result += symbols.randomElement(using: &rng) ?? "a"
        }
        return result
    }

    /// What a client sees for `data`: CR and CRLF become LF.
    static func normalized(_ data: String) -> String {
        data.replacingCRLF()
    }

    @Test("random events survive encoding and parsing under random splits", arguments: 0..<8)
    func roundTrip(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 1000 + seed)
        var bytes: [UInt8] = []
        var expected: [EventStreamParser.Output] = []
        var lastEventID = ""
        // A BOM at the start of the stream is removed; start with one sometimes.
        if Bool.random(using: &rng) { bytes += [0xEF, 0xBB, 0xBF] }
        for _ in 0..<60 {
            if Int.random(in: 0..<8, using: &rng) == 0 {
                let comment = Self.randomString(&rng, maxLength: 6)
                EventStreamEncoder.comment(comment, into: &bytes)
                // One comment line per line of the text, each read back with the space we wrote.
                let lines = comment.replacingCRLF().split(separator: "\n", omittingEmptySubsequences: false)
                expected += lines.map { .comment($0.isEmpty ? "" : " " + $0) }
                continue
            }
            let lineBreaks: Set<String> = ["\n", "\r", "\r\n"]
            let type: String? =
                Bool.random(using: &rng) ? Self.randomString(&rng, maxLength: 5, excluding: lineBreaks) : nil
            let data: String? = Int.random(in: 0..<5, using: &rng) == 0 ? nil : Self.randomString(&rng, maxLength: 12)
            let id: String? =
                Bool.random(using: &rng)
                ? Self.randomString(&rng, maxLength: 4, excluding: lineBreaks.union(["\0"])) : nil
            let retry: Int? = Int.random(in: 0..<6, using: &rng) == 0 ? Int.random(in: 0...100_000, using: &rng) : nil
            let event = try ServerSentEvent(type: type, data: data, id: id, retry: retry)
            EventStreamEncoder.encode(event, into: &bytes)
            if let retry { expected.append(.retry(retry)) }
            if let id { lastEventID = id }
            if let data {
                let messageType = (type ?? "").isEmpty ? "message" : type ?? "message"
                let event = MessageEvent(type: messageType, data: Self.normalized(data), lastEventID: lastEventID)
                expected.append(.event(event))
            }
        }
        for _ in 0..<20 {
            var parser = EventStreamParser()
            var outputs: [EventStreamParser.Output] = []
            var index = 0
            while index < bytes.count {
                let length = Int.random(in: 1...min(64, bytes.count - index), using: &rng)
                outputs += try parser.parse(bytes[index..<(index + length)])
                index += length
            }
            #expect(outputs == expected)
            #expect(parser.lastEventID == lastEventID)
        }
    }
}

extension String {
    /// CRLF and lone CR replaced by LF.
    func replacingCRLF() -> String {
        var result = ""
        var previousCR = false
        for scalar in self.unicodeScalars {
            switch scalar {
            case "\r":
                result.unicodeScalars.append("\n")
                previousCR = true
                continue
            case "\n" where previousCR:
                break
            default:
                result.unicodeScalars.append(scalar)
            }
            previousCR = false
        }
        return result
    }
}
