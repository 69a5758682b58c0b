import FuzzSupport
import ServerSentEvents

// Arbitrary `text/event-stream` bytes through `EventStreamParser`. The first byte picks the limits, the second
// how the input is split. Invariants: the whole input, the split input and the input one byte at a time give
// the same outputs, the same error and the same last event ID; nothing dispatched exceeds the limits (UTF-8
// repair may triple a byte); no dispatched type is empty; no field value holds a line break; and every
// dispatched event, encoded again with its type, data and last event ID, parses back to itself.

struct Run: Equatable {
    var outputs: [EventStreamParser.Output] = []
    var error: EventStreamError?
    var lastEventID = ""
}

func run(_ bytes: [UInt8], _ configuration: EventStreamParser.Configuration, chunks: [Int]) -> Run {
    var parser = EventStreamParser(configuration: configuration)
    var result = Run()
    var position = 0
    var chunkIndex = 0
    while position < bytes.count {
        let size = chunks.isEmpty ? bytes.count : max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(bytes.count, position + size)
        do {
            try parser.parse(bytes[position..<end]) { result.outputs.append($0) }
        } catch {
            result.error = error
            break
        }
        position = end
    }
    result.lastEventID = parser.lastEventID
    parser.finish()
    if parser.lastEventID != result.lastEventID { violated("finish() changed the last event ID") }
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func eventStreamParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let limits = input.byte()
    let split = input.byte()
    let bytes = input.rest()
    let configuration = EventStreamParser.Configuration(
        maxLineLength: limits & 1 == 0 ? 1 << 20 : Int(limits >> 1) + 1,
        maxEventLength: limits & 2 == 0 ? 1 << 20 : Int(limits >> 2) * 4 + 1
    )
    let whole = run(bytes, configuration, chunks: [])
    if run(bytes, configuration, chunks: chunkSizes(split)) != whole { violated("split input differs") }
    if run(bytes, configuration, chunks: [1]) != whole { violated("byte-at-a-time input differs") }

    for output in whole.outputs {
        switch output {
        case .event(let event):
            if event.type.isEmpty { violated("empty type dispatched") }
            if event.data.utf8.count > 3 * configuration.maxEventLength { violated("event above the limit") }
            if event.type != "message", event.type.utf8.count > 3 * configuration.maxEventLength {
                violated("type above the limit")  // "message" is the default, not read from the stream
            }
            for value in [event.type, event.data, event.lastEventID] where value.utf8.contains(0x0D) {
                violated("CR in a value")
            }
            if event.type.utf8.contains(0x0A) || event.lastEventID.utf8.contains(0x0A) { violated("LF in type/id") }
            if event.lastEventID.utf8.contains(0) { violated("NUL in id") }
            // Encode again and parse: the same event.
            guard let again = try? ServerSentEvent(type: event.type, data: event.data, id: event.lastEventID) else {
                violated("a dispatched event cannot be encoded")
            }
            var parser = EventStreamParser()
            let reparsed = try? parser.parse(EventStreamEncoder.encode(again))
            if reparsed != [.event(event)] { violated("re-encoded event differs: \(String(describing: reparsed))") }
        case .retry(let milliseconds):
            if milliseconds < 0 { violated("negative retry") }
        case .comment(let text):
            if text.utf8.count > 3 * configuration.maxLineLength { violated("comment above the line limit") }
            if text.utf8.contains(0x0A) || text.utf8.contains(0x0D) { violated("line break in a comment") }
        }
    }
    return 0
}

@_cdecl("EventStreamParserFuzzer_main")
func eventStreamParserFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, eventStreamParserFuzz)
}
