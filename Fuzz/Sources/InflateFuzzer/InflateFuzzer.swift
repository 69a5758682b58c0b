import FuzzSupport
import WebSocketCore
import WebSocketDeflate

// The permessage-deflate inflate path with arbitrary compressed data, windows and chunking, under a small
// message limit. Invariants: no crash; a message is never delivered above the limit; corrupt data fails with
// 1007 and oversize output with 1009; and compressing the raw input then inflating it returns it unchanged.

@_cdecl("LLVMFuzzerTestOneInput")
public func inflateFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let setup = input.byte()
    let split = input.byte()
    let payload = input.rest()
    let parameters = PerMessageDeflate.Parameters(
        serverNoContextTakeover: setup & 1 != 0, clientNoContextTakeover: setup & 2 != 0,
        serverMaxWindowBits: 8 + Int(setup >> 2 & 7), clientMaxWindowBits: 8 + Int(setup >> 5 & 7))
    let limit = [64, 4096, 1 << 16, 1 << 20][Int(split >> 6)]
    var configuration = Connection.Configuration()
    configuration.maxMessageLength = limit

    // 1. Arbitrary bytes as a compressed message from a client, in chunks.
    var server = Connection(role: .server, configuration: configuration,
                            codec: PerMessageDeflateCodec(role: .server, parameters: parameters))
    var frame = [UInt8](repeating: 0, count: FrameEncoder.maxHeaderLength)
    let key = MaskKey(1, 2, 3, 4)
    let header = FrameHeader(fin: true, reservedBits: .rsv1, opcode: .binary, maskKey: key, payloadLength: payload.count)
    let n = frame.withUnsafeMutableBytes { FrameEncoder.writeHeader(header, into: $0) }
    var masked = payload
    masked.withUnsafeMutableBytes { _ = Masking.apply(key, to: $0) }
    var wire = Array(frame[0..<n]) + masked
    let chunk = Int(split & 0x3F) + 1
    var offset = 0
    outer: while offset < wire.count {
        let end = min(wire.count, offset + chunk)
        let stop: Bool = wire.withUnsafeMutableBytes { raw in
            do throws(ProtocolError) {
                try server.receive(UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end])) { _, event in
                    if case .message(_, let bytes) = event, bytes.count > limit { violated("message above limit") }
                }
                return false
            } catch {
                if error != .invalidCompressedData && error != .messageTooLarge && error != .frameTooLarge {
                    violated("unexpected error \(error)")
                }
                return true
            }
        }
        offset = end
        if stop { break outer }
    }

    // 2. Compress the bytes as a message and inflate them back.
    guard payload.count <= limit else { return 0 }
    var sender = Connection(role: .client, codec: PerMessageDeflateCodec(role: .client, parameters: parameters))
    var receiver = Connection(role: .server, configuration: configuration,
                              codec: PerMessageDeflateCodec(role: .server, parameters: parameters))
    for _ in 0..<2 {
        let sent = payload.withUnsafeBytes { raw in Result { () throws(SendError) in try sender.send(.binary, raw) } }
        if case .failure(let error) = sent { violated("send failed: \(error)") }
        var out = sender.withPendingOutput { Array($0) }
        let event: [UInt8]? = out.withUnsafeMutableBytes { raw in
            guard let (_, event) = try? receiver.receive(raw), case .message(_, let bytes)? = event else { return nil }
            return Array(bytes)
        }
        if event != payload { violated("round trip changed \(payload.count) bytes") }
    }
    return 0
}

@_cdecl("InflateFuzzer_main")
func inflateFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, inflateFuzz)
}
