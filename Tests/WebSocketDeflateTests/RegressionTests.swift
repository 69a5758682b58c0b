import Testing
import WebSocketCore
import WebSocketDeflate
import WebSocketTestSupport

/// Inputs found by the fuzz targets (Fuzz/), minimised, kept as regression tests.
@Suite("permessage-deflate regressions from fuzzing")
struct DeflateRegressionTests {
    /// InflateFuzzer: a 62-byte message did not survive compress-then-inflate with 8-bit windows and a 64-byte
    /// message limit.
    @Test("round trip with 8-bit windows under a 64-byte limit")
    func windowEightSmallLimit() throws {
        let payload: [UInt8] = [
            0x00, 0x00, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x80, 0x01, 0xd2, 0x48, 0xcd, 0x24, 0x01, 0x03,
            0x62, 0x6e, 0x72, 0x69, 0x6e, 0xa0, 0x01, 0x03, 0xf8, 0xff, 0x79, 0xff, 0xff, 0xff, 0xb7, 0x4f, 0x70, 0x74,
            0x69, 0x6f, 0x6e, 0x48, 0xcd, 0x24, 0x01, 0x03, 0x01, 0x0a, 0x03, 0xf8, 0xff, 0xc7, 0x07, 0xc7, 0x32, 0x6e,
            0x72, 0x69, 0x6e, 0xa0, 0x01, 0xa0, 0x48, 0x00,
        ]
        let parameters = PerMessageDeflate.Parameters(serverMaxWindowBits: 8, clientMaxWindowBits: 8)
        var configuration = Connection.Configuration()
        configuration.maxMessageLength = 64
        var sender = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: parameters))
        var receiver = Connection(role: .server, configuration: configuration,
                                  codec: PerMessageDeflateCodec(role: .server, parameters: parameters))
        for round in 0..<2 {
            try payload.withUnsafeBytes { try sender.send(.binary, $0) }
            let outcome = receiver.feed(sender.takeOutput())
            #expect(outcome.error == nil)
            let received = outcome.messages.first
            #expect(received == payload, "round \(round)")
        }
    }
}
