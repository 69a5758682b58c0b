import Testing
import WebSocketCore
import WebSocketTestSupport

@Suite("Connection: sending (RFC 6455 §5.1, §5.3, §5.4)")
struct ConnectionSendTests {
    @Test("a client masks every frame with a fresh key from its generator; a server never masks")
    func masking() throws {
        var client = Connection(role: .client, maskKeyGenerator: FixedMaskKeys(MaskKey(1, 2, 3, 4), MaskKey(5, 6, 7, 8)))
        try Array("Hello".utf8).withUnsafeBytes { try client.send(.text, $0) }
        try Array("Hello".utf8).withUnsafeBytes { try client.send(.text, $0) }
        let out = try frames(writtenBy: .client, client.takeOutput())
        #expect(out.map { $0.0.maskKey } == [MaskKey(1, 2, 3, 4), MaskKey(5, 6, 7, 8)])
        #expect(out.map(\.1) == [Array("Hello".utf8), Array("Hello".utf8)])

        var server = Connection(role: .server)
        try Array("Hello".utf8).withUnsafeBytes { try server.send(.text, $0) }
        #expect(server.takeOutput() == hex("810548656c6c6f"))  // RFC 6455 §5.7
    }

    @Test("the default key source gives different keys")
    func randomKeys() throws {
        var client = Connection(role: .client)
        for _ in 0..<8 { try [UInt8]().withUnsafeBytes { try client.send(.binary, $0) } }
        let keys = try frames(writtenBy: .client, client.takeOutput()).compactMap { $0.0.maskKey }
        #expect(keys.count == 8)
        #expect(Set(keys).count > 1)
    }

    @Test("fragmented sends must be well ordered")
    func fragmentOrder() throws {
        var connection = Connection(role: .server)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        #expect(throws: SendError.noMessageInProgress) { try connection.sendFrame(.continuation, none, fin: true) }
        try connection.sendFrame(.text, none, fin: false)
        #expect(throws: SendError.messageInProgress) { try connection.sendFrame(.binary, none, fin: true) }
        #expect(throws: SendError.notADataOpcode) { try connection.sendFrame(.ping, none, fin: true) }
        try connection.ping(none)  // control frames may be interleaved
        try connection.sendFrame(.continuation, none, fin: true)
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.map(\.0.opcode) == [.text, .ping, .continuation])
        #expect(out.map(\.0.fin) == [false, true, true])
    }

    @Test("control payloads above 125 bytes are refused")
    func controlPayloadLimit() throws {
        var connection = Connection(role: .server)
        let big = [UInt8](repeating: 0, count: 126)
        #expect(throws: SendError.controlPayloadTooLong) { try big.withUnsafeBytes { try connection.ping($0) } }
        #expect(throws: SendError.controlPayloadTooLong) { try big.withUnsafeBytes { try connection.pong($0) } }
        #expect(connection.hasPendingOutput == false)
    }

    @Test("the zero-copy path returns a header the peer parses with the payload written after it")
    func zeroCopyHeader() throws {
        var client = Connection(role: .client, maskKeyGenerator: FixedMaskKeys(MaskKey(9, 9, 9, 9)))
        _ = client.feed(unmaskedFrame(.ping, [1]))  // leaves a pending pong that must be written first
        let header = try client.makeFrameHeader(.binary, payloadLength: 3, fin: true)
        #expect(header.maskKey == MaskKey(9, 9, 9, 9))
        var wire = client.takeOutput()
        var headerBytes = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderLength)
        let n = headerBytes.withUnsafeMutableBytes { FrameEncoder.writeHeader(header, into: $0) }
        var payload: [UInt8] = [1, 2, 3]
        payload.withUnsafeMutableBytes { _ = Masking.apply(header.maskKey!, to: $0) }
        wire += headerBytes.prefix(n) + payload
        let out = try frames(writtenBy: .client, wire)
        #expect(out.map(\.0.opcode) == [.pong, .binary])
        #expect(out.last?.1 == [1, 2, 3])
    }

    @Test("a client and a server talk to each other through their outputs")
    func loopback() throws {
        var client = Connection(role: .client)
        var server = Connection(role: .server)
        try Array("ping?".utf8).withUnsafeBytes { try client.send(.text, $0) }
        let toServer = server.feed(client.takeOutput())
        #expect(toServer.events == [.message(.text, Array("ping?".utf8))])
        try client.close(code: .normalClosure, reason: "done")
        #expect(server.feed(client.takeOutput()).events == [.close(CloseStatus(code: .normalClosure, reason: "done"))])
        #expect(client.feed(server.takeOutput()).events == [.close(CloseStatus(code: .normalClosure))])
        #expect(client.state == .closed && server.state == .closed)
        #expect(server.shouldCloseTransport == true)
        #expect(client.shouldCloseTransport == false, "the client waits for the server to close TCP")
    }
}

@Suite("Connection: heartbeat (tick-driven)")
struct ConnectionHeartbeatTests {
    static func configuration() -> Connection.Configuration {
        var configuration = Connection.Configuration()
        configuration.pingInterval = .seconds(10)
        configuration.pongTimeout = .seconds(5)
        return configuration
    }
    static func at(_ seconds: Int) -> Instant { Instant(nanoseconds: 1_000) + .seconds(seconds) }

    @Test("no heartbeat without a ping interval")
    func disabled() {
        var connection = Connection(role: .server)
        #expect(connection.nextDeadline == nil)
        connection.tick(now: Self.at(1000))
        #expect(connection.hasPendingOutput == false)
    }

    @Test("an idle connection sends a ping after the interval; a pong keeps it alive")
    func pingAfterIdle() throws {
        var connection = Connection(role: .server, configuration: Self.configuration())
        #expect(connection.nextDeadline == Instant(nanoseconds: 0), "needs a first clock reading")
        connection.tick(now: Self.at(0))
        #expect(connection.nextDeadline == Self.at(10))
        connection.tick(now: Self.at(9))
        #expect(connection.hasPendingOutput == false)
        connection.tick(now: Self.at(10))
        let out = try frames(writtenBy: .server, connection.takeOutput())
        #expect(out.map(\.0.opcode) == [.ping])
        #expect(connection.nextDeadline == Self.at(15))
        _ = connection.feed(maskedFrame(.pong, out[0].1))
        connection.tick(now: Self.at(12))
        #expect(connection.state == .open)
        #expect(connection.nextDeadline == Self.at(22))
    }

    @Test("traffic counts as liveness: no ping while data flows")
    func trafficDefersPing() {
        var connection = Connection(role: .server, configuration: Self.configuration())
        connection.tick(now: Self.at(0))
        for second in stride(from: 8, through: 80, by: 8) {
            _ = connection.feed(maskedFrame(.binary, [1]))
            connection.tick(now: Self.at(second))
            #expect(connection.hasPendingOutput == false)
        }
    }

    @Test("a peer that stops answering is declared dead: close 1011 sent, 1006 reported, transport closed")
    func deadPeer() throws {
        var connection = Connection(role: .client, configuration: Self.configuration())
        connection.tick(now: Self.at(0))
        connection.tick(now: Self.at(10))
        _ = connection.takeOutput()
        connection.tick(now: Self.at(14))
        #expect(connection.shouldCloseTransport == false)
        connection.tick(now: Self.at(15))
        #expect(connection.shouldCloseTransport == true)
        #expect(connection.closeStatus?.code == .abnormalClosure)
        let out = try frames(writtenBy: .client, connection.takeOutput())
        #expect(out.first?.0.opcode == .close)
        #expect(out.first.map { Array($0.1.prefix(2)) } == closePayload(1011))
    }
}
