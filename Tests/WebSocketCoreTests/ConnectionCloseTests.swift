import Testing
import WebSocketCore
import WebSocketTestSupport

/// Parses what a connection of `role` wrote (so the reader is the other role).
func frames(writtenBy role: Role, _ bytes: [UInt8]) throws -> [(FrameHeader, [UInt8])] {
    try parseAll(bytes, role: role == .client ? .server : .client)
}

@Suite("Connection: control frames (RFC 6455 §5.5)")
struct ConnectionControlTests {
    @Test("a ping is answered with a pong carrying the same payload", arguments: [Role.server, .client])
    func autoPong(role: Role) throws {
        var connection = Connection(role: role)
        #expect(connection.feed(peerFrame(role, .ping, [1, 2, 3])).events == [.ping([1, 2, 3])])
        let out = try frames(writtenBy: role, connection.takeOutput())
        #expect(out.count == 1)
        #expect(out.first?.0.opcode == .pong)
        #expect(out.first?.1 == [1, 2, 3])
        #expect(out.first?.0.maskKey != nil || role == .server, "a client masks its pong")
    }

    @Test("a ping flood does not grow the output: the newest pong replaces an unsent one")
    func pongCoalescing() throws {
        var connection = Connection(role: .server)
        var wire: [UInt8] = []
        for i in 0..<1000 { wire += maskedFrame(.ping, [UInt8(i & 0xFF), UInt8(i >> 8)]) }
        #expect(connection.feed(wire).events.count == 1000)
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.count == 1)
        #expect(out.first?.1 == [0xE7, 0x03])  // the payload of ping 999
    }

    @Test("an unsent pong goes out before a data frame queued after its ping")
    func pongOrdering() throws {
        var connection = Connection(role: .server)
        _ = connection.feed(maskedFrame(.ping, [7]))
        try [UInt8]([1]).withUnsafeBytes { try connection.send(.binary, $0) }
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.map(\.0.opcode) == [.pong, .binary])
    }

    @Test("auto-pong can be turned off")
    func autoPongOff() {
        var configuration = Connection.Configuration()
        configuration.autoPong = false
        var connection = Connection(role: .server, configuration: configuration)
        #expect(connection.feed(maskedFrame(.ping, [1])).events == [.ping([1])])
        #expect(connection.hasPendingOutput == false)
    }

    @Test("unsolicited pongs are delivered and not answered")
    func unsolicitedPong() {
        var connection = Connection(role: .server)
        #expect(connection.feed(maskedFrame(.pong, [5])).events == [.pong([5])])
        #expect(connection.hasPendingOutput == false)
    }

    @Test("a control frame split across reads is reassembled")
    func splitControlFrame() {
        var connection = Connection(role: .server)
        let payload = (0..<125).map { UInt8($0) }
        #expect(connection.feed(maskedFrame(.ping, payload), chunks: [3, 50]).events == [.ping(payload)])
    }
}

@Suite("Connection: the close handshake (RFC 6455 §5.5.1, §7)")
struct ConnectionCloseTests {
    @Test("the peer's close is echoed with its code; the server then closes TCP first")
    func peerInitiatedServer() throws {
        var connection = Connection(role: .server)
        let outcome = connection.feed(maskedFrame(.close, closePayload(1000, "bye")))
        #expect(outcome.events == [.close(CloseStatus(code: .normalClosure, reason: "bye"))])
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.count == 1 && out[0].0.opcode == .close && out[0].1 == closePayload(1000))
        #expect(connection.state == .closed)
        #expect(connection.shouldCloseTransport == true)
    }

    @Test("a client echoes the close and waits for the server to close TCP, at most closeTimeout")
    func peerInitiatedClient() throws {
        var connection = Connection(role: .client)
        _ = connection.feed(unmaskedFrame(.close, closePayload(4000)))
        let out = try frames(writtenBy: .client, connection.takeOutput())
        #expect(out.first?.1 == closePayload(4000))
        #expect(connection.shouldCloseTransport == false)
        connection.tick(now: Instant(nanoseconds: 1_000))
        #expect(connection.shouldCloseTransport == false)
        let next = connection.nextDeadline
        let deadline = try #require(next)
        connection.tick(now: deadline)
        #expect(connection.shouldCloseTransport == true)
        #expect(connection.closeStatus?.code == CloseCode(4000))
    }

    @Test("a close without payload is echoed without payload and reported as 1005")
    func emptyClose() throws {
        var connection = Connection(role: .server)
        #expect(connection.feed(maskedFrame(.close, [])).events == [.close(CloseStatus(code: .noStatusReceived))])
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.first?.1 == [])
    }

    @Test("we initiate: nothing may be sent after our close; the peer's answer completes the handshake")
    func weInitiate() throws {
        var connection = Connection(role: .server)
        try connection.close(code: .goingAway, reason: "shutdown")
        #expect(connection.state == .closing)
        #expect(throws: SendError.connectionClosed) { try [UInt8]([1]).withUnsafeBytes { try connection.send(.binary, $0) } }
        #expect(throws: SendError.connectionClosed) { try connection.close() }
        #expect(throws: SendError.connectionClosed) { try [UInt8]().withUnsafeBytes { try connection.ping($0) } }
        // A ping arriving now is not answered: nothing goes out after our close frame.
        _ = connection.feed(maskedFrame(.ping, [1]))
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.map(\.0.opcode) == [.close])
        #expect(out.first?.1 == closePayload(1001, "shutdown"))
        // Data still arriving before the peer's close is delivered.
        #expect(connection.feed(maskedFrame(.text, [0x41])).events == [.message(.text, [0x41])])
        _ = connection.feed(maskedFrame(.close, closePayload(1001)))
        #expect(connection.state == .closed)
        #expect(connection.hasPendingOutput == false)
        #expect(connection.shouldCloseTransport == true)
    }

    @Test("the close handshake times out when the peer never answers: 1006")
    func closeTimeout() throws {
        var configuration = Connection.Configuration()
        configuration.closeTimeout = .seconds(2)
        var connection = Connection(role: .client, configuration: configuration)
        try connection.close()
        connection.tick(now: Instant(nanoseconds: 10))
        #expect(connection.nextDeadline == Instant(nanoseconds: 10) + .seconds(2))
        connection.tick(now: Instant(nanoseconds: 10) + .seconds(1))
        #expect(connection.shouldCloseTransport == false)
        connection.tick(now: Instant(nanoseconds: 10) + .seconds(2))
        #expect(connection.shouldCloseTransport == true)
        #expect(connection.closeStatus?.code == .abnormalClosure)
    }

    @Test("a 1-byte close payload is a protocol error (1002)")
    func oneByteClose() throws {
        var connection = Connection(role: .server)
        #expect(connection.feed(maskedFrame(.close, [0x03])).error == .closePayloadTooShort)
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.first?.1 == closePayload(1002, "close frame payload of 1 byte"))
    }

    @Test("a close reason that is not UTF-8 fails with 1007")
    func invalidReason() {
        var connection = Connection(role: .server)
        #expect(connection.feed(maskedFrame(.close, closePayload(1000, [0xCE, 0xBA, 0xFF]))).error == .invalidCloseReason)
        #expect(connection.closeStatus?.code == .invalidFramePayloadData)
    }

    static let validCodes: [UInt16] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    static let invalidCodes: [UInt16] = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]

    @Test("close codes allowed on the wire are echoed", arguments: validCodes)
    func validCode(code: UInt16) throws {
        var connection = Connection(role: .server)
        #expect(connection.feed(maskedFrame(.close, closePayload(code))).events == [.close(CloseStatus(code: CloseCode(code)))])
        #expect(try frames(writtenBy: .server, connection.takeOutput()).first?.1 == closePayload(code))
    }

    @Test("close codes not allowed on the wire fail with 1002", arguments: invalidCodes)
    func invalidCode(code: UInt16) {
        var connection = Connection(role: .server)
        #expect(connection.feed(maskedFrame(.close, closePayload(code))).error == .invalidCloseCode)
        #expect(connection.closeStatus?.code == .protocolError)
    }

    @Test("CloseCode.isAllowedOnWire matches RFC 6455 §7.4 over the whole 0-65535 range")
    func allowedCodeTable() {
        for raw in 0...UInt16.max {
            let expected = (1000...1003).contains(raw) || (1007...1014).contains(raw) || (3000...4999).contains(raw)
            #expect(CloseCode(raw).isAllowedOnWire == expected)
        }
    }

    @Test("frames after the peer's close are ignored")
    func framesAfterClose() {
        var connection = Connection(role: .server)
        let outcome = connection.feed(maskedFrame(.close, closePayload(1000)) + maskedFrame(.text, [0x41]) + [0xFF, 0xFF])
        #expect(outcome.events == [.close(CloseStatus(code: .normalClosure))])
        #expect(outcome.error == nil)
    }

    @Test("a close between fragments of a message is valid")
    func closeAfterFragment() {
        var connection = Connection(role: .server)
        let outcome = connection.feed(maskedFrame(.text, [0x41], fin: false) + maskedFrame(.close, closePayload(1000)))
        #expect(outcome.events == [.close(CloseStatus(code: .normalClosure))])
    }

    @Test("TCP closing without a close frame reports 1006 (abnormal closure)")
    func eofWithoutClose() {
        var connection = Connection(role: .client)
        _ = connection.feed(unmaskedFrame(.text, [0x41], fin: false))
        connection.receiveEOF()
        #expect(connection.closeStatus?.code == .abnormalClosure)
        #expect(connection.state == .closed)
        #expect(connection.shouldCloseTransport == true)
    }

    @Test("after a protocol error the connection sends its close frame and nothing else")
    func nothingAfterFailure() throws {
        var connection = Connection(role: .server)
        _ = connection.feed(maskedFrame(.ping, [1]) + [0x83, 0x80, 0, 0, 0, 0])  // reserved opcode 0x3
        #expect(throws: SendError.connectionClosed) { try [UInt8]([1]).withUnsafeBytes { try connection.send(.text, $0) } }
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.map(\.0.opcode) == [.close])
        #expect(out.first.map { Array($0.1.prefix(2)) } == closePayload(1002))
    }

    @Test("sending invalid closes is refused")
    func sendCloseValidation() {
        var connection = Connection(role: .client)
        #expect(throws: SendError.invalidCloseCode) { try connection.close(code: .noStatusReceived) }
        #expect(throws: SendError.invalidCloseCode) { try connection.close(code: CloseCode(2000)) }
        #expect(throws: SendError.controlPayloadTooLong) { try connection.close(reason: String(repeating: "x", count: 124)) }
        #expect(throws: Never.self) { try connection.close(reason: String(repeating: "x", count: 123)) }
    }
}

@Suite("Connection: lifecycle edges (RFC 6455 §7.1.5, §7.1.7)")
struct ConnectionLifecycleTests {
    @Test("the peer drops TCP after our close frame: 1006 'during the close handshake'", arguments: [Role.server, .client])
    func eofAfterOurClose(role: Role) throws {
        var connection = Connection(role: role)
        try connection.close(code: .goingAway)
        connection.receiveEOF()
        #expect(connection.closeStatus == CloseStatus(code: .abnormalClosure, reason: "connection closed during the close handshake"))
        #expect(connection.state == .closed)
        #expect(connection.shouldCloseTransport == true)
        #expect(connection.nextDeadline == nil)
    }

    @Test("EOF after the close handshake timed out keeps 'close handshake timed out'")
    func eofAfterCloseTimeout() throws {
        var configuration = Connection.Configuration()
        configuration.closeTimeout = .seconds(1)
        var connection = Connection(role: .client, configuration: configuration)
        try connection.close()
        connection.tick(now: Instant(nanoseconds: 1))
        connection.tick(now: Instant(nanoseconds: 1) + .seconds(1))
        let timedOut = CloseStatus(code: .abnormalClosure, reason: "close handshake timed out")
        #expect(connection.closeStatus == timedOut)
        connection.receiveEOF()
        #expect(connection.closeStatus == timedOut)
    }

    @Test("EOF after a completed close handshake keeps the peer's status", arguments: [Role.server, .client])
    func eofAfterHandshake(role: Role) {
        var connection = Connection(role: role)
        _ = connection.feed(peerFrame(role, .close, closePayload(4001, "done")))
        connection.receiveEOF()
        #expect(connection.closeStatus == CloseStatus(code: CloseCode(4001), reason: "done"))
        #expect(connection.hasPendingOutput == false, "queued output is discarded once the transport ended")
    }

    @Test("fail(code:reason:) after a completed close handshake keeps the peer's status and sends nothing",
          arguments: [Role.server, .client])
    func failAfterHandshake(role: Role) {
        var connection = Connection(role: role)
        _ = connection.feed(peerFrame(role, .close, closePayload(1000, "bye")))
        _ = connection.takeOutput()
        connection.fail(code: .policyViolation, reason: "too late")
        #expect(connection.closeStatus == CloseStatus(code: .normalClosure, reason: "bye"))
        #expect(connection.hasPendingOutput == false)
        #expect(connection.shouldCloseTransport == true, "failing still closes the transport now")
        #expect(connection.nextDeadline == nil)
    }

    @Test("fail(code:reason:) after a failure, a timeout or EOF changes nothing")
    func failAfterEnd() throws {
        var failed = Connection(role: .server)
        _ = failed.feed([0x83, 0x80, 0, 0, 0, 0])  // reserved opcode: 1002
        _ = failed.takeOutput()
        failed.fail(code: .internalError, reason: "later")
        #expect(failed.closeStatus?.code == .protocolError)
        #expect(failed.hasPendingOutput == false)

        var ended = Connection(role: .client)
        ended.receiveEOF()
        ended.fail(code: .internalError, reason: "later")
        #expect(ended.closeStatus?.reason == "connection closed without a close frame")
        #expect(ended.hasPendingOutput == false)
    }

    @Test("fail(code:reason:) while closing reports its code without a second close frame")
    func failWhileClosing() throws {
        var connection = Connection(role: .server)
        try connection.close()
        _ = connection.takeOutput()
        connection.fail(code: .policyViolation, reason: "stop")
        #expect(connection.closeStatus == CloseStatus(code: .policyViolation, reason: "stop"))
        #expect(connection.hasPendingOutput == false)
        #expect(connection.shouldCloseTransport == true)
    }

    @Test("fail(code:reason:) with a code not allowed on the wire sends and reports 1011")
    func failWithReservedCode() throws {
        var connection = Connection(role: .server)
        connection.fail(code: .abnormalClosure, reason: "x")
        #expect(connection.closeStatus?.code == .internalError)
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.first.map { Array($0.1.prefix(2)) } == closePayload(1011))
    }
}

@Suite("Connection: receive(_:_:), the event loop helper")
struct ConnectionReceiveHelperTests {
    @Test("events come in order and every byte is consumed, for any split")
    func order() throws {
        let wire = maskedFrame(.text, Array("a".utf8)) + maskedFrame(.ping, [1]) + maskedFrame(.binary, [2, 3])
        for size in [1, 2, 5, wire.count] {
            var connection = Connection(role: .server)
            var events: [OwnedEvent] = []
            var bytes = wire
            try bytes.withUnsafeMutableBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let end = min(raw.count, offset + size)
                    try connection.receive(UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end])) { _, event in
                        events.append(OwnedEvent(event))
                    }
                    offset = end
                }
            }
            #expect(events == [.message(.text, [0x61]), .ping([1]), .message(.binary, [2, 3])])
        }
    }

    @Test("the body can answer on the connection while the payload is valid (echo without a copy)")
    func echo() throws {
        var connection = Connection(role: .server)
        var bytes = maskedFrame(.text, Array("Hel".utf8), fin: false) + maskedFrame(.continuation, Array("lo".utf8))
        try bytes.withUnsafeMutableBytes { raw in
            try connection.receive(raw) { connection, event in
                if case .message(let kind, let payload) = event { try? connection.send(kind, payload) }
            }
        }
        #expect(connection.takeOutput() == unmaskedFrame(.text, Array("Hello".utf8)))
    }

    @Test("failing the connection in the body stops delivery; the rest of the buffer is ignored")
    func failInBody() throws {
        var connection = Connection(role: .server)
        var bytes = maskedFrame(.text, [0x61]) + maskedFrame(.text, [0x62]) + [0xFF, 0xFF]
        var events = 0
        try bytes.withUnsafeMutableBytes { raw in
            try connection.receive(raw) { connection, _ in
                events += 1
                connection.fail(code: .policyViolation, reason: "enough")
            }
        }
        #expect(events == 1)
        #expect(connection.closeStatus == CloseStatus(code: .policyViolation, reason: "enough"))
    }

    @Test("a protocol error is thrown after the events before it were delivered")
    func throwsAfterEvents() {
        var connection = Connection(role: .server)
        var bytes = maskedFrame(.text, [0x61]) + maskedFrame(.text, [0xFF])
        var events: [OwnedEvent] = []
        let result = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(ProtocolError) in
                try connection.receive(raw) { _, event in events.append(OwnedEvent(event)) }
            }
        }
        #expect(events == [.message(.text, [0x61])])
        #expect(throws: ProtocolError.invalidUTF8) { try result.get() }
        #expect(connection.closeStatus?.code == .invalidFramePayloadData)
    }
}
