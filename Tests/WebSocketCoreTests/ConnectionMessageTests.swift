import Testing
import WebSocketCore
import WebSocketTestSupport

/// Frames as the peer of `role` sends them: masked when we are the server.
func peerFrame(_ role: Role, _ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = []) -> [UInt8] {
    role == .server ? maskedFrame(opcode, payload, fin: fin, rsv: rsv) : unmaskedFrame(opcode, payload, fin: fin, rsv: rsv)
}

@Suite("Connection: messages and fragmentation (RFC 6455 §5.4, §5.6)")
struct ConnectionMessageTests {
    static let roles: [Role] = [.server, .client]
    static let splits: [[Int]] = [[], [1], [2, 5], [7], [1000]]

    @Test("text and binary messages of many sizes, any split", arguments: roles)
    func messages(role: Role) {
        for size in [0, 1, 125, 126, 127, 128, 65535, 65536, 100_000] {
            let text = [UInt8](repeating: 0x61, count: size)
            let binary = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let wire = peerFrame(role, .text, text) + peerFrame(role, .binary, binary)
            for chunks in Self.splits where size < 70_000 || chunks != [1] {
                var connection = Connection(role: role)
                let outcome = connection.feed(wire, chunks: chunks)
                #expect(outcome.error == nil)
                #expect(outcome.events == [.message(.text, text), .message(.binary, binary)], "size \(size) chunks \(chunks)")
            }
        }
    }

    @Test("fragmented messages are reassembled, with control frames in between", arguments: roles)
    func fragmentation(role: Role) {
        let wire = peerFrame(role, .text, Array("Hel".utf8), fin: false)
            + peerFrame(role, .ping, [1, 2])
            + peerFrame(role, .continuation, Array("lo, ".utf8), fin: false)
            + peerFrame(role, .pong, [3])
            + peerFrame(role, .continuation, [], fin: false)
            + peerFrame(role, .continuation, Array("world".utf8), fin: true)
        for chunks in Self.splits {
            var connection = Connection(role: role)
            let outcome = connection.feed(wire, chunks: chunks)
            #expect(outcome.error == nil)
            #expect(outcome.events == [.ping([1, 2]), .pong([3]), .message(.text, Array("Hello, world".utf8))])
        }
    }

    @Test("a continuation frame without a started message fails with 1002", arguments: roles)
    func continuationWithoutStart(role: Role) {
        var connection = Connection(role: role)
        let outcome = connection.feed(peerFrame(role, .continuation, [1], fin: true))
        #expect(outcome.error == .unexpectedContinuationFrame)
        #expect(connection.closeStatus?.code == .protocolError)
    }

    @Test("a new text/binary frame inside a fragmented message fails with 1002", arguments: roles)
    func newStartInsideFragmentedMessage(role: Role) {
        var connection = Connection(role: role)
        let outcome = connection.feed(peerFrame(role, .binary, [1], fin: false) + peerFrame(role, .text, [0x41]))
        #expect(outcome.error == .expectedContinuationFrame)
    }

    @Test("a single-frame message in one buffer is delivered without copying")
    func zeroCopyDelivery() throws {
        var bytes = maskedFrame(.binary, [9, 8, 7, 6])
        var connection = Connection(role: .server)
        try bytes.withUnsafeMutableBytes { raw in
            let (_, event) = try connection.receive(raw)
            guard case .message(.binary, let payload) = event else {
                Issue.record("expected a binary message")
                return
            }
            let start = UnsafeRawPointer(raw.baseAddress!)
            #expect(payload.baseAddress == start + 6, "payload must point into the caller's buffer")
            #expect(Array(payload) == [9, 8, 7, 6])
        }
    }

    @Test("streaming mode delivers fragments as they arrive, never reassembled", arguments: roles)
    func streamingMode(role: Role) {
        var configuration = Connection.Configuration()
        configuration.delivery = .streaming
        var connection = Connection(role: role, configuration: configuration)
        let wire = peerFrame(role, .binary, [1, 2, 3], fin: false) + peerFrame(role, .continuation, [4], fin: true)
            + peerFrame(role, .text, [])
        let outcome = connection.feed(wire)
        #expect(outcome.events == [
            .fragment(.binary, [1, 2, 3], isFirst: true, isFinal: false),
            .fragment(.binary, [4], isFirst: false, isFinal: true),
            .fragment(.text, [], isFirst: true, isFinal: true),
        ])
        // Split payloads arrive in pieces.
        var split = Connection(role: role, configuration: configuration)
        let pieces = split.feed(peerFrame(role, .binary, [1, 2, 3, 4, 5, 6]), chunks: [4, 2])
        let total = pieces.events.flatMap { event -> [UInt8] in
            if case .fragment(_, let bytes, _, _) = event { return bytes }
            return []
        }
        #expect(total == [1, 2, 3, 4, 5, 6])
        #expect(pieces.events.count > 1)
        if case .fragment(_, _, _, let isFinal)? = pieces.events.last { #expect(isFinal) }
    }
}

@Suite("Connection: UTF-8 in text messages (RFC 6455 §8.1)")
struct ConnectionUTF8Tests {
    @Test("invalid UTF-8 fails with 1007 at the first bad fragment, before the message ends", arguments: [Role.server, .client])
    func failFast(role: Role) {
        // κόσμε then a surrogate, in a fragment that is not the last.
        let bad = hex("cebae1bdb9cf83cebcceb5eda080")
        var connection = Connection(role: role)
        let outcome = connection.feed(peerFrame(role, .text, bad, fin: false))
        #expect(outcome.error == .invalidUTF8)
        #expect(connection.closeStatus?.code == .invalidFramePayloadData)
        #expect(connection.shouldCloseTransport == true)
    }

    @Test("fail-fast also inside a frame whose payload has not fully arrived")
    func failFastWithinFrame() {
        var connection = Connection(role: .client)
        let frame = unmaskedFrame(.text, [0x41, 0xFF] + [UInt8](repeating: 0x41, count: 1000))
        // Only the header and the first 2 payload bytes.
        let outcome = connection.feed(Array(frame.prefix(4 + 2)), chunks: [4, 2])
        #expect(outcome.error == .invalidUTF8)
    }

    @Test("a code point split across fragments and reads is valid")
    func splitCodePoint() {
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        let wire = unmaskedFrame(.text, [euro[0]], fin: false) + unmaskedFrame(.continuation, [euro[1]], fin: false)
            + unmaskedFrame(.continuation, [euro[2]], fin: true)
        for chunks in [[], [1], [3]] {
            var connection = Connection(role: .client)
            #expect(connection.feed(wire, chunks: chunks).events == [.message(.text, euro)])
        }
    }

    @Test("a text message that ends inside a code point fails with 1007")
    func truncatedAtEnd() {
        var connection = Connection(role: .client)
        #expect(connection.feed(unmaskedFrame(.text, [0xE2, 0x82])).error == .invalidUTF8)
    }

    @Test("binary messages are not validated")
    func binaryNotValidated() {
        var connection = Connection(role: .client)
        #expect(connection.feed(unmaskedFrame(.binary, [0xFF, 0xFE])).events == [.message(.binary, [0xFF, 0xFE])])
    }
}

@Suite("Connection: limits (RFC 6455 §10.4)")
struct ConnectionLimitTests {
    @Test("a frame above the frame limit fails with 1009 before its payload arrives")
    func frameLimit() {
        var configuration = Connection.Configuration()
        configuration.maxFramePayloadLength = 100
        var connection = Connection(role: .client, configuration: configuration)
        let header = Array(unmaskedFrame(.binary, [UInt8](repeating: 0, count: 101)).prefix(4))
        let outcome = connection.feed(header)
        #expect(outcome.error == .frameTooLarge)
        #expect(connection.closeStatus?.code == .messageTooBig)
    }

    @Test("a message above the message limit fails with 1009 from the header of the frame that crosses it")
    func messageLimit() {
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = 10
        var connection = Connection(role: .client, configuration: configuration)
        let wire = unmaskedFrame(.binary, [UInt8](repeating: 1, count: 6), fin: false)
            + Array(unmaskedFrame(.continuation, [UInt8](repeating: 1, count: 5)).prefix(2))
        #expect(connection.feed(wire).error == .messageTooLarge)
        // Exactly at the limit is fine.
        var exact = Connection(role: .client, configuration: configuration)
        let ok = unmaskedFrame(.binary, [UInt8](repeating: 1, count: 6), fin: false)
            + unmaskedFrame(.continuation, [UInt8](repeating: 1, count: 4))
        #expect(exact.feed(ok).events == [.message(.binary, [UInt8](repeating: 1, count: 10))])
    }

    @Test("many empty fragments hit the fragment limit (1009) instead of running on")
    func fragmentLimit() {
        var configuration = Connection.Configuration()
        configuration.maxFragmentsPerMessage = 100
        var connection = Connection(role: .client, configuration: configuration)
        var wire = unmaskedFrame(.binary, [], fin: false)
        for _ in 0..<100 { wire += unmaskedFrame(.continuation, [], fin: false) }
        let outcome = connection.feed(wire)
        #expect(outcome.error == .tooManyFragments)
        #expect(connection.closeStatus?.code == .messageTooBig)
    }

    @Test("reassembly memory is released after a large message")
    func releaseAfterLargeMessage() {
        var connection = Connection(role: .client)
        let big = [UInt8](repeating: 7, count: 1 << 20)
        let wire = unmaskedFrame(.binary, big, fin: false) + unmaskedFrame(.continuation, [1])
        var bytes = wire
        var messageLength = 0
        var heldWithMessage = 0
        bytes.withUnsafeMutableBytes { raw in
            var rest = raw
            while messageLength == 0, let (consumed, event) = try? connection.receive(rest) {
                rest = UnsafeMutableRawBufferPointer(rebasing: rest[consumed...])
                if case .message(_, let payload) = event {
                    messageLength = payload.count
                    // The reassembled message is held while its payload is handed out.
                    heldWithMessage = connection.bufferCapacity
                }
                if event == nil { break }
            }
        }
        #expect(messageLength == (1 << 20) + 1)
        #expect(heldWithMessage > 1 << 20)
        // The next call releases it (down to the 64 KiB kept for reuse); a small message still works.
        #expect(connection.feed(unmaskedFrame(.binary, [2])).events == [.message(.binary, [2])])
        #expect(connection.bufferCapacity <= (64 << 10) + 2 * 128 + (64 << 10))
    }
}

@Suite("Connection: extreme configured values never trap")
struct ConnectionSaturationTests {
    static func unlimited() -> Connection.Configuration {
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = .max
        configuration.maxFramePayloadLength = .max
        configuration.maxFragmentsPerMessage = .max
        return configuration
    }

    @Test("Int.max limits mean no limit, with and without a codec, whole or streamed",
          arguments: [Connection.MessageDelivery.wholeMessages, .streaming])
    func intMaxLimits(delivery: Connection.MessageDelivery) {
        var configuration = Self.unlimited()
        configuration.delivery = delivery
        let payload = (0..<70_000).map { UInt8(truncatingIfNeeded: $0) }
        let wire = unmaskedFrame(.binary, Array(payload[..<1000]), fin: false)
            + unmaskedFrame(.continuation, Array(payload[1000...]))
        for codec in [nil, XORCodec()] as [XORCodec?] {
            for chunks in [[], [7], [4096]] {
                var connection = Connection(role: .client, configuration: configuration, codec: codec)
                let outcome = connection.feed(wire, chunks: chunks)
                #expect(outcome.error == nil)
                let received = outcome.events.flatMap { event -> [UInt8] in
                    switch event {
                    case .message(_, let bytes), .fragment(_, let bytes, _, _): return bytes
                    default: return []
                    }
                }
                #expect(received == payload)
            }
        }
    }

    @Test("Int.max limits still refuse a 64-bit length with its most significant bit set")
    func intMaxStillRefusesMSB() {
        var connection = Connection(role: .client, configuration: Self.unlimited())
        let header: [UInt8] = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]
        #expect(connection.feed(header).error == .payloadLengthMostSignificantBitSet)
    }

    @Test("a frame announcing Int.max bytes under Int.max limits waits for its payload without reserving it")
    func intMaxFrame() {
        var connection = Connection(role: .client, configuration: Self.unlimited())
        let header: [UInt8] = [0x02, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [1, 2, 3]
        let outcome = connection.feed(header)
        #expect(outcome.error == nil)
        #expect(outcome.events.isEmpty)
    }

    @Test("negative limits count as zero: empty messages pass, anything larger fails with 1009")
    func negativeLimits() {
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = -1
        configuration.maxFramePayloadLength = .min
        for codec in [nil, XORCodec()] as [XORCodec?] {
            var connection = Connection(role: .client, configuration: configuration, codec: codec)
            #expect(connection.feed(unmaskedFrame(.binary, [])).events == [.message(.binary, [])])
            #expect(connection.feed(unmaskedFrame(.binary, [1])).error == .frameTooLarge)
        }
        var parser = FrameParser(configuration: FrameParser.Configuration(role: .client))
        parser.configuration.maxFramePayloadLength = -5
        var frame = unmaskedFrame(.binary, [1])
        _ = frame.withUnsafeMutableBytes { raw in
            #expect(throws: ProtocolError.frameTooLarge) { _ = try parser.parse(raw) }
        }
    }

    @Test(".seconds(Int64.max) timeouts and interval never expire and never trap")
    func hugeDurations() throws {
        var configuration = Connection.Configuration()
        configuration.pingInterval = .seconds(Int64.max)
        configuration.pongTimeout = .seconds(Int64.max)
        configuration.closeTimeout = .seconds(Int64.max)
        let end = Instant(nanoseconds: .max)
        var connection = Connection(role: .client, configuration: configuration)
        connection.tick(now: Instant(nanoseconds: 5))
        #expect(connection.nextDeadline == end)
        connection.tick(now: Instant(nanoseconds: .max - 1))
        #expect(connection.hasPendingOutput == false, "no ping before the saturated deadline")
        try connection.close()
        _ = connection.takeOutput()
        connection.tick(now: Instant(nanoseconds: .max - 1))
        #expect(connection.nextDeadline == end)
        connection.tick(now: Instant(nanoseconds: .max - 1))
        #expect(connection.state == .closing)

        // A ping interval of 1 ns and a pong timeout of Int64.max seconds: the ping goes out, the peer is
        // never declared dead.
        configuration.pingInterval = .nanoseconds(1)
        var pinging = Connection(role: .server, configuration: configuration)
        pinging.tick(now: Instant(nanoseconds: 0))
        pinging.tick(now: Instant(nanoseconds: 1))
        #expect(pinging.hasPendingOutput == true)
        #expect(pinging.nextDeadline == end)
        pinging.tick(now: Instant(nanoseconds: .max - 1))
        #expect(pinging.state == .open)
    }
}

@Suite("Instant and Duration arithmetic")
struct InstantTests {
    @Test("adding saturates at the largest instant")
    func saturates() {
        #expect(Instant(nanoseconds: 1) + .seconds(Int64.max) == Instant(nanoseconds: .max))
        #expect(Instant(nanoseconds: .max - 3) + .nanoseconds(10) == Instant(nanoseconds: .max))
        #expect(Instant(nanoseconds: .max) + .nanoseconds(Int64.max) == Instant(nanoseconds: .max))
        // 18 446 744 073 s fit in UInt64 nanoseconds; 18 446 744 074 s do not.
        #expect(Instant(nanoseconds: 0) + .seconds(18_446_744_073) == Instant(nanoseconds: 18_446_744_073_000_000_000))
        #expect(Instant(nanoseconds: 0) + .seconds(18_446_744_074) == Instant(nanoseconds: .max))
    }

    @Test("negative durations count as zero")
    func negative() {
        #expect(Instant(nanoseconds: 50) + .seconds(-1) == Instant(nanoseconds: 50))
        #expect(Instant(nanoseconds: 50) + .nanoseconds(-1) == Instant(nanoseconds: 50))
        #expect(Instant(nanoseconds: 50) + .seconds(Int64.min) == Instant(nanoseconds: 50))
    }

    @Test("fractions of a second are kept to the nanosecond; below a nanosecond they are dropped")
    func fractions() {
        #expect(Instant(nanoseconds: 0) + .milliseconds(1500) == Instant(nanoseconds: 1_500_000_000))
        #expect(Instant(nanoseconds: 0) + .nanoseconds(7) == Instant(nanoseconds: 7))
        #expect(Instant(nanoseconds: 0) + Duration(secondsComponent: 2, attosecondsComponent: 999_999_999) == Instant(nanoseconds: 2_000_000_000))
    }
}
