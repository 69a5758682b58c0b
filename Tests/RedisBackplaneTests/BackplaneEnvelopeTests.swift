import Backplane
import BackplaneCodec
import Testing

@Suite("BackplaneEnvelopeCodec")
struct BackplaneEnvelopeTests {
    let codec = BackplaneEnvelopeCodec()

    static let samples: [BackplaneEnvelope] = [
        .message(
            origin: "server-1",
            scope: "chat",
            BackplaneMessage(
                target: .all,
                excludedConnectionIds: ["c1", "c2"],
                payloads: [.init(encoding: "json", bytes: Array("{\"type\":1}\u{1e}".utf8)),
                    .init(encoding: "messagepack", bytes: [0x92, 0x01, 0xC0])]
            )
        ),
        .message(origin: "s", scope: "", BackplaneMessage(target: .group("room é"), payloads: [])),
        .message(origin: "s", scope: "x", BackplaneMessage(target: .connection("c:1"), payloads: [.init(encoding: "", bytes: [])])),
        .message(origin: "s", scope: "x", BackplaneMessage(target: .user("alice"), payloads: [.init(encoding: "text", bytes: [0, 255])])),
        .groupChange(
            origin: "server-2",
            GroupChangeRequest(scope: "chat", requestId: .max, change: .add, connectionId: "c9", group: "g", replyTo: "server-2")
        ),
        .groupChange(
            origin: "a",
            GroupChangeRequest(scope: "s", requestId: 0, change: .remove, connectionId: "", group: "", replyTo: "b")
        ),
        .acknowledgement(origin: "server-3", requestId: 42),
    ]

    @Test("encode then decode is the identity", arguments: samples)
    func roundTrip(_ envelope: BackplaneEnvelope) throws {
        let bytes = try codec.encode(envelope)
        #expect(try codec.decode(bytes) == envelope)
        #expect(bytes[0] == 1)
    }

    @Test("the layout: an acknowledgement byte by byte")
    func layout() throws {
        let bytes = try codec.encode(.acknowledgement(origin: "ab", requestId: 0x0102))
        #expect(bytes == [1, 2, 0, 2, 0x61, 0x62, 0, 0, 0, 0, 0, 0, 1, 2])
    }

    @Test("every proper prefix of a valid envelope is refused as truncated", arguments: samples)
    func truncated(_ envelope: BackplaneEnvelope) throws {
        let bytes = try codec.encode(envelope)
        for length in 0..<bytes.count {
            #expect(throws: BackplaneEnvelopeError.self) { try codec.decode(bytes[0..<length]) }
            do {
                _ = try codec.decode(bytes[0..<length])
            } catch {
                guard case .truncated = error else {
                    Issue.record("prefix of \(length) bytes: \(error), not truncated")
                    continue
                }
            }
        }
    }

    @Test("malformed input: each rule has its error")
    func malformed() throws {
        func expect(_ bytes: [UInt8], _ expected: BackplaneEnvelopeError, limits: BackplaneEnvelopeCodec.Limits = .init()) {
            #expect(throws: expected) { try BackplaneEnvelopeCodec(limits: limits).decode(bytes) }
        }
        expect([], .truncated(field: "version"))
        expect([2, 0], .unsupportedVersion(2))
        expect([1, 7], .unknownKind(7))
        // message: origin "a", scope "s", target 9
        expect([1, 0, 0, 1, 0x61, 0, 1, 0x73, 9], .unknownTarget(9))
        // group change with change byte 5
        expect([1, 1, 0, 1, 0x61, 0, 1, 0x73] + [UInt8](repeating: 0, count: 8) + [5], .unknownChange(5))
        // invalid UTF-8 in the origin (a lone continuation byte, an overlong encoding)
        expect([1, 2, 0, 1, 0x80] + [UInt8](repeating: 0, count: 8), .invalidUTF8(field: "origin"))
        expect([1, 2, 0, 2, 0xC0, 0x80] + [UInt8](repeating: 0, count: 8), .invalidUTF8(field: "origin"))
        // trailing bytes
        expect([1, 2, 0, 0] + [UInt8](repeating: 0, count: 8) + [0xFF], .trailingBytes(count: 1))
        // a string above the limit
        expect([1, 2, 0, 5] + Array("hello".utf8), .stringTooLong(field: "origin", length: 5, limit: 4),
            limits: .init(maxStringLength: 4))
        // too many excluded IDs, payloads, too large a payload, a repeated encoding
        let head: [UInt8] = [1, 0, 0, 1, 0x61, 0, 1, 0x73, 0]
        expect(head + [0xFF, 0xFF], .tooManyExcludedConnections(count: 65535, limit: 1024))
        expect(head + [0, 0, 17], .tooManyPayloads(count: 17, limit: 16))
        expect(head + [0, 0, 1, 0, 1, 0x6A, 0xFF, 0xFF, 0xFF, 0xFF], .payloadTooLarge(length: Int(UInt32.max), limit: 16 << 20))
        expect(head + [0, 0, 2, 0, 1, 0x6A, 0, 0, 0, 0, 0, 1, 0x6A, 0, 0, 0, 0], .duplicateEncoding("j"))
        // a payload length beyond the input
        expect(head + [0, 0, 1, 0, 1, 0x6A, 0, 0, 0, 9, 1, 2], .truncated(field: "payload"))
        // a huge excluded count within the limit but no bytes for it: truncated, no large allocation
        expect(head + [0x03, 0xFF], .truncated(field: "excluded connection ID length"), limits: .init(maxExcludedConnections: 2000))
    }

    @Test("the encoder refuses what the layout cannot hold")
    func encodingLimits() {
        let long = String(repeating: "x", count: 65536)
        #expect(throws: BackplaneEnvelopeCodec.EncodingError.self) {
            try codec.encode(.acknowledgement(origin: long, requestId: 1))
        }
        // What the receivers' limits (default 1024-byte names, 1024 excluded IDs) would refuse is refused here.
        #expect(throws: BackplaneEnvelopeCodec.EncodingError.self) {
            let group = String(repeating: "g", count: 1025)
            _ = try codec.encode(.message(origin: "a", scope: "s", BackplaneMessage(target: .group(group), payloads: [])))
        }
        #expect(throws: BackplaneEnvelopeCodec.EncodingError.self) {
            let excluded = (0..<1025).map { "c\($0)" }
            let message = BackplaneMessage(target: .all, excludedConnectionIds: excluded, payloads: [])
            _ = try codec.encode(.message(origin: "a", scope: "s", message))
        }
        #expect(throws: Never.self) {
            let group = String(repeating: "g", count: 1024)
            _ = try codec.encode(.message(origin: "a", scope: "s", BackplaneMessage(target: .group(group), payloads: [])))
        }
        let payloads = (0..<256).map { BackplaneMessage.Payload(encoding: "\($0)", bytes: []) }
        #expect(throws: BackplaneEnvelopeCodec.EncodingError.self) {
            try codec.encode(.message(origin: "a", scope: "s", BackplaneMessage(target: .all, payloads: payloads)))
        }
    }

    @Test("pseudo-random bytes never crash the decoder")
    func noise() {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed ^= seed << 13
            seed ^= seed >> 7
            seed ^= seed << 17
            return seed
        }
        let valid = (try? Self.samples.map { try codec.encode($0) }) ?? []
        for round in 0..<5000 {
            var bytes: [UInt8]
            if round % 2 == 0, !valid.isEmpty {
                let base = valid[Int(next() % UInt64(valid.count))]
                bytes = base
                for _ in 0..<(1 + Int(next() % 3)) where !bytes.isEmpty {
                    bytes[Int(next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: next())
                }
            } else {
                bytes = (0..<Int(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) }
            }
            if let envelope = try? codec.decode(bytes) {
                #expect((try? codec.encode(envelope)) == bytes)
            }
        }
    }
}
