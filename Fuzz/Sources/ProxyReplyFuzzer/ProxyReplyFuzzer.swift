import FuzzSupport
import WebSocketHandshake

// Arbitrary proxy answers through the client's sans-I/O proxy negotiations: the first byte picks HTTP CONNECT
// or SOCKS5 (with or without credentials), the second the split size, the rest is the proxy's data.
// Invariants: it never traps; the outcome (established and where, needs more, or the error kind) is the same
// fed whole and fed in chunks; no step consumes more than it was given; what the negotiation asks to send is
// a SOCKS5 message of the expected shape.

private enum Outcome: Equatable {
    case established(Int)
    case incomplete
    case failed(ProxyError)
}

private enum Negotiation {
    case http(HTTPConnectNegotiation)
    case socks(SOCKS5Negotiation)

    mutating func receive(_ bytes: ArraySlice<UInt8>) throws(ProxyError) -> ProxyNegotiationStep {
        switch self {
        case .http(var negotiation):
            defer { self = .http(negotiation) }
            return try negotiation.receive(bytes)
        case .socks(var negotiation):
            defer { self = .socks(negotiation) }
            return try negotiation.receive(bytes)
        }
    }
}

private func make(_ choice: UInt8) -> Negotiation {
    let credentials = choice & 2 == 0 ? nil : ProxyCredentials(username: "user", password: "secret")
    do throws(ProxyError) {
        if choice & 1 == 0 {
            return .http(
                try HTTPConnectNegotiation(
                    host: "example.com",
                    port: 443,
                    credentials: credentials,
                    limits: .init(maxHeadLength: 512, maxFieldCount: 16)
                )
            )
        }
        return .socks(try SOCKS5Negotiation(host: "example.com", port: 443, credentials: credentials))
    } catch {
        violated("valid negotiation refused: \(error)")
    }
}

private func run(_ choice: UInt8, _ bytes: [UInt8], chunk: Int) -> Outcome {
    var negotiation = make(choice)
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + chunk)
        let slice = bytes[offset..<end]
        let step: ProxyNegotiationStep
        do throws(ProxyError) {
            step = try negotiation.receive(slice)
        } catch {
            return .failed(error)
        }
        switch step {
        case .needMoreBytes:
            offset = end
        case .send(let message, let consumed):
            if consumed < 0 || consumed > slice.count { violated("consumed \(consumed) of \(slice.count)") }
            if message.isEmpty || !(message[0] == 5 || message[0] == 1) { violated("odd message \(message)") }
            offset += consumed
        case .established(let consumed):
            if consumed < 0 || consumed > slice.count { violated("consumed \(consumed) of \(slice.count)") }
            return .established(offset + consumed)
        }
    }
    return .incomplete
}

public func proxyReplyFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let choice = input.byte()
    let chunk = Int(input.byte() % 16) + 1
    let bytes = Array(input.bytes.dropFirst(2))
    let whole = run(choice, bytes, chunk: max(1, bytes.count))
    let split = run(choice, bytes, chunk: chunk)
    if whole != split { violated("whole: \(whole), split by \(chunk): \(split)") }
    return 0
}

@_cdecl("ProxyReplyFuzzer_main")
func proxyReplyFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, proxyReplyFuzz)
}
