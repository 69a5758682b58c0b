import Testing
import WebSocketCore
import WebSocketDeflate

/// Sends each message from one side and receives it on the other through real frames.
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
        var wire = sender.withPendingOutput { Array($0) }
        sizes.append(wire.count)
        var offset = 0
        var chunkIndex = 0
        while offset < wire.count {
            let size = chunks.isEmpty ? wire.count : chunks[chunkIndex % chunks.count]
            chunkIndex += 1
            let end = min(wire.count, offset + size)
            try wire.withUnsafeMutableBytes { raw in
                try receiver.receive(UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end])) { _, event in
                    if case .message(_, let payload) = event { received.append(Array(payload)) }
                }
            }
            offset = end
        }
    }
    return (received, sizes)
}

private func sample(_ seed: UInt64, _ count: Int) -> [UInt8] {
    var state = seed
    let words = ["hello", "world", "websocket", "deflate", "frame", "message", " ", "\n", "κόσμε"]
    var text = ""
    while text.utf8.count < count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        text += words[Int(state >> 33) % words.count]
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
        let wire = sender.withPendingOutput { Array($0) }
        var parser = FrameParser(configuration: .init(role: .client, claimedReservedBits: .rsv1))
        var rsv1: [Bool] = []
        var copy = wire
        try copy.withUnsafeMutableBytes { raw in
            var rest = raw
            while !rest.isEmpty {
                let (consumed, item) = try parser.parse(rest)
                rest = UnsafeMutableRawBufferPointer(rebasing: rest[consumed...])
                if case .frame(let header, _)? = item { rsv1.append(header.rsv1) }
            }
        }
        #expect(rsv1 == [true, false, false])
    }

    @Test("a known compressed payload from RFC 7692 §7.2.3.1 inflates to Hello")
    func rfcExample() throws {
        // "Hello" compressed without context takeover: 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00.
        var receiver = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        var frame: [UInt8] = [0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        // The same message in two fragments (RFC 7692 §7.2.3.1).
        frame += [0x41, 0x03, 0xF2, 0x48, 0xCD, 0x80, 0x04, 0xC9, 0xC9, 0x07, 0x00]
        var texts: [String] = []
        try frame.withUnsafeMutableBytes { raw in
            try receiver.receive(raw) { _, event in
                if case .message(.text, let payload) = event { texts.append(String(decoding: payload, as: UTF8.self)) }
            }
        }
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
        var wire = bombSender.withPendingOutput { Array($0) }
        #expect(wire.count < 64 << 10)
        var receiver = Connection(role: .server, configuration: configuration,
                                  codec: PerMessageDeflateCodec(role: .server, parameters: .init()))
        #expect(throws: ProtocolError.messageTooLarge) {
            try wire.withUnsafeMutableBytes { raw in try receiver.receive(raw) { _, _ in } }
        }
        #expect(receiver.closeStatus?.code == .messageTooBig)
    }

    @Test("corrupt compressed data fails with 1007")
    func corrupt() {
        var receiver = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        var frame: [UInt8] = [0xC2, 0x04, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: ProtocolError.invalidCompressedData) {
            try frame.withUnsafeMutableBytes { raw in _ = try receiver.receive(raw) }
        }
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
            var wire = client.withPendingOutput { Array($0) }
            let (_, event) = try wire.withUnsafeMutableBytes { try server.receive($0) }
            guard case .message(.text, let payload)? = event, payload.count == message.count else {
                Issue.record("message not received")
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
