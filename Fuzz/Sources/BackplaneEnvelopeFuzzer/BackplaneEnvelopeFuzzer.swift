import Backplane
import BackplaneCodec
import FuzzSupport

// Bytes from another server (a Redis channel anyone may publish to) through `BackplaneEnvelopeCodec.decode`.
// The first byte picks the limits (small or default). Invariants: decoding never traps; an accepted envelope
// respects the limits, and encodes back to exactly the input bytes (the layout has one encoding per value);
// a refused input is refused again with the same error.

@_cdecl("LLVMFuzzerTestOneInput")
public func backplaneEnvelopeFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let choice = input.byte()
    let bytes = input.rest()
    let small = choice & 1 == 1
    let limits = BackplaneEnvelopeCodec.Limits(
        maxStringLength: small ? Int(choice >> 4) + 1 : 1024,
        maxExcludedConnections: small ? Int(choice >> 1 & 7) : 1024,
        maxPayloads: small ? Int(choice >> 5) : 16,
        maxPayloadLength: small ? Int(choice) : 16 << 20
    )
    let codec = BackplaneEnvelopeCodec(limits: limits)
    let envelope: BackplaneEnvelope
    do {
        envelope = try codec.decode(bytes)
    } catch {
        do {
            _ = try codec.decode(bytes)
            violated("accepted on the second try")
        } catch let again {
            if again != error { violated("different errors: \(error) then \(again)") }
        }
        return 0
    }
    func checkString(_ text: String) {
        if text.utf8.count > limits.maxStringLength { violated("string above the limit") }
    }
    checkString(envelope.origin)
    switch envelope {
    case .message(_, let scope, let message):
        checkString(scope)
        switch message.target {
        case .all: break
        case .group(let name), .connection(let name), .user(let name): checkString(name)
        }
        if message.excludedConnectionIds.count > limits.maxExcludedConnections { violated("too many excluded") }
        message.excludedConnectionIds.forEach(checkString)
        if message.payloads.count > limits.maxPayloads { violated("too many payloads") }
        if Set(message.payloads.map(\.encoding)).count != message.payloads.count { violated("duplicate encoding") }
        for payload in message.payloads {
            checkString(payload.encoding)
            if payload.bytes.count > limits.maxPayloadLength { violated("payload above the limit") }
        }
    case .groupChange(_, let request):
        [request.scope, request.connectionId, request.group, request.replyTo].forEach(checkString)
    case .acknowledgement:
        break
    }
    guard let encoded = try? codec.encode(envelope) else { violated("a decoded envelope does not encode") }
    if encoded != bytes { violated("re-encoding differs from the input") }
    return 0
}

@_cdecl("BackplaneEnvelopeFuzzer_main")
func backplaneEnvelopeFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, backplaneEnvelopeFuzz)
}
