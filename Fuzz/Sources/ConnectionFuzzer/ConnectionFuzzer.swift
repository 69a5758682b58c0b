import FuzzSupport
import WebSocketCore

// The whole Connection state machine driven by the input: bytes in fuzzer-chosen pieces, clock ticks, sends,
// closes, EOF, and (when chosen) messages echoed from inside the receive handler. Invariants: no crash; text messages are valid UTF-8; messages respect the limit; nothing is
// delivered after the peer's close or a failure; every failure carries a code allowed on the wire; everything
// the connection writes is a valid frame stream for the peer, and nothing follows our close frame.

private struct Wire {
    var bytes: [UInt8] = []
}

@_cdecl("LLVMFuzzerTestOneInput")
public func connectionFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let setup = input.byte()
    let role: Role = setup & 1 == 0 ? .server : .client
    var configuration = Connection.Configuration()
    configuration.maxMessageLength = [64, 1000, 70_000, 1 << 20][Int(setup >> 1) & 3]
    configuration.maxFramePayloadLength = [32, 1000, 70_000, 1 << 20][Int(setup >> 3) & 3]
    configuration.maxFragmentsPerMessage = [3, 100][Int(setup >> 5) & 1]
    configuration.delivery = setup & 0x40 == 0 ? .wholeMessages : .streaming
    configuration.autoPong = setup & 0x80 == 0
    let timers = input.byte()
    if timers & 1 != 0 { configuration.pingInterval = .milliseconds(Int(timers >> 1) * 10 + 1) }
    configuration.pongTimeout = .milliseconds(Int(timers & 0x0F) * 7 + 1)
    configuration.closeTimeout = .milliseconds(Int(timers >> 4) * 11 + 1)
    let echoes = timers & 0x80 != 0

    var connection = Connection(role: role, configuration: configuration)
    var written: [UInt8] = []
    var now: UInt64 = 1
    var finished = false  // the peer's close was delivered, or the connection failed
    var messageBytes = 0

    func drain() {
        connection.withPendingOutput { written += $0 }
    }

    while !input.isExhausted {
        let op = input.byte()
        switch op % 8 {
        case 0, 1, 2, 3:
            // Feed the next n bytes from the input as bytes from the peer.
            var chunk = input.take(Int(op >> 3) * 3 + 1)
            chunk.withUnsafeMutableBytes { raw in
                do throws(ProtocolError) {
                    try connection.receive(raw) { connection, event in
                        if finished { violated("event after close or failure") }
                        switch event {
                        case .message(let kind, let payload):
                            if payload.count > configuration.maxMessageLength { violated("message above limit") }
                            if kind == .text && String(validating: payload, as: UTF8.self) == nil {
                                violated("invalid UTF-8 delivered")
                            }
                        case .fragment(_, let payload, let isFirst, let isFinal):
                            if isFirst { messageBytes = 0 }
                            messageBytes += payload.count
                            if messageBytes > configuration.maxMessageLength { violated("streamed message above limit") }
                            _ = isFinal
                        case .ping(let p), .pong(let p):
                            if p.count > 125 { violated("control payload above 125 bytes") }
                        case .close(let status):
                            if status.code != .noStatusReceived && !status.code.isAllowedOnWire {
                                violated("close code \(status.code) delivered")
                            }
                            finished = true
                        }
                        // Answer from inside the handler (as an echo server does) while the payload is valid.
                        if echoes, case .message(let kind, let payload) = event { try? connection.send(kind, payload) }
                    }
                } catch {
                    if !error.closeCode.isAllowedOnWire { violated("failure with code \(error.closeCode)") }
                    if !connection.shouldCloseTransport || connection.state != .closed { violated("failure did not close") }
                    finished = true
                }
            }
        case 4:
            now += UInt64(input.byte()) * 1_000_000
            connection.tick(now: Instant(nanoseconds: now))
        case 5:
            let payload = input.take(Int(input.byte()) % 160)
            let kind = input.byte()
            payload.withUnsafeBytes { raw in
                switch kind % 5 {
                case 0: _ = try? connection.ping(raw)
                case 1: _ = try? connection.sendFrame(.binary, raw, fin: kind & 8 != 0)
                case 2: _ = try? connection.sendFrame(.continuation, raw, fin: kind & 8 != 0)
                case 3: _ = try? connection.close(code: CloseCode(UInt16(kind) * 20), reason: "")
                default: _ = try? connection.pong(raw)
                }
            }
        case 6:
            drain()
        default:
            if op & 0x10 != 0 { connection.receiveEOF() } else { drain() }
        }
        if let status = connection.closeStatus,
            !(status.code.isAllowedOnWire || status.code == .noStatusReceived || status.code == .abnormalClosure)
        {
            violated("close status \(status.code)")
        }
    }
    drain()

    // Our output must be a valid frame stream for the peer, with nothing after our close frame.
    let peer = FrameParser.Configuration(role: role == .client ? .server : .client, maxFramePayloadLength: 1 << 21)
    let parsed = parseStream(written, peer, chunks: [])
    if let error = parsed.error { violated("we wrote an invalid frame: \(error)") }
    if let closeIndex = parsed.frames.firstIndex(where: { $0.opcode == .close }), closeIndex != parsed.frames.count - 1 {
        violated("frames after our close frame")
    }
    return 0
}

@_cdecl("ConnectionFuzzer_main")
func connectionFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, connectionFuzz)
}
