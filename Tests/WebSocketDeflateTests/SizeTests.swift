import Testing
import WebSocketCore
import WebSocketTestSupport

@testable import WebSocketDeflate

/// Sizes at the edges: a message limit of `Int.max`, and messages larger than zlib's 32-bit counters, which are
/// simulated by lowering the slice limit so that the slicing paths run on small messages.
@Suite("permessage-deflate: limits and sizes never trap")
struct DeflateSizeTests {
    /// The same payloads on every call: empty, one byte, compressible text, incompressible noise.
    static func payloads() -> [[UInt8]] {
        let text = Array(String(repeating: "the websocket frame carries a message ", count: 3000).utf8)
        return [[], [0x41], text, seededBytes(50_000)]
    }

    /// Sends every payload through `sender` and receives it on `receiver`, `chunk` bytes per read.
    static func roundTrip(
        _ sender: inout Connection, _ receiver: inout Connection, chunk: Int = .max
    ) throws -> [[UInt8]] {
        var received: [[UInt8]] = []
        for payload in payloads() {
            try payload.withUnsafeBytes { try sender.send(.binary, $0) }
            let outcome = receiver.feed(sender.takeOutput(), chunks: [chunk])
            if let error = outcome.error { throw error }
            received += outcome.messages
        }
        return received
    }

    @Test("maxMessageLength == Int.max means no limit when inflating", arguments: [Int.max, 1000])
    func intMaxLimit(chunk: Int) throws {
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = .max
        configuration.maxFramePayloadLength = .max
        var sender = Connection(role: .server, codec: PerMessageDeflateCodec(role: .server, parameters: .init()))
        var receiver = Connection(
            role: .client, configuration: configuration,
            codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        #expect(try Self.roundTrip(&sender, &receiver, chunk: chunk) == Self.payloads())
    }

    @Test("zlib fed in slices (as for messages above 4 GiB) gives the same messages", arguments: [1, 7, 4096])
    func slicedZlib(slice: Int) throws {
        for parameters in [PerMessageDeflate.Parameters(), .init(serverNoContextTakeover: true, clientNoContextTakeover: true)] {
            let slicedSender = PerMessageDeflateCodec(role: .client, parameters: parameters)
            slicedSender.zlibSliceLimit = slice
            let slicedReceiver = PerMessageDeflateCodec(role: .server, parameters: parameters)
            slicedReceiver.zlibSliceLimit = slice
            // Sliced on both sides, then each side against an unsliced peer.
            var sender = Connection(role: .client, codec: slicedSender)
            var receiver = Connection(role: .server, codec: slicedReceiver)
            #expect(try Self.roundTrip(&sender, &receiver, chunk: 333) == Self.payloads())
            var plainReceiver = Connection(role: .server, codec: PerMessageDeflateCodec(role: .server, parameters: parameters))
            #expect(try Self.roundTrip(&sender, &plainReceiver) == Self.payloads())
            var plainSender = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: parameters))
            #expect(try Self.roundTrip(&plainSender, &receiver) == Self.payloads())
        }
    }

    @Test("a decompression bomb is still stopped at the limit with sliced zlib")
    func slicedBomb() throws {
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = 10_000
        var sender = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: .init()))
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        try zeros.withUnsafeBytes { try sender.send(.binary, $0) }
        let wire = sender.takeOutput()
        let codec = PerMessageDeflateCodec(role: .server, parameters: .init())
        codec.zlibSliceLimit = 5
        var receiver = Connection(role: .server, configuration: configuration, codec: codec)
        #expect(receiver.feed(wire).error == .messageTooLarge)
    }

    @Test("the codec is a reference: the connection's codec is the one given, not a copy")
    func identity() {
        let codec = PerMessageDeflateCodec(role: .client, parameters: .init())
        let connection = Connection(role: .client, codec: codec)
        #expect(connection.codec === codec)
    }
}
