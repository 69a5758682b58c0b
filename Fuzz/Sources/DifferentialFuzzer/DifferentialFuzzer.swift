import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOWebSocket
import WebSocketCore

// The same bytes through our FrameParser and SwiftNIO's WebSocketFrameDecoder (in an EmbeddedChannel).
// Our parser is configured to NIO's leniency where NIO has none (non-minimal lengths, any RSV bit) and the
// masking rule follows the first frame. Invariants: where both accept frame k, they agree on FIN, RSV1-3,
// opcode, masking key, length and unmasked payload; and we never accept a frame that NIO rejects (we are at
// least as strict: NIO rejects only oversize frames and bad control frames, which we reject too).

@_cdecl("LLVMFuzzerTestOneInput")
public func differentialFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let splitSeed = input.byte()
    let wire = input.rest()
    guard wire.count >= 2 else { return 0 }
    let maxFrameSize = 1 << 16
    let role: Role = wire[1] & 0x80 != 0 ? .server : .client
    let ours = parseStream(
        wire,
        FrameParser.Configuration(role: role, maxFramePayloadLength: maxFrameSize, allowsNonMinimalLengths: true,
                                  claimedReservedBits: [.rsv1, .rsv2, .rsv3]),
        chunks: chunkSizes(splitSeed))

    let channel = EmbeddedChannel()
    do {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
    } catch {
        violated("pipeline setup failed: \(error)")
    }
    var nioFailed = false
    do {
        try channel.writeInbound(channel.allocator.buffer(bytes: wire))
    } catch {
        nioFailed = true
    }
    var theirs: [WebSocketFrame] = []
    while let frame = try? channel.readInbound(as: WebSocketFrame.self) { theirs.append(frame) }
    _ = try? channel.finish()

    for (index, (header, payload)) in zip(ours.frames, ours.payloads).enumerated() where index < theirs.count {
        let frame = theirs[index]
        let theirKey = frame.maskKey.map { MaskKey($0[0], $0[1], $0[2], $0[3]) }
        if header.fin != frame.fin || header.rsv1 != frame.rsv1 || header.rsv2 != frame.rsv2 || header.rsv3 != frame.rsv3
            || header.opcode.rawValue != UInt8(webSocketOpcode: frame.opcode) || header.maskKey != theirKey
            || header.payloadLength != frame.length
        {
            violated("frame \(index): header \(header) vs NIO \(frame)")
        }
        let theirPayload = frame.unmaskedData.readableBytesView
        if !payload.elementsEqual(theirPayload) { violated("frame \(index): payloads differ") }
    }
    if nioFailed && ours.frames.count > theirs.count {
        violated("we accepted frame \(theirs.count), which NIO rejects")
    }
    return 0
}

@_cdecl("DifferentialFuzzer_main")
func differentialFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, differentialFuzz)
}
