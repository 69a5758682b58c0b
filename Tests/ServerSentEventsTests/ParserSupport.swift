import ServerSentEvents
import Testing

/// Parses `text` as one whole stream, then again one byte at a time and split at every single position, and
/// expects the same outputs every time (the parser must not depend on how the bytes arrive). Returns them,
/// and the parser's state after ``EventStreamParser/finish()`` is not applied (the caller decides).
func parseAllSplits(
    _ bytes: [UInt8],
    configuration: EventStreamParser.Configuration = .init(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> (outputs: [EventStreamParser.Output], lastEventID: String) {
    func run(_ chunks: [ArraySlice<UInt8>]) -> ([EventStreamParser.Output], String) {
        var parser = EventStreamParser(configuration: configuration)
        var outputs: [EventStreamParser.Output] = []
        for chunk in chunks {
            do {
                outputs += try parser.parse(chunk)
            } catch {
                Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            }
        }
        return (outputs, parser.lastEventID)
    }
    let whole = run([bytes[...]])
    let single = run(bytes.indices.map { bytes[$0...$0] })
    #expect(single.0 == whole.0, "one byte at a time", sourceLocation: sourceLocation)
    #expect(single.1 == whole.1, "one byte at a time (last event ID)", sourceLocation: sourceLocation)
    if bytes.count <= 400 {
        for cut in 0...bytes.count {
            let split = run([bytes[..<cut], bytes[cut...]])
            #expect(split.0 == whole.0, "split at \(cut)", sourceLocation: sourceLocation)
            #expect(split.1 == whole.1, "split at \(cut) (last event ID)", sourceLocation: sourceLocation)
        }
    }
    return whole
}

func parseAllSplits(
    _ text: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> (outputs: [EventStreamParser.Output], lastEventID: String) {
    parseAllSplits(Array(text.utf8), sourceLocation: sourceLocation)
}

/// The dispatched events only.
func events(_ outputs: [EventStreamParser.Output]) -> [MessageEvent] {
    outputs.compactMap { if case .event(let event) = $0 { event } else { nil } }
}

/// The data of the dispatched events only.
func dataOf(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    events(parseAllSplits(text, sourceLocation: sourceLocation).outputs).map(\.data)
}
