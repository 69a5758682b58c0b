/// Decodes hub messages from a byte stream that arrives in pieces of any size: a long-polling or SSE `POST`
/// body read chunk by chunk, or a long-poll response on the client side. (A WebSocket frame holds whole messages;
/// decode it with ``JSONHubProtocol/decode(frame:into:)`` or ``MessagePackHubProtocol/decode(frame:into:)``.)
///
/// Bytes in, messages out: ``decode(_:into:)`` appends the complete messages to the caller's array and keeps
/// the incomplete tail. The tail is bounded: a JSON tail longer than `limits.maximumMessageSize` without its
/// 0x1E, or a MessagePack length prefix above the limit, is an error at once, so the buffer never holds more than
/// one message's worth of bytes beyond the last chunk. Whatever the split of the input, the messages and the
/// error are the same. After an error the stream is broken: every later call throws the same error (the
/// connection is to be closed).
public struct HubStreamDecoder: Sendable {
    /// The hub protocol of the stream.
    public enum Format: Sendable, Hashable {
        case json
        case messagePack
    }

    /// The protocol decoded.
    public let format: Format
    /// Bounds on each message (and so on the buffered tail).
    public let limits: HubProtocolLimits
    private var buffer: [UInt8] = []
    /// JSON: how far `buffer` has been searched for 0x1E without finding one.
    private var scanned = 0
    private var failure: HubProtocolError?

    public init(format: Format, limits: HubProtocolLimits = .default) {
        self.format = format
        self.limits = limits
    }

    /// Bytes received but not yet part of a complete message.
    public var bufferedByteCount: Int { buffer.count }

    /// Whether the stream ended between messages (nothing buffered), as it must at the end of a body.
    public var isAtMessageBoundary: Bool { buffer.isEmpty && failure == nil }

    /// Appends `bytes` and the messages they complete (in order) to `messages`.
    /// - Throws: the codes of the format's `decode(frame:into:)` except the end-of-frame ones
    ///   (`.missingRecordSeparator`, `.truncated` for a cut prefix or body): an incomplete message simply waits.
    ///   Messages completed before a bad one are appended before the error is thrown.
    public mutating func decode(_ bytes: some Collection<UInt8>, into messages: inout [HubMessage])
        throws(HubProtocolError)
    {
        if let failure { throw failure }
        buffer.append(contentsOf: bytes)
        do {
            switch format {
            case .json: try decodeJSON(into: &messages)
            case .messagePack: try decodeMessagePack(into: &messages)
            }
        } catch {
            failure = error
            buffer = []
            throw error
        }
    }

    private mutating func decodeJSON(into messages: inout [HubMessage]) throws(HubProtocolError) {
        let codec = JSONHubProtocol(limits: limits)
        var start = 0
        var index = scanned
        while index < buffer.count {
            if buffer[index] == JSONHubProtocol.recordSeparator {
                messages.append(try codec.decodeMessage(buffer[start..<index]))
                start = index + 1
            }
            index += 1
        }
        buffer.removeSubrange(0..<start)
        scanned = buffer.count
        guard buffer.count <= limits.maximumMessageSize else {
            throw HubProtocolError(
                .messageTooLarge, "more than \(limits.maximumMessageSize) bytes without a record separator")
        }
    }

    private mutating func decodeMessagePack(into messages: inout [HubMessage]) throws(HubProtocolError) {
        let codec = MessagePackHubProtocol(limits: limits)
        var start = 0
        while start < buffer.count {
            guard let (length, size) = try MessagePackHubProtocol.readVarInt(buffer[start...]) else { break }
            guard length <= limits.maximumMessageSize else {
                throw HubProtocolError(.messageTooLarge, "\(length) bytes, limit \(limits.maximumMessageSize)")
            }
            guard length <= buffer.count - start - size else { break }
            let body = start + size
            messages.append(try codec.decodeMessage(buffer[body..<body + length]))
            start = body + length
        }
        buffer.removeSubrange(0..<start)
    }
}
