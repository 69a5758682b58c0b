import FuzzSupport
import HubProtocol

// The hub protocol decoders (HubProtocol module). The first byte picks the input kind, the second the limits:
//   0: JSON hub frame   1: MessagePack hub frame   2: handshake request   3: handshake response
//   4: negotiate response   5: a JSON value   6: a MessagePack value
// Invariants: nothing traps; no message larger than the limit is accepted; for frames, decode ∘ encode is the
// identity on decoded messages and encode ∘ decode ∘ encode is stable (same bytes); a decoded message encodes in
// the other protocol or fails with `.unrepresentableValue` only, and that encoding decodes; values re-encode to
// bytes that decode to the same value.

@_cdecl("LLVMFuzzerTestOneInput")
public func hubProtocolFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let kind = input.byte() % 7
    let choice = input.byte()
    let limits =
        choice & 1 == 0
        ? HubProtocolLimits.default
        : HubProtocolLimits(
            maximumMessageSize: 16 + Int(choice >> 1) * 8, maximumDepth: 1 + Int(choice >> 4),
            maximumCollectionCount: Int(choice >> 2))
    let bytes = input.rest()
    switch kind {
    case 0:
        checkFrame(bytes, json: true, limits: limits)
        checkStream(bytes, format: .json, limits: limits, seed: choice)
    case 1:
        checkFrame(bytes, json: false, limits: limits)
        checkStream(bytes, format: .messagePack, limits: limits, seed: choice)
    case 2:
        if let (request, offset) = try? HandshakeRequest.parse(bytes, limits: limits) {
            if offset > bytes.count || bytes[offset - 1] != 0x1E { violated("remainder offset \(offset)") }
            let encoded = request.encoded()
            guard let (again, _) = try? HandshakeRequest.parse(encoded), again == request else {
                violated("handshake request does not round-trip")
            }
        }
    case 3:
        if let (response, _) = try? HandshakeResponse.parse(bytes, limits: limits) {
            guard let (again, _) = try? HandshakeResponse.parse(response.encoded()), again == response else {
                violated("handshake response does not round-trip")
            }
        }
    case 4:
        if let response = try? NegotiateResponse.parse(bytes, limits: limits) {
            // Version 0 drops the token on encoding; everything else round-trips.
            if case .connection(let connection) = response, connection.negotiateVersion < 1 { break }
            guard let again = try? NegotiateResponse.parse(response.encoded()), again == response else {
                violated("negotiate response does not round-trip")
            }
        }
    case 5:
        if let value = try? JSONValue(parsing: bytes, limits: limits) {
            guard let encoded = try? value.serialized(),
                let again = try? JSONValue(parsing: encoded, limits: roomy(limits)),
                again == value, (try? again.serialized()) == encoded
            else { violated("JSON value does not round-trip") }
        }
    default:
        if let value = try? MessagePackValue(decoding: bytes, limits: limits) {
            let encoded = value.encoded()
            guard let again = try? MessagePackValue(decoding: encoded, limits: roomy(limits)), again == value,
                again.encoded() == encoded
            else { violated("MessagePack value does not round-trip") }
        }
    }
    return 0
}

/// Same depth and counts, room for re-encodings that are a little longer (defaulted fields, other protocol).
/// `limits` with room for what a re-encoding may add: a larger message, and envelope arrays/objects of up to 8
/// elements (a JSON Completion `{type, invocationId, result}` fits a collection limit of 4; its MessagePack form
/// `[3, Headers, InvocationId, ResultKind, Result]` does not).
func roomy(_ limits: HubProtocolLimits) -> HubProtocolLimits {
    var limits = limits
    limits.maximumMessageSize = 1 << 22
    limits.maximumCollectionCount = max(limits.maximumCollectionCount, 8)
    return limits
}

func encode(_ messages: [HubMessage], json: Bool) throws(HubProtocolError) -> [UInt8] {
    var bytes: [UInt8] = []
    for message in messages {
        if json {
            try JSONHubProtocol().encode(message, into: &bytes)
        } else {
            try MessagePackHubProtocol().encode(message, into: &bytes)
        }
    }
    return bytes
}

func decode(_ bytes: [UInt8], json: Bool, limits: HubProtocolLimits) throws(HubProtocolError) -> [HubMessage] {
    json
        ? try JSONHubProtocol(limits: limits).decode(frame: bytes)
        : try MessagePackHubProtocol(limits: limits).decode(frame: bytes)
}

func checkFrame(_ bytes: [UInt8], json: Bool, limits: HubProtocolLimits) {
    var messages: [HubMessage] = []
    let failed: Bool
    do throws(HubProtocolError) {
        if json {
            try JSONHubProtocol(limits: limits).decode(frame: bytes, into: &messages)
        } else {
            try MessagePackHubProtocol(limits: limits).decode(frame: bytes, into: &messages)
        }
        failed = false
    } catch {
        failed = true
    }
    if json && !failed {
        // Every message of an accepted frame fits the limit.
        for part in bytes.split(separator: 0x1E) where part.count > limits.maximumMessageSize {
            violated("accepted a \(part.count)-byte message over the limit")
        }
    }
    guard !messages.isEmpty else { return }
    // Same protocol: decode ∘ encode is the identity, and the encoding is stable.
    let encoded: [UInt8]
    do throws(HubProtocolError) {
        encoded = try encode(messages, json: json)
    } catch {
        // A MessagePack float NaN cannot occur in JSON; in MessagePack every decoded value encodes.
        violated("decoded messages do not encode in their own protocol: \(error)")
    }
    let again: [HubMessage]
    do throws(HubProtocolError) {
        again = try decode(encoded, json: json, limits: roomy(limits))
    } catch {
        violated("our own encoding does not decode: \(error)")
    }
    if again != messages { violated("decode ∘ encode changed the messages") }
    if (try? encode(again, json: json)) != encoded { violated("encoding is not stable") }
    // The other protocol: encodes (or refuses an unrepresentable value) and decodes.
    do throws(HubProtocolError) {
        let other = try encode(messages, json: !json)
        do throws(HubProtocolError) {
            let converted = try decode(other, json: !json, limits: roomy(limits))
            if converted.count != messages.count || zip(converted, messages).contains(where: { $0.type != $1.type }) {
                violated("cross-protocol encoding changed the message types")
            }
        } catch {
            violated("cross-protocol encoding does not decode: \(error)")
        }
    } catch {
        if error.code != .unrepresentableValue { violated("cross-protocol encoding failed: \(error)") }
    }
}

/// The stream decoder gives the same messages and error for the whole input, one byte at a time and pieces of
/// pseudo-random sizes; it agrees with the frame decoder when that accepts; its buffer stays within the limit.
func checkStream(_ bytes: [UInt8], format: HubStreamDecoder.Format, limits: HubProtocolLimits, seed: UInt8) {
    func run(_ pieces: [ArraySlice<UInt8>]) -> ([HubMessage], HubProtocolError.Code?, Int) {
        var decoder = HubStreamDecoder(format: format, limits: limits)
        var messages: [HubMessage] = []
        for piece in pieces {
            do throws(HubProtocolError) {
                try decoder.decode(piece, into: &messages)
            } catch {
                return (messages, error.code, 0)
            }
            if decoder.bufferedByteCount > limits.maximumMessageSize + 5 {
                violated("stream buffer of \(decoder.bufferedByteCount) bytes")
            }
        }
        return (messages, nil, decoder.bufferedByteCount)
    }
    let whole = run([bytes[...]])
    let single = run(bytes.indices.map { bytes[$0...$0] })
    var pieces: [ArraySlice<UInt8>] = []
    var state = UInt32(seed) &+ 1
    var index = 0
    while index < bytes.count {
        state = state &* 1_103_515_245 &+ 12345
        let length = min(bytes.count - index, 1 + Int(state >> 16) % 64)
        pieces.append(bytes[index..<index + length])
        index += length
    }
    let split = run(pieces)
    for other in [single, split] where other.0 != whole.0 || other.1 != whole.1 || other.2 != whole.2 {
        violated("the stream decoder depends on how the input is split")
    }
    let framed =
        format == .json
        ? try? JSONHubProtocol(limits: limits).decode(frame: bytes)
        : try? MessagePackHubProtocol(limits: limits).decode(frame: bytes)
    if let framed, framed != whole.0 || whole.1 != nil || whole.2 != 0 {
        violated("the stream decoder disagrees with the frame decoder")
    }
}

@_cdecl("HubProtocolFuzzer_main")
func hubProtocolFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, hubProtocolFuzz)
}
