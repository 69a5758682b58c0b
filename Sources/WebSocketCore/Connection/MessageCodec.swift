/// A per-message extension that transforms whole messages and marks them with RSV1 (RFC 6455 §9, RFC 7692 §6),
/// such as permessage-deflate (`WebSocketDeflate`). The core stays free of the codec's dependencies: it calls
/// these methods and enforces the framing rules around them.
///
/// Framing rules the ``Connection`` enforces for a codec: RSV1 may be set only on the first frame of a data
/// message (RSV1 on a continuation or control frame fails with 1002); control frames are never encoded; a message
/// sent in fragments with ``Connection/sendFrame(_:_:fin:)`` or ``Connection/makeFrameHeader(_:payloadLength:fin:)``
/// is sent as it is (RSV1 clear).
///
/// A codec holds live state that outlives a message (e.g. zlib streams with their sliding windows), so the
/// protocol is class-bound: a reference read out of ``Connection/codec`` is the connection's own codec, never a
/// copy that silently shares or forks that state. Give each connection its own codec and do not call it
/// elsewhere while the connection uses it.
public protocol MessageCodec: AnyObject {
    /// Decodes the payload of a received message whose first frame had RSV1 set.
    ///
    /// - Parameters:
    ///   - chunk: the next piece of the message's payload as it arrived (borrowed for the call).
    ///   - isFinal: `true` for the last piece of the message (FIN frame, end of its payload).
    ///   - limit: the most decoded bytes the whole message may produce (the connection's
    ///     ``Connection/Configuration/maxMessageLength``); decoding must stop and throw
    ///     ``ProtocolError/messageTooLarge`` as soon as more would be produced, whatever the encoded size.
    ///   - output: receives the decoded bytes in order, borrowed for each call; may be called any number of times.
    /// - Throws: ``ProtocolError/messageTooLarge`` (1009) past `limit`, ``ProtocolError/invalidCompressedData``
    ///   (1007) for undecodable input, or whatever `output` throws.
    func decode(
        _ chunk: UnsafeRawBufferPointer,
        isFinal: Bool,
        limit: Int,
        output: (UnsafeRawBufferPointer) throws(ProtocolError) -> Void
    ) throws(ProtocolError)

    /// Encodes a whole message to send.
    ///
    /// - Parameters:
    ///   - message: the message payload (borrowed for the call).
    ///   - kind: text or binary.
    ///   - body: called at most once with the encoded payload (borrowed for the call).
    /// - Returns: `true` when the message was encoded and `body` called (the frame then carries RSV1); `false` to
    ///   send it as it is (e.g. below a size threshold), without calling `body`.
    func encode(
        _ message: UnsafeRawBufferPointer,
        kind: MessageKind,
        body: (UnsafeRawBufferPointer) -> Void
    ) -> Bool
}
