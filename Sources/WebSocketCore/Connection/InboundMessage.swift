/// The data message a ``Connection`` is receiving, from its first frame to its last (RFC 6455 §5.4).
struct InboundMessage {
    /// Text or binary, from the first frame's opcode.
    let kind: MessageKind
    /// Whether the first frame carried RSV1 claimed by the codec: the payload is decoded before delivery.
    let encoded: Bool
    /// Payload bytes received so far, as they arrived on the wire (encoded, for an encoded message).
    var length = 0
    /// Frames received so far.
    var fragments = 0
    /// Decoded bytes produced so far (encoded messages only).
    var decodedLength = 0
    /// Whether no event of this message has been delivered yet (streaming mode: the next one has `isFirst`).
    var firstChunkPending = true
    /// UTF-8 validation state of a text message, carried across frames and reads.
    var validator = UTF8Validator()

    init(kind: MessageKind, encoded: Bool) {
        self.kind = kind
        self.encoded = encoded
    }
}
