import ServerSentEvents
import Testing

/// One test per rule of WHATWG HTML §9.2.5 "Parsing an event stream" and §9.2.6 "Interpreting an event
/// stream"; each fails if its rule is removed from ``EventStreamParser``. Every input is also parsed one byte
/// at a time and split at every position (`parseAllSplits`). Cases marked WPT carry the stream bodies of the
/// web-platform-tests `eventsource/format-*` tests.
@Suite("Event stream parsing rules (WHATWG HTML §9.2.5-9.2.6)")
struct ParserRuleTests {
    // MARK: Line ends (§9.2.5 end-of-line = CRLF / CR / LF)

    @Test("LF, CR and CRLF each end a line")
    func lineEnds() {
        #expect(dataOf("data:a\n\n") == ["a"])
        #expect(dataOf("data:a\r\r") == ["a"])
        #expect(dataOf("data:a\r\n\r\n") == ["a"])
        #expect(dataOf("data:a\rdata:b\ndata:c\r\n\n") == ["a\nb\nc"])
    }

    @Test("a CRLF split between two reads is one line end, not two")
    func crlfSplitAcrossReads() throws {
        var parser = EventStreamParser()
        var outputs = try parser.parse(Array("data:a\r".utf8))
        outputs += try parser.parse(Array("\ndata:b\r".utf8))
        outputs += try parser.parse(Array("\n\r".utf8))
        outputs += try parser.parse(Array("\n".utf8))
        #expect(events(outputs).map(\.data) == ["a\nb"])
    }

    @Test("CR CR is two line ends (an empty line), LF CR too; CR LF is one (WPT format-newlines)")
    func crCrIsTwoLines() {
        #expect(dataOf("data:a\r\rdata:b\n\rdata:c\r\n\r\n") == ["a", "b", "c"])
        #expect(dataOf("data:test\r\ndata\ndata:test\r\n\r") == ["test\n\ntest"])
    }

    // MARK: Byte order mark (UTF-8 decode)

    @Test("one BOM at the start of the stream is removed")
    func leadingBOM() {
        #expect(dataOf("\u{FEFF}data:1\n\n") == ["1"])
    }

    @Test("only one BOM is removed: a second one makes the first field name unknown (WPT format-bom-2)")
    func doubleBOM() {
        #expect(dataOf("\u{FEFF}\u{FEFF}data:1\n\ndata:2\n\ndata:3\n\n") == ["2", "3"])
    }

    @Test("a BOM later in the stream is not removed (WPT format-bom)")
    func bomInTheMiddle() {
        #expect(dataOf("\u{FEFF}data:1\n\n\u{FEFF}data:2\n\ndata:3\n\n") == ["1", "3"])
    }

    @Test("a partial BOM at the start is ordinary text")
    func partialBOM() {
        // EF BB followed by 'd': not a BOM; the bytes decode to U+FFFD and make the field name unknown.
        let bytes: [UInt8] = [0xEF, 0xBB] + Array("data:1\n\ndata:2\n\n".utf8)
        #expect(events(parseAllSplits(bytes).outputs).map(\.data) == ["2"])
    }

    @Test("a new stream after finish() gets its own BOM removed")
    func bomAfterReconnect() throws {
        var parser = EventStreamParser()
        _ = try parser.parse(Array("\u{FEFF}data:1\n\n".utf8))
        parser.finish()
        #expect(events(try parser.parse(Array("\u{FEFF}data:2\n\n".utf8))).map(\.data) == ["2"])
    }

    // MARK: UTF-8

    @Test("text is UTF-8 whatever the charset; invalid bytes become U+FFFD (WPT format-utf-8)")
    func utf8() {
        #expect(dataOf("data:ok\u{2026}\n\n") == ["ok\u{2026}"])
        let bytes: [UInt8] = Array("data:a".utf8) + [0xFF, 0xE2, 0x80] + Array("\n\n".utf8)
        #expect(events(parseAllSplits(bytes).outputs).map(\.data) == ["a\u{FFFD}\u{FFFD}"])
    }

    @Test("NUL in data is kept (WPT format-null-character)")
    func nullInData() {
        #expect(dataOf("data:\0\n\n") == ["\0"])
    }

    // MARK: Fields (§9.2.5 field syntax)

    @Test("a line without a colon is a field with an empty value")
    func fieldWithoutColon() {
        #expect(dataOf("data\ndata\n\n") == ["\n"])
        #expect(dataOf("data\n\n") == [""])
    }

    @Test("exactly one leading space is removed from the value")
    func oneLeadingSpace() {
        #expect(dataOf("data: x\n\n") == ["x"])
        #expect(dataOf("data:  x\n\n") == [" x"])
        #expect(dataOf("data:x \n\n") == ["x "])
        // WPT format-leading-space: a tab is not a space.
        #expect(dataOf("data:\ttest\rdata: \ndata:test\n\n") == ["\ttest\n\ntest"])
    }

    @Test("the value starts after the first colon; later colons are part of it")
    func firstColonSplits() {
        #expect(dataOf("data:a:b: c\n\n") == ["a:b: c"])
    }

    @Test("field names are case-sensitive and unknown fields are ignored (WPT format-field-parsing, -unknown)")
    func fieldNames() {
        #expect(
            dataOf(
                "data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n"
                    + " data:32\ndata:4\n\n"
            ) == ["\0\n 2\n1\n3\n\n4"]
        )
        #expect(dataOf("data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n") == [
            "test\n\ntest"
        ])
    }

    // MARK: Comments

    @Test("a line starting with a colon is a comment, surfaced and never dispatched (WPT format-comments)")
    func comments() {
        let long = String(repeating: "x", count: 2048)
        let result = parseAllSplits("data:1\r:\0\n:\r\ndata:2\n:\(long)\rdata:3\n:data:fail\r:\(long)\ndata:4\n\n")
        #expect(events(result.outputs).map(\.data) == ["1\n2\n3\n4"])
        let comments = result.outputs.compactMap { if case .comment(let text) = $0 { text } else { nil } }
        #expect(comments == ["\0", "", long, "data:fail", long])
        #expect(parseAllSplits(": keep-alive\n").outputs == [.comment(" keep-alive")])
    }

    // MARK: data

    @Test("data lines are joined with LF and one final LF is removed (WPT format-field-data)")
    func dataJoining() {
        #expect(dataOf("data:\n\ndata\ndata\n\ndata:test\n\n") == ["", "\n", "test"])
        #expect(dataOf("data:\ndata:x\n\n") == ["\nx"])
        #expect(dataOf("data:a\ndata:\n\n") == ["a\n"])
    }

    @Test("several empty lines between events dispatch nothing more")
    func repeatedEmptyLines() {
        #expect(dataOf("\n\n\ndata:a\n\n\n\ndata:b\n\n") == ["a", "b"])
    }

    // MARK: event

    @Test("event sets the type; an empty or missing type is message (WPT format-field-event, -event-empty)")
    func eventType() {
        let result = events(parseAllSplits("event:test\ndata:x\n\nevent: \ndata:y\n\ndata:z\n\n").outputs)
        #expect(result.map(\.type) == ["test", "message", "message"])
        #expect(result.map(\.data) == ["x", "y", "z"])
    }

    @Test("the type is reset after each dispatch")
    func typeResetAfterDispatch() {
        #expect(events(parseAllSplits("event:a\ndata:1\n\ndata:2\n\n").outputs).map(\.type) == ["a", "message"])
    }

    @Test("a block with only event dispatches nothing, and its type does not leak into the next event")
    func eventOnlyBlock() {
        let result = events(parseAllSplits("event: foo\n\ndata: a\n\n").outputs)
        #expect(result == [MessageEvent(type: "message", data: "a", lastEventID: "")])
    }

    // MARK: id

    @Test("id sets the last event ID, which persists across later events (WPT last-event-id2 case 1, 2)")
    func idPersists() {
        var result = events(parseAllSplits("id: 1\ndata: 1\n\ndata:2\n\n").outputs)
        #expect(result.map(\.lastEventID) == ["1", "1"])
        result = events(parseAllSplits("id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n").outputs)
        #expect(result.map(\.lastEventID) == ["1", "2", "2"])
    }

    @Test("an empty id resets the last event ID (WPT last-event-id2 case 3)")
    func emptyIDResets() {
        let result = parseAllSplits("id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n")
        #expect(events(result.outputs).map(\.lastEventID) == ["1", "", ""])
        #expect(result.lastEventID == "")
    }

    @Test("an id containing NUL is ignored (WPT format-field-id-null)")
    func idWithNull() {
        let result = parseAllSplits("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n")
        #expect(events(result.outputs).map(\.lastEventID) == ["1", "1"])
        #expect(result.lastEventID == "1")
    }

    @Test("a block without data dispatches nothing but its id still becomes the last event ID")
    func idOnlyBlock() {
        let result = parseAllSplits("id: 7\n\n")
        #expect(result.outputs.isEmpty)
        #expect(result.lastEventID == "7")
        #expect(events(parseAllSplits("id: 7\n\ndata: a\n\n").outputs) == [MessageEvent(data: "a", lastEventID: "7")])
    }

    @Test("the last event ID changes at dispatch, not when the id line is read")
    func idCommittedAtDispatch() throws {
        var parser = EventStreamParser()
        _ = try parser.parse(Array("id: 1\n\nid: 2\n".utf8))
        #expect(parser.lastEventID == "1")
        _ = try parser.parse(Array("\n".utf8))
        #expect(parser.lastEventID == "2")
    }

    // MARK: retry

    @Test("retry with only ASCII digits sets the reconnection time, 0 included (WPT format-field-retry)")
    func retryDigits() {
        #expect(parseAllSplits("retry:1000\n").outputs == [.retry(1000)])
        #expect(parseAllSplits("retry: 0\n").outputs == [.retry(0)])
        #expect(parseAllSplits("retry:007\n").outputs == [.retry(7)])
    }

    @Test("retry with anything but digits is ignored (WPT format-field-retry-bogus)", arguments: [
        "retry:1000x", "retry:+5", "retry:-5", "retry:  5", "retry:1_000", "retry:5.0", "retry:", "retry",
        "retry:\u{0665}",
    ])
    func retryBogus(line: String) {
        #expect(parseAllSplits(line + "\n").outputs.isEmpty)
        #expect(
            parseAllSplits("retry:2000\n\(line)\ndata:x\n\n").outputs == [.retry(2000), .event(MessageEvent(data: "x"))]
        )
    }

    @Test("a huge retry saturates instead of overflowing")
    func retryHuge() {
        #expect(parseAllSplits("retry:99999999999999999999999\n").outputs == [.retry(Int.max)])
    }

    @Test("retry takes effect when read, before the event of its block is dispatched")
    func retryOrder() {
        #expect(parseAllSplits("data:a\nretry:5\n\n").outputs == [.retry(5), .event(MessageEvent(data: "a"))])
    }

    // MARK: End of stream

    @Test("an unterminated event is discarded at the end of the stream (WPT format-data-before-final-empty-line)")
    func incompleteEventDiscarded() throws {
        var parser = EventStreamParser()
        #expect(events(try parser.parse(Array("data:1\n\ndata:2\n".utf8))).map(\.data) == ["1"])
        parser.finish()
        #expect(events(try parser.parse(Array("data:3\n\n".utf8))).map(\.data) == ["3"])
        parser.finish()
        // Also a block cut in the middle of a line.
        _ = try parser.parse(Array("data:4".utf8))
        parser.finish()
        #expect(events(try parser.parse(Array("\n\n".utf8))).isEmpty)
    }

    @Test("an id not dispatched before the end of the stream does not change the last event ID")
    func pendingIDDiscarded() throws {
        var parser = EventStreamParser()
        _ = try parser.parse(Array("id: 1\ndata: a\n\nid: 2\n".utf8))
        parser.finish()
        #expect(parser.lastEventID == "1")
        #expect(events(try parser.parse(Array("data: b\n\n".utf8))) == [MessageEvent(data: "b", lastEventID: "1")])
    }

    @Test("a pending CR at the end of the stream does not swallow the next stream's first LF")
    func pendingCRDiscarded() throws {
        var parser = EventStreamParser()
        _ = try parser.parse(Array("data:a\r".utf8))
        parser.finish()
        // A new stream starting with LF: that is an empty line (dispatches nothing: the buffer is empty).
        #expect(events(try parser.parse(Array("\ndata:b\n\n".utf8))).map(\.data) == ["b"])
    }

    @Test("the parser can start from a known last event ID (a resumed stream)")
    func initialLastEventID() throws {
        var parser = EventStreamParser(lastEventID: "41")
        #expect(events(try parser.parse(Array("data:x\n\n".utf8))) == [MessageEvent(data: "x", lastEventID: "41")])
    }

    // MARK: Limits

    @Test("a line longer than maxLineLength fails the stream, and the failure sticks until finish()")
    func lineLimit() throws {
        var parser = EventStreamParser(configuration: .init(maxLineLength: 10, maxEventLength: 100))
        #expect(events(try parser.parse(Array("data:12345\n\n".utf8))).map(\.data) == ["12345"])  // 10 bytes: ok
        #expect(throws: EventStreamError.lineTooLong(limit: 10)) {
            _ = try parser.parse(Array("data:123".utf8))
            _ = try parser.parse(Array("456".utf8))
        }
        #expect(throws: EventStreamError.lineTooLong(limit: 10)) { _ = try parser.parse(Array("\n\n".utf8)) }
        parser.finish()
        #expect(events(try parser.parse(Array("data:1\n\n".utf8))).map(\.data) == ["1"])
    }

    @Test("comments count against the line limit too")
    func commentLineLimit() {
        var parser = EventStreamParser(configuration: .init(maxLineLength: 4, maxEventLength: 100))
        #expect(throws: EventStreamError.lineTooLong(limit: 4)) { _ = try parser.parse(Array(":abcd".utf8)) }
    }

    @Test("an event larger than maxEventLength fails the stream")
    func eventLimit() throws {
        // The data buffer holds each value and an LF: "123\n1234\n" is 9 bytes.
        var parser = EventStreamParser(configuration: .init(maxLineLength: 100, maxEventLength: 9))
        #expect(events(try parser.parse(Array("data:123\ndata:1234\n\n".utf8))).map(\.data) == ["123\n1234"])
        #expect(throws: EventStreamError.eventTooLarge(limit: 9)) {
            _ = try parser.parse(Array("data:123\ndata:12345\n".utf8))
        }
        // The event type counts too: 4 + 6 bytes.
        var typed = EventStreamParser(configuration: .init(maxLineLength: 100, maxEventLength: 9))
        #expect(throws: EventStreamError.eventTooLarge(limit: 9)) {
            _ = try typed.parse(Array("event:1234\ndata:12345\n".utf8))
        }
    }

    @Test("a stream of lines without end never holds more than the limit")
    func unterminatedLineBounded() throws {
        var parser = EventStreamParser(configuration: .init(maxLineLength: 1024, maxEventLength: 4096))
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
        var thrown: EventStreamError?
        for _ in 0..<100 {
            do { _ = try parser.parse(chunk) } catch { thrown = error; break }
        }
        #expect(thrown == .lineTooLong(limit: 1024))
    }
}
