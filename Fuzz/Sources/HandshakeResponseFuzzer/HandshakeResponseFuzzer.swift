import FuzzSupport
import HTTPTypes
import WebSocketHandshake

// Arbitrary bytes through the production response-head parser (HTTPResponseHeadParser), then the client-side
// validation of a fixed request. The whole input is the wire data; the limits and the splits are derived from a
// hash of it, so that corpus entries stay plain HTTP. Invariants: it never traps; the outcome (head and where it
// ends, or the error, or "needs more") is the same for the whole input, one byte at a time and random splits; no
// call consumes more than it was given; the head never exceeds the limits; an accepted response has status 101
// in HTTP/1.1 or later, the exact accept value, and only a subprotocol and extensions the client offered.

private enum Outcome: Equatable {
    case complete(HTTPResponseHead, end: Int)
    case incomplete
    case failed(HTTPResponseHeadError)
}

/// FNV-1a over the input: a seed for the splits and limits that does not take bytes away from the head.
private func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    return hash
}

/// SplitMix64, seeded from the input.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Feeds `bytes` cut at the ascending offsets `cuts` and checks the per-call invariants.
private func feed(_ bytes: [UInt8], cuts: [Int], limits: HTTPResponseHeadParser.Limits) -> Outcome {
    var parser = HTTPResponseHeadParser(limits: limits)
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        let progress: HTTPResponseHeadParser.Progress
        do throws(HTTPResponseHeadError) {
            progress = try parser.parse(bytes[start..<end])
        } catch {
            if parser.headLength > limits.maxHeadLength { violated("consumed \(parser.headLength) > limit") }
            if error == .headTooLong && parser.headLength != limits.maxHeadLength {
                violated("head too long after \(parser.headLength) of \(limits.maxHeadLength) bytes")
            }
            // A failed parser stays failed.
            do throws(HTTPResponseHeadError) {
                _ = try parser.parse(bytes[start..<end])
                violated("a failed parser accepted more input")
            } catch let again {
                if again != error { violated("failed with \(error), then with \(again)") }
            }
            return .failed(error)
        }
        switch progress {
        case .needMoreBytes:
            if parser.headLength != end { violated("needMoreBytes but consumed \(parser.headLength) of \(end)") }
        case .complete(let head, let consumed):
            if consumed < 0 || consumed > end - start { violated("consumed \(consumed) of \(end - start)") }
            if parser.headLength != start + consumed { violated("headLength \(parser.headLength)") }
            if parser.headLength > limits.maxHeadLength { violated("head of \(parser.headLength) bytes accepted") }
            // Once complete, the parser takes nothing more.
            if (try? parser.parse(bytes[(start + consumed)...])) != .complete(head, consumed: 0) {
                violated("a complete parser consumed more")
            }
            return .complete(head, end: start + consumed)
        }
        start = end
    }
    return .incomplete
}

/// What must hold for every head the parser returns.
private func check(_ head: HTTPResponseHead, end: Int, in bytes: [UInt8], limits: HTTPResponseHeadParser.Limits) {
    if end < 4 || Array(bytes[(end - 4)..<end]) != Array("\r\n\r\n".utf8) { violated("head does not end in CRLFCRLF") }
    if head.version.major != 1 { violated("version \(head.version)") }
    if !(100...599).contains(head.response.status.code) { violated("status \(head.response.status.code)") }
    let fieldCount = head.response.headerFields.count
    if fieldCount > limits.maxFieldCount { violated("\(fieldCount) fields, limit \(limits.maxFieldCount)") }
    for field in head.response.headerFields {
        if field.value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) {
            violated("CR, LF or NUL in the value of \(field.name)")
        }
        if let first = field.value.utf8.first, first == 0x20 || first == 0x09 { violated("untrimmed value") }
        if let last = field.value.utf8.last, last == 0x20 || last == 0x09 { violated("untrimmed value") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func handshakeResponseFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput(data, size).bytes
    var generator = SplitMix64(state: fnv1a(bytes))
    // Small limits half of the time, so that both limits are reached with inputs of a few hundred bytes.
    let limits =
        generator.next() % 2 == 0
        ? HTTPResponseHeadParser.Limits()
        : HTTPResponseHeadParser.Limits(
            maxHeadLength: Int(generator.next() % 512) + 1,
            maxFieldCount: Int(generator.next() % 8)
        )

    let whole = feed(bytes, cuts: [], limits: limits)
    if feed(bytes, cuts: Array(0..<bytes.count), limits: limits) != whole { violated("one byte at a time differs") }
    for _ in 0..<4 {
        let cuts = (0..<Int(generator.next() % 8)).map { _ in Int(generator.next() % UInt64(bytes.count + 1)) }
        if feed(bytes, cuts: cuts.sorted(), limits: limits) != whole { violated("split at \(cuts.sorted()) differs") }
    }

    switch whole {
    case .failed(let error):
        _ = error.description
        return 0
    case .incomplete:
        if bytes.count > limits.maxHeadLength { violated("\(bytes.count) bytes without error or head") }
        return 0
    case .complete(let head, let end):
        check(head, end: end, in: bytes, limits: limits)
        validate(head)
    }
    return 0
}

/// The client-side rules of RFC 6455 §4.1 on a parsed head.
private func validate(_ head: HTTPResponseHead) {
    guard let url = try? WebSocketURL("ws://127.0.0.1:9001/chat?x=1") else { violated("URL parsing failed") }
    let client = ClientHandshake(
        url: url,
        key: "dGhlIHNhbXBsZSBub25jZQ==",
        subprotocols: ["chat", "superchat"],
        extensions: [
            WebSocketExtension(name: "permessage-deflate", parameters: [.init(name: "client_max_window_bits")])
        ]
    )
    do throws(ClientHandshakeError) {
        let negotiated = try client.validate(head)
        let fields = head.response.headerFields
        if head.response.status.code != 101 { violated("accepted status \(head.response.status.code)") }
        if head.version < .http1_1 { violated("accepted \(head.version)") }
        if fields[.secWebSocketAccept] != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { violated("accept value") }
        if fields[.upgrade]?.lowercased() != "websocket" { violated("Upgrade '\(fields[.upgrade] ?? "")'") }
        if let subprotocol = negotiated.subprotocol, !client.subprotocols.contains(subprotocol) {
            violated("subprotocol \(subprotocol) not offered")
        }
        if negotiated.extensions.contains(where: { $0.name != "permessage-deflate" }) {
            violated("extension not offered")
        }
    } catch {
        _ = error.description
    }
}

@_cdecl("HandshakeResponseFuzzer_main")
func handshakeResponseFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, handshakeResponseFuzz)
}
