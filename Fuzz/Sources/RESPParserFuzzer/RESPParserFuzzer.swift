import FuzzSupport
import RESP

// Arbitrary bytes from a "server" through `RESPParser`. The first byte picks the limits and whether attributes
// are surfaced, the second how the input is split. Invariants: the whole input, the split input and the input
// one byte at a time give the same values (compared by their encoding: NaN is not equal to itself), the same
// error and the same idle state; every value respects the limits (bulk lengths, aggregate counts, depth);
// every value, encoded again, parses back to the same encoding.

struct Run: Equatable {
    var encodedValues: [[UInt8]] = []
    var values: [RESPValue] = []
    var error: RESPParseError?
    var idle = true

    static func == (lhs: Run, rhs: Run) -> Bool {
        lhs.encodedValues == rhs.encodedValues && lhs.error == rhs.error && lhs.idle == rhs.idle
    }
}

func run(_ bytes: [UInt8], _ configuration: RESPParser.Configuration, chunks: [Int]) -> Run {
    var parser = RESPParser(configuration: configuration)
    var result = Run()
    var position = 0
    var chunkIndex = 0
    while position < bytes.count {
        let size = chunks.isEmpty ? bytes.count : max(1, chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = min(bytes.count, position + size)
        do {
            try parser.parse(bytes[position..<end]) { result.values.append($0) }
        } catch {
            result.error = error
            break
        }
        position = end
    }
    result.encodedValues = result.values.map(\.encoded)
    result.idle = parser.isIdle
    return result
}

func check(_ value: RESPValue, _ configuration: RESPParser.Configuration, depth: Int) {
    func aggregate(_ count: Int) {
        if count > configuration.maxAggregateCount { violated("aggregate above the limit") }
        if depth + 1 > configuration.maxDepth { violated("nesting above the limit") }
    }
    switch value {
    case .bulkString(let bytes?), .bulkError(let bytes):
        if bytes.count > configuration.maxBulkLength { violated("bulk above the limit") }
    case .verbatimString(let format, let text):
        if format.utf8.count != 3 { violated("verbatim format not 3 bytes") }
        if text.count + 4 > configuration.maxBulkLength { violated("verbatim above the limit") }
    case .simpleString(let text), .simpleError(let text):
        if text.utf8.contains(0x0D) || text.utf8.contains(0x0A) { violated("CR or LF in a line") }
    case .bigNumber(let digits):
        if digits.isEmpty { violated("empty big number") }
    case .array(let elements?), .set(let elements), .push(let elements):
        aggregate(elements.count)
        for element in elements { check(element, configuration, depth: depth + 1) }
    case .map(let pairs):
        aggregate(pairs.count * 2)
        for pair in pairs {
            check(pair.key, configuration, depth: depth + 1)
            check(pair.value, configuration, depth: depth + 1)
        }
    case .attributed(let attributes, let inner):
        if !configuration.surfaceAttributes { violated("attributes surfaced while they should be dropped") }
        aggregate(attributes.count * 2)
        for pair in attributes {
            check(pair.key, configuration, depth: depth + 1)
            check(pair.value, configuration, depth: depth + 1)
        }
        check(inner, configuration, depth: depth)
    case .integer, .bulkString(nil), .array(nil), .null, .boolean, .double:
        break
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func respParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let limits = input.byte()
    let split = input.byte()
    let bytes = input.rest()
    let small = limits & 1 == 1
    let configuration = RESPParser.Configuration(
        maxBulkLength: small ? Int(limits >> 4) + 1 : 16 << 20,
        maxAggregateCount: small ? Int(limits >> 3 & 7) * 2 + 1 : 1 << 20,
        maxDepth: small ? Int(limits >> 5) + 1 : 32,
        maxReplyBytes: small ? Int(limits) * 4 + 8 : 32 << 20,
        surfaceAttributes: limits & 2 == 2
    )
    let whole = run(bytes, configuration, chunks: [])
    if run(bytes, configuration, chunks: chunkSizes(split)) != whole { violated("split input differs") }
    if run(bytes, configuration, chunks: [1]) != whole { violated("byte-at-a-time input differs") }

    let roomy = RESPParser.Configuration(surfaceAttributes: configuration.surfaceAttributes)
    for (value, encoded) in zip(whole.values, whole.encodedValues) {
        check(value, configuration, depth: 0)
        var parser = RESPParser(configuration: roomy)
        guard let again = try? parser.parse(encoded), again.count == 1, again[0].encoded == encoded, parser.isIdle
        else { violated("re-encoded value does not parse back: \(value)") }
    }
    return 0
}

@_cdecl("RESPParserFuzzer_main")
func respParserFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, respParserFuzz)
}
