import RESP
import Testing

/// The outcome of parsing a whole input: the values, then the error if one stopped it.
struct Outcome: Equatable, CustomStringConvertible {
    var values: [RESPValue] = []
    var error: RESPParseError?
    var idle = true

    /// Values compare by their encoding: NaN is not equal to itself.
    static func == (lhs: Outcome, rhs: Outcome) -> Bool {
        lhs.values.map(\.encoded) == rhs.values.map(\.encoded) && lhs.error == rhs.error && lhs.idle == rhs.idle
    }

    var description: String { "\(values) error: \(String(describing: error)) idle: \(idle)" }
}

func parse(_ bytes: [UInt8], _ configuration: RESPParser.Configuration = .init(), chunks: [Int]) -> Outcome {
    var parser = RESPParser(configuration: configuration)
    var outcome = Outcome()
    var position = 0
    var chunk = 0
    while position < bytes.count {
        let size = chunks.isEmpty ? bytes.count : max(1, chunks[chunk % chunks.count])
        chunk += 1
        let end = min(bytes.count, position + size)
        do {
            try parser.parse(bytes[position..<end]) { outcome.values.append($0) }
        } catch {
            outcome.error = error
            break
        }
        position = end
    }
    outcome.idle = parser.isIdle
    return outcome
}

/// Parses `bytes` whole, one byte at a time, and split in two at every position; all must agree.
func parseAllSplits(
    _ bytes: [UInt8],
    _ configuration: RESPParser.Configuration = .init(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> Outcome {
    let whole = parse(bytes, configuration, chunks: [])
    let single = parse(bytes, configuration, chunks: [1])
    #expect(single == whole, "one byte at a time", sourceLocation: sourceLocation)
    if bytes.count > 1 {
        for cut in 1..<bytes.count {
            let split = parse(bytes, configuration, chunks: [cut, bytes.count])
            #expect(split == whole, "split at \(cut)", sourceLocation: sourceLocation)
            if split != whole { break }
        }
    }
    return whole
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func values(_ text: String, _ configuration: RESPParser.Configuration = .init()) -> [RESPValue] {
    let outcome = parseAllSplits(bytes(text), configuration)
    #expect(outcome.error == nil)
    return outcome.values
}

func error(_ text: String, _ configuration: RESPParser.Configuration = .init()) -> RESPParseError? {
    parseAllSplits(bytes(text), configuration).error
}
