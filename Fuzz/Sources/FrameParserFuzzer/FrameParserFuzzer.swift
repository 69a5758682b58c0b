import FuzzSupport
import WebSocketCore

// Arbitrary bytes through FrameParser, both roles, several configurations, whole and in fuzzer-chosen splits.
// Invariants: every reported payload lies inside the buffer; the same frames and error for any split; a parsed
// header re-encodes to exactly the bytes it came from; payloads are unmasked correctly; limits hold.

@_cdecl("LLVMFuzzerTestOneInput")
public func frameParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let control = input.byte()
    let splitSeed = input.byte()
    let wire = input.rest()
    let limits = [125, 1000, 65_536, 1 << 20]
    let configuration = FrameParser.Configuration(
        role: control & 1 == 0 ? .server : .client,
        maxFramePayloadLength: limits[Int(control >> 5) & 3],
        allowsNonMinimalLengths: control & 2 != 0,
        claimedReservedBits: ReservedBits(rawValue: (control & 0x1C) << 2)
    )
    let whole = parseStream(wire, configuration, chunks: [])
    let split = parseStream(wire, configuration, chunks: chunkSizes(splitSeed))
    if whole != split { violated("split changed the result: \(whole.frames.count) vs \(split.frames.count) frames") }

    // Re-encode each header and compare with the original bytes (minimal encoding only), and check unmasking.
    var offset = 0
    for (header, payload) in zip(whole.frames, whole.payloads) {
        var encoded = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderLength)
        let n = encoded.withUnsafeMutableBytes { FrameEncoder.writeHeader(header, into: $0) }
        if !configuration.allowsNonMinimalLengths {
            if offset + n > wire.count || Array(wire[offset..<(offset + n)]) != Array(encoded[0..<n]) {
                violated("header does not re-encode to its bytes at offset \(offset)")
            }
        } else {
            // A non-minimal length takes more bytes; find the real header length from the wire.
            let length7 = wire[offset + 1] & 0x7F
            let real = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (header.maskKey == nil ? 0 : 4)
            offset += real - n
        }
        let start = offset + n
        var expected = Array(wire[start..<(start + payload.count)])
        if let key = header.maskKey {
            for i in expected.indices { expected[i] ^= key[i] }
        }
        if expected != payload { violated("payload not unmasked correctly") }
        offset = start + payload.count
    }
    return 0
}

@_cdecl("FrameParserFuzzer_main")
func frameParserFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, frameParserFuzz)
}
