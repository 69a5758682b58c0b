import Foundation
import Testing
import WebSocketCore
import WebSocketTestSupport

@Suite("Frame parsing and encoding (RFC 6455 §5.2)")
struct FrameParserTests {
    struct Vector: CustomStringConvertible, Sendable {
        var role: Role
        var bytes: [UInt8]
        var expectation: String
        var description: String { "\(role) \(hexString(bytes)) → \(expectation)" }
    }

    static let vectors: [Vector] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Vectors/frames.txt")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " })
            guard fields.count == 3, !line.hasPrefix("#") else { return nil }
            return Vector(role: fields[0] == "server" ? .server : .client, bytes: hex(String(fields[1])),
                          expectation: String(fields[2]))
        }
    }()

    static let errorsByName: [String: ProtocolError] = [
        "unmaskedFrameFromClient": .unmaskedFrameFromClient, "maskedFrameFromServer": .maskedFrameFromServer,
        "reservedBitsSet": .reservedBitsSet, "reservedOpcode": .reservedOpcode,
        "fragmentedControlFrame": .fragmentedControlFrame, "controlFrameTooLong": .controlFrameTooLong,
        "nonMinimalPayloadLength": .nonMinimalPayloadLength,
        "payloadLengthMostSignificantBitSet": .payloadLengthMostSignificantBitSet, "frameTooLarge": .frameTooLarge,
    ]

    @Test("the shared vector file is present and non-trivial")
    func vectorFileLoads() {
        #expect(Self.vectors.count >= 30)
    }

    @Test("shared vectors, whole and one byte at a time", arguments: FrameParserTests.vectors)
    func sharedVector(vector: Vector) throws {
        for chunks in [[], [1], [3]] {
            let configuration = FrameParser.Configuration(role: vector.role, maxFramePayloadLength: 1 << 24)
            do {
                let frames = try parseAll(vector.bytes, role: vector.role, chunks: chunks, configuration: configuration)
                if vector.expectation == "more" {
                    #expect(frames.isEmpty)
                    continue
                }
                let parts = vector.expectation.split(separator: ":")
                try #require(parts.count == 4 && parts[0] == "frame", "expected \(vector.expectation)")
                try #require(frames.count == 1)
                #expect("\(frames[0].0.opcode)" == parts[1])
                #expect(frames[0].0.fin == (parts[2] == "1"))
                #expect(frames[0].1 == (parts[3] == "-" ? [] : hex(String(parts[3]))))
            } catch {
                let name = vector.expectation.split(separator: ":").last.map(String.init) ?? ""
                #expect(vector.expectation.hasPrefix("error:"), "unexpected \(error)")
                #expect((error as? ProtocolError) == Self.errorsByName[name], "got \(error)")
            }
        }
    }

    @Test("encode then parse returns the same frames for random headers, payloads and input splits (headers checked against the independent builder)")
    func roundTripProperty() throws {
        var rng = SeededGenerator(seed: 0x5_2)
        for round in 0..<200 {
            let receiver: Role = round % 2 == 0 ? .server : .client
            var frames: [(FrameHeader, [UInt8])] = []
            var wire: [UInt8] = []
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let opcode = Opcode.allCases.randomElement(using: &rng)!
                let sizeClass = Int.random(in: 0...9, using: &rng)
                let length = opcode.isControl
                    ? Int.random(in: 0...125, using: &rng)
                    : [0, 1, 125, 126, 127, 200, 65535, 65536, 70000, Int.random(in: 0...300, using: &rng)][sizeClass]
                let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let key = receiver == .server
                    ? MaskKey(.random(in: 0...255, using: &rng), .random(in: 0...255, using: &rng),
                              .random(in: 0...255, using: &rng), .random(in: 0...255, using: &rng)) : nil
                let fin = opcode.isControl ? true : Bool.random(using: &rng)
                let header = FrameHeader(fin: fin, opcode: opcode, maskKey: key, payloadLength: length)
                frames.append((header, payload))
                // Built by the independent builder of the tests; our encoder must write the same header.
                let frame = RawFrame.bytes(opcode, payload, fin: fin, key: key)
                var encoded = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderLength)
                let n = encoded.withUnsafeMutableBytes { FrameEncoder.writeHeader(header, into: $0) }
                #expect(Array(encoded.prefix(n)) == Array(frame.prefix(n)))
                wire += frame
            }
            let chunks = (0..<5).map { _ in [1, 2, 3, 7, 14, 100, 4096, 70_000].randomElement(using: &rng)! }
            let parsed = try parseAll(wire, role: receiver, chunks: chunks)
            try #require(parsed.count == frames.count)
            for (a, b) in zip(parsed, frames) {
                #expect(a.0 == b.0)
                #expect(a.1 == b.1)
            }
        }
    }

    @Test("re-encoding a parsed header reproduces its bytes")
    func headerRoundTrip() throws {
        for length in [0, 5, 125, 126, 65535, 65536, 1 << 20] {
            for key in [nil, MaskKey(1, 2, 3, 4)] {
                let header = FrameHeader(fin: true, opcode: .binary, maskKey: key, payloadLength: length)
                var bytes = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderLength)
                let n = bytes.withUnsafeMutableBytes { FrameEncoder.writeHeader(header, into: $0) }
                #expect(n == header.headerLength)
                let expectedLength = ([0, 5, 125].contains(length) ? 2 : (length <= 65535 ? 4 : 10)) + (key == nil ? 0 : 4)
                #expect(n == expectedLength)
                var parser = FrameParser(configuration: .init(role: key == nil ? .client : .server,
                                                             maxFramePayloadLength: 1 << 21))
                let (consumed, item) = try bytes.withUnsafeMutableBytes { try parser.parse(UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                #expect(consumed == n)
                if length == 0 {
                    #expect(item == .frame(header, payload: n..<n))
                } else {
                    #expect(item == .header(header))
                }
            }
        }
    }

    @Test("a frame larger than the limit is rejected from its header, before any payload arrives")
    func frameLimitFromHeader() {
        let configuration = FrameParser.Configuration(role: .client, maxFramePayloadLength: 1000)
        // Header announcing 1001 bytes with no payload at all.
        #expect(throws: ProtocolError.frameTooLarge) {
            try parseAll([0x82, 0x7E, 0x03, 0xE9], role: .client, configuration: configuration)
        }
        #expect(throws: Never.self) {
            try parseAll([0x82, 0x7E, 0x03, 0xE8], role: .client, configuration: configuration)
        }
    }

    @Test("non-minimal lengths are accepted only with the leniency switch")
    func nonMinimalLeniency() throws {
        let bytes: [UInt8] = [0x82, 0x7E, 0x00, 0x03, 1, 2, 3]
        #expect(throws: ProtocolError.nonMinimalPayloadLength) { try parseAll(bytes, role: .client) }
        let lenient = FrameParser.Configuration(role: .client, allowsNonMinimalLengths: true)
        let frames = try parseAll(bytes, role: .client, configuration: lenient)
        #expect(frames.count == 1 && frames[0].1 == [1, 2, 3])
    }

    @Test("reserved bits claimed by an extension are accepted and reported")
    func claimedReservedBits() throws {
        let claimed = FrameParser.Configuration(role: .client, claimedReservedBits: .rsv1)
        let frames = try parseAll([0xC1, 0x01, 0x41], role: .client, configuration: claimed)
        #expect(frames.first?.0.rsv1 == true)
        #expect(throws: ProtocolError.reservedBitsSet) {
            try parseAll([0xA1, 0x01, 0x41], role: .client, configuration: claimed)
        }
    }

    @Test("a payload that is all in the buffer is reported in place (zero-copy) and unmasked there")
    func zeroCopyInPlace() throws {
        var bytes = maskedFrame(.text, Array("Hello".utf8))
        var parser = FrameParser(configuration: .init(role: .server))
        try bytes.withUnsafeMutableBytes { raw in
            let (consumed, item) = try parser.parse(raw)
            #expect(consumed == raw.count)
            guard case .frame(_, let range) = item else {
                Issue.record("expected a whole frame")
                return
            }
            #expect(range == 6..<11)
            #expect(Array(raw[range]) == Array("Hello".utf8))
        }
        #expect(parser.isAtFrameBoundary)
    }
}
