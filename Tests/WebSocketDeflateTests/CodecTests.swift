import Testing
import WebSocketCore
import WebSocketDeflate
import WebSocketTestSupport

/// Sends each message from one side and receives it on the other through real frames, fed in `chunks`.
private func roundTrip(
    _ messages: [[UInt8]], parameters: PerMessageDeflate.Parameters, from role: Role = .client,
    configuration: PerMessageDeflate.Configuration = .init(), chunks: [Int] = []
) throws -> (received: [[UInt8]], compressedSizes: [Int]) {
    var sender = Connection(role: role, codec: PerMessageDeflateCodec(role: role, parameters: parameters, configuration: configuration))
    let peerRole: Role = role == .client ? .server : .client
    var receiver = Connection(role: peerRole, codec: PerMessageDeflateCodec(role: peerRole, parameters: parameters, configuration: configuration))
    var received: [[UInt8]] = []
    var sizes: [Int] = []
    for message in messages {
        try message.withUnsafeBytes { try sender.send(.binary, $0) }
        let wire = sender.takeOutput()
        sizes.append(wire.count)
        let outcome = receiver.feed(wire, chunks: chunks)
        if let error = outcome.error { throw error }
        received += outcome.messages
    }
    return (received, sizes)
}

/// `count` bytes of UTF-8 text made of words picked by a seeded generator: compressible, reproducible.
private func sample(_ seed: UInt64, _ count: Int) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    let words = ["hello", "world", "websocket", "deflate", "frame", "message", " ", "\n", "κόσμε"]
    var text = ""
    while text.utf8.count < count {
        text += words.randomElement(using: &generator)!
    }
    return Array(text.utf8.prefix(count))
}

@Suite("permessage-deflate compression (RFC 7692 §7.2)")
struct CodecTests {
    static let parameterSets: [PerMessageDeflate.Parameters] = [
        .init(),
        .init(serverNoContextTakeover: true, clientNoContextTakeover: true),
        .init(serverMaxWindowBits: 9, clientMaxWindowBits: 9),
        .init(serverMaxWindowBits: 8, clientMaxWindowBits: 8),
        .init(serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 8, clientMaxWindowBits: 12),
    ]

    @Test("messages round-trip in both directions, across context takeover settings and windows", arguments: parameterSets)
    func roundTrips(parameters: PerMessageDeflate.Parameters) throws {
        let messages = [sample(1, 0), sample(2, 31), sample(3, 32), sample(4, 1000), sample(5, 70_000), sample(4, 1000),
                        (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }]
        for role in [Role.client, .server] {
            for chunks in [[], [1], [100]] {
                let result = try roundTrip(messages, parameters: parameters, from: role, chunks: chunks)
                #expect(result.received == messages, "\(role) \(chunks)")
            }
        }
    }

    @Test("context takeover makes a repeated message smaller; no context takeover does not")
    func contextTakeoverMatters() throws {
        let message = sample(9, 2000)
        let kept = try roundTrip([message, message], parameters: .init())
        #expect(kept.compressedSizes[1] < kept.compressedSizes[0] / 4)
        let reset = try roundTrip([message, message], parameters: .init(serverNoContextTakeover: true, clientNoContextTakeover: true))
        #expect(reset.compressedSizes[1] == reset.compressedSizes[0])
    }

    @Test("RSV1 is set on compressed messages only, and short messages go uncompressed")
    func rsv1AndThreshold() throws {
        var sender = Connection(role: .server, codec: PerMessageDeflateCodec(role: .server, parameters: .init()))
        try sample(1, 100).withUnsafeBytes { try sender.send(.text, $0) }
        try sample(1, 10).withUnsafeBytes { try sender.send(.text, $0) }
        try sample(1, 100).withUnsafeBytes { try sender.send(.text, $0, encode: false) }
        let rsv1 = RawFrame.parseAll(sender.takeOutput()).map(\.rsv1)
        #expect(rsv1 == [true, false, false])
    }

    @Test("a known compressed payload from RFC 7692 §7.2.3.1 inflates to Hello")
    func rfcExample() throws {
        // "Hello" compressed without context takeover: 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00.
        var receiver = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        var frame: [UInt8] = [0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        // The same message in two fragments (RFC 7692 §7.2.3.1).
        frame += [0x41, 0x03, 0xF2, 0x48, 0xCD, 0x80, 0x04, 0xC9, 0xC9, 0x07, 0x00]
        let outcome = receiver.feed(frame)
        #expect(outcome.error == nil)
        let texts = outcome.messages.map { String(decoding: $0, as: UTF8.self) }
        #expect(texts == ["Hello", "Hello"])
    }

    @Test("a decompression bomb fails with 1009 once the inflated size passes the limit")
    func bomb() throws {
        // 10 MiB of zeros compress to about 10 KiB.
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = 1 << 20
        var bombSender = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        let zeros = [UInt8](repeating: 0, count: 10 << 20)
        try zeros.withUnsafeBytes { try bombSender.send(.binary, $0) }
        let wire = bombSender.takeOutput()
        #expect(wire.count < 64 << 10)
        var receiver = Connection(role: .server, configuration: configuration,
                                  codec: PerMessageDeflateCodec(role: .server, parameters: .init()))
        #expect(receiver.feed(wire).error == .messageTooLarge)
        #expect(receiver.closeStatus?.code == .messageTooBig)
    }

    @Test("corrupt compressed data fails with 1007")
    func corrupt() {
        var receiver = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        #expect(receiver.feed([0xC2, 0x04, 0xFF, 0xFF, 0xFF, 0xFF]).error == .invalidCompressedData)
        #expect(receiver.closeStatus?.code == .invalidFramePayloadData)
    }

    @Test("zlib memory per connection: default versus no context takeover and small windows")
    func memory() throws {
        let message = sample(7, 4000)
        func footprint(_ parameters: PerMessageDeflate.Parameters, _ configuration: PerMessageDeflate.Configuration) throws -> Int {
            var server = Connection(role: .server, codec: PerMessageDeflateCodec(role: .server, parameters: parameters, configuration: configuration))
            var client = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: parameters, configuration: configuration))
            try message.withUnsafeBytes { try server.send(.text, $0) }
            try message.withUnsafeBytes { try client.send(.text, $0) }
            let outcome = server.feed(client.takeOutput())
            guard case .message(.text, let payload)? = outcome.events.first, payload.count == message.count else {
                Issue.record("message not received: \(outcome.events), \(String(describing: outcome.error))")
                return -1
            }
            return (server.codec as? PerMessageDeflateCodec)?.allocatedBytes ?? -1
        }
        let full = try footprint(.init(), .init())
        let low = try footprint(.init(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9), .lowMemory)
        // Default: deflate 2^17 + 2^17 bytes plus inflate 2^15 window and state, about 300 KiB.
        #expect(full > 256 << 10 && full < 400 << 10, "default footprint \(full)")
        // Without context takeover nothing is held between messages.
        #expect(low == 0, "low-memory footprint \(low)")
    }
}
