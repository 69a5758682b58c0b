/// The MessagePack hub protocol (HubProtocol.md, "MessagePack (MsgPack) encoding"): each message is a
/// MessagePack array whose first element is the message type, preceded by its length as a VarInt of 1-5 bytes
/// ("Binary encoding"); a binary frame holds one or more whole messages.
///
/// Layouts: Invocation `[1, Headers, InvocationId|nil, Target, [Arguments], [StreamIds]]`, StreamItem
/// `[2, Headers, InvocationId, Item]`, Completion `[3, Headers, InvocationId, ResultKind, Result?]` (ResultKind 1
/// error, 2 void, 3 value), StreamInvocation `[4, …]` as Invocation, CancelInvocation `[5, Headers,
/// InvocationId]`, Ping exactly `0x91 0x06`, Close `[7, Error|nil, AllowReconnect]` (no headers), Ack
/// `[8, SequenceId]`, Sequence `[9, SequenceId]`. Decoding accepts the shorter forms older peers send (Invocation
/// without StreamIds, Close without AllowReconnect), ignores extra trailing elements, and reads the client-stream
/// messages of signalrcore 1.0.2, which leave slots out: an Invocation `[1, Headers, Target, [Arguments],
/// [StreamIds]]` (no InvocationId: non-blocking) and a Completion `[3, Headers, InvocationId]` (void).
public struct MessagePackHubProtocol: Sendable {
    /// The protocol's name in the handshake.
    public static let name = "messagepack"
    /// The largest length a VarInt prefix may carry: 2^31 - 1 (HubProtocol.md, "VarInt").
    public static let maximumVarIntValue = Int(Int32.max)

    /// Bounds applied when decoding (encoding is not limited: the caller decides what it sends).
    public var limits: HubProtocolLimits

    public init(limits: HubProtocolLimits = .default) {
        self.limits = limits
    }

    // MARK: Framing

    /// Reads a VarInt length prefix at `offset`: 7 bits per byte, least significant group first, high bit set on
    /// every byte but the last.
    /// - Returns: the length and the prefix's size in bytes, or nil if `bytes` ends inside the prefix.
    /// - Throws: `.invalidVarInt` for a 6th byte or a value above 2^31 - 1.
    public static func readVarInt(_ bytes: some Collection<UInt8>) throws(HubProtocolError) -> (length: Int, size: Int)?
    {
        var value = 0
        var size = 0
        for byte in bytes {
            guard size < 5 else { throw HubProtocolError(.invalidVarInt, "a length prefix longer than 5 bytes") }
            value |= Int(byte & 0x7F) << (7 * size)
            size += 1
            if byte & 0x80 == 0 {
                guard value <= maximumVarIntValue else {
                    throw HubProtocolError(.invalidVarInt, "a length above 2^31 - 1")
                }
                return (value, size)
            }
        }
        if size >= 5 { throw HubProtocolError(.invalidVarInt, "a length prefix longer than 5 bytes") }
        return nil
    }

    /// Appends the VarInt form of `length` (0...2^31 - 1).
    public static func writeVarInt(_ length: Int, into buffer: inout [UInt8]) {
        var rest = UInt32(truncatingIfNeeded: length)
        repeat {
            var byte = UInt8(rest & 0x7F)
            rest >>= 7
            if rest != 0 { byte |= 0x80 }
            buffer.append(byte)
        } while rest != 0
    }

    // MARK: Decoding

    /// Decodes every message of a binary frame (or POST body), in order, appending them to `messages`.
    /// If message *k* is bad, the messages before it are in `messages` when the error is thrown.
    /// - Throws: ``HubProtocolError``: `.invalidVarInt`, `.truncated` (a prefix or body cut short by the end of
    ///   the frame), `.messageTooLarge` (a length above `limits.maximumMessageSize`, refused before reading the
    ///   body), the MessagePack codes of ``MessagePackValue/init(decoding:limits:)``, `.invalidMessage`
    ///   (an empty body, not an array, too few elements), `.unknownMessageType`, `.wrongFieldType`,
    ///   `.invalidResultKind`, `.trailingBytes`.
    public func decode(frame: some Collection<UInt8>, into messages: inout [HubMessage]) throws(HubProtocolError) {
        let bytes = Array(frame)
        var offset = 0
        while offset < bytes.count {
            guard let (length, size) = try Self.readVarInt(bytes[offset...]) else {
                throw HubProtocolError(.truncated, "the frame ends inside a length prefix", offset: offset)
            }
            guard length <= limits.maximumMessageSize else {
                throw HubProtocolError(.messageTooLarge, "\(length) bytes, limit \(limits.maximumMessageSize)")
            }
            let start = offset + size
            guard length <= bytes.count - start else {
                throw HubProtocolError(
                    .truncated, "the frame ends inside a message (\(length) bytes announced)", offset: offset)
            }
            messages.append(try decodeMessage(bytes[start..<start + length]))
            offset = start + length
        }
    }

    /// Decodes every message of a frame; see ``decode(frame:into:)``.
    public func decode(frame: some Collection<UInt8>) throws(HubProtocolError) -> [HubMessage] {
        var messages: [HubMessage] = []
        try decode(frame: frame, into: &messages)
        return messages
    }

    /// Decodes one message body (without its length prefix).
    /// - Throws: as ``decode(frame:into:)`` except the framing codes.
    public func decodeMessage(_ body: ArraySlice<UInt8>) throws(HubProtocolError) -> HubMessage {
        guard body.count <= limits.maximumMessageSize else {
            throw HubProtocolError(.messageTooLarge, "\(body.count) bytes, limit \(limits.maximumMessageSize)")
        }
        let limits = self.limits
        let result: Result<HubMessage, HubProtocolError> = body.withUnsafeBufferPointer { buffer in
            Result { () throws(HubProtocolError) in
                var reader = MessageReader(reader: MessagePackReader(buffer, limits: limits))
                return try reader.message()
            }
        }
        return try result.get()
    }

    private struct MessageReader {
        var reader: MessagePackReader

        mutating func message() throws(HubProtocolError) -> HubMessage {
            guard !reader.isAtEnd else { throw HubProtocolError(.invalidMessage, "empty message") }
            guard let count = try reader.readArrayHeader() else {
                throw HubProtocolError(.invalidMessage, "a message must be a MessagePack array")
            }
            guard count >= 1 else { throw HubProtocolError(.invalidMessage, "an empty array is no message") }
            guard let typeNumber = try reader.readValue(depth: 2).int64Value else {
                throw .wrongType("type", expected: "an integer")
            }
            guard let type = HubMessageType(rawValue: Int(clamping: typeNumber)) else {
                throw HubProtocolError(.unknownMessageType, field: "type", "unknown message type \(typeNumber)")
            }
            var used = 1
            func need(_ minimum: Int) throws(HubProtocolError) {
                guard count >= minimum else {
                    throw HubProtocolError(
                        .invalidMessage, "a \(type) message needs at least \(minimum) elements, found \(count)")
                }
            }
            let message: HubMessage
            switch type {
            case .invocation, .streamInvocation:
                try need(5)
                let headers = try self.headers()
                var invocationId = try optionalString("invocationId")
                let target: String
                let arguments: [HubValue]
                var streamIds: [String] = []
                if type == .invocation, count == 5, let first = invocationId, let next = reader.peek(),
                    Self.isArrayFormat(next)
                {
                    // signalrcore 1.0.2 writes a client-stream Invocation without its InvocationId slot:
                    // [1, Headers, Target, [Arguments], [StreamIds]]. A target is never an array, so this shape
                    // cannot be mistaken for [1, Headers, InvocationId, Target, [Arguments]].
                    invocationId = nil
                    target = first
                    arguments = try self.arguments()
                    streamIds = try self.streamIds()
                    used = 5
                } else {
                    target = try string("target")
                    arguments = try self.arguments()
                    used = 5
                    if count >= 6 {
                        streamIds = try self.streamIds()
                        used = 6
                    }
                }
                if type == .invocation {
                    message = .invocation(
                        HubMessage.Invocation(
                            headers: headers, invocationId: invocationId, target: target, arguments: arguments,
                            streamIds: streamIds))
                } else {
                    guard let invocationId else { throw .wrongType("invocationId", expected: "a string") }
                    message = .streamInvocation(
                        HubMessage.StreamInvocation(
                            headers: headers, invocationId: invocationId, target: target, arguments: arguments,
                            streamIds: streamIds))
                }
            case .streamItem:
                try need(4)
                let headers = try self.headers()
                let invocationId = try string("invocationId")
                let item = try reader.readValue(depth: 2)
                used = 4
                message = .streamItem(
                    HubMessage.StreamItem(headers: headers, invocationId: invocationId, item: .messagePack(item)))
            case .completion:
                try need(3)
                let headers = try self.headers()
                let invocationId = try string("invocationId")
                guard count >= 4 else {
                    // signalrcore 1.0.2 ends a client stream with [3, Headers, InvocationId] (no ResultKind):
                    // read as a void Completion.
                    message = .completion(
                        HubMessage.Completion(headers: headers, invocationId: invocationId, result: .void))
                    used = 3
                    break
                }
                let kind = try reader.readValue(depth: 2).int64Value
                let result: HubMessage.Completion.Result
                switch kind {
                case 1:
                    try need(5)
                    result = .error(try string("error"))
                    used = 5
                case 2:
                    result = .void
                    used = 4
                case 3:
                    try need(5)
                    result = .value(.messagePack(try reader.readValue(depth: 2)))
                    used = 5
                default:
                    throw HubProtocolError(.invalidResultKind, field: "resultKind", "ResultKind must be 1, 2 or 3")
                }
                message = .completion(
                    HubMessage.Completion(headers: headers, invocationId: invocationId, result: result))
            case .cancelInvocation:
                try need(3)
                let headers = try self.headers()
                message = .cancelInvocation(
                    HubMessage.CancelInvocation(headers: headers, invocationId: try string("invocationId")))
                used = 3
            case .ping:
                message = .ping
            case .close:
                try need(2)
                let error = try optionalString("error")
                var allowReconnect = false
                used = 2
                if count >= 3 {
                    switch try reader.readValue(depth: 2) {
                    case .bool(let flag): allowReconnect = flag
                    case .nil: break
                    default: throw .wrongType("allowReconnect", expected: "a boolean")
                    }
                    used = 3
                }
                message = .close(HubMessage.Close(error: error, allowReconnect: allowReconnect))
            case .ack, .sequence:
                try need(2)
                guard let id = try reader.readValue(depth: 2).int64Value, id >= 0 else {
                    throw .wrongType("sequenceId", expected: "a non-negative integer")
                }
                used = 2
                message = type == .ack ? .ack(sequenceId: id) : .sequence(sequenceId: id)
            }
            // Extra elements are ignored (newer peers may add fields) but must be well-formed.
            for _ in used..<count { _ = try reader.readValue(depth: 2) }
            guard reader.isAtEnd else {
                throw HubProtocolError(.trailingBytes, "bytes after the message array", offset: reader.position)
            }
            return message
        }

        mutating func string(_ field: String) throws(HubProtocolError) -> String {
            guard case .string(let string) = try reader.readValue(depth: 2) else {
                throw .wrongType(field, expected: "a string")
            }
            return string
        }

        /// Whether a format byte starts an array (fixarray, array 16, array 32).
        static func isArrayFormat(_ byte: UInt8) -> Bool {
            (0x90...0x9F).contains(byte) || byte == 0xDC || byte == 0xDD
        }

        mutating func optionalString(_ field: String) throws(HubProtocolError) -> String? {
            switch try reader.readValue(depth: 2) {
            case .string(let string): return string
            case .nil: return nil
            default: throw .wrongType(field, expected: "a string or nil")
            }
        }

        mutating func headers() throws(HubProtocolError) -> [String: String] {
            guard let count = try reader.readMapHeader() else { throw .wrongType("headers", expected: "a map") }
            var headers: [String: String] = [:]
            for _ in 0..<count {
                let key = try string("headers")
                let value = try string("headers.\(key)")
                guard headers.updateValue(value, forKey: key) == nil else {
                    throw HubProtocolError(.duplicateKey, field: "headers.\(key)", "header '\(key)' appears twice")
                }
            }
            return headers
        }

        mutating func arguments() throws(HubProtocolError) -> [HubValue] {
            guard let count = try reader.readArrayHeader() else {
                throw .wrongType("arguments", expected: "an array")
            }
            var arguments: [HubValue] = []
            arguments.reserveCapacity(count)
            for _ in 0..<count { arguments.append(.messagePack(try reader.readValue(depth: 3))) }
            return arguments
        }

        mutating func streamIds() throws(HubProtocolError) -> [String] {
            switch reader.peek() {
            case 0xC0:
                _ = try reader.readValue(depth: 2)
                return []
            default:
                guard let count = try reader.readArrayHeader() else {
                    throw .wrongType("streamIds", expected: "an array of strings")
                }
                var ids: [String] = []
                ids.reserveCapacity(count)
                for index in 0..<count { ids.append(try string("streamIds[\(index)]")) }
                return ids
            }
        }
    }

    // MARK: Encoding

    /// Appends the message with its VarInt length prefix to `buffer`; on error `buffer` is left as it was.
    /// - Throws: ``HubProtocolError`` `.unrepresentableValue` when an `Encodable` argument, item or result fails
    ///   to encode.
    public func encode(_ message: HubMessage, into buffer: inout [UInt8]) throws(HubProtocolError) {
        if case .ping = message {
            buffer.append(contentsOf: [0x02, 0x91, 0x06])
            return
        }
        // The body is written in place after a one-byte prefix; a longer prefix shifts the body once.
        let prefixAt = buffer.count
        buffer.append(0)
        do {
            try Self.write(message, into: &buffer)
        } catch {
            buffer.removeSubrange(prefixAt...)
            throw error
        }
        let length = buffer.count - prefixAt - 1
        if length < 0x80 {
            buffer[prefixAt] = UInt8(length)
        } else {
            var prefix: [UInt8] = []
            Self.writeVarInt(length, into: &prefix)
            buffer.replaceSubrange(prefixAt...prefixAt, with: prefix)
        }
    }

    /// The message with its length prefix as bytes. - Throws: as ``encode(_:into:)``.
    public func encode(_ message: HubMessage) throws(HubProtocolError) -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(message, into: &bytes)
        return bytes
    }

    private static func writeHeaders(_ headers: [String: String], _ buffer: inout [UInt8]) {
        MessagePackWriter.writeMapHeader(headers.count, into: &buffer)
        for name in headers.keys.sorted() {
            MessagePackWriter.writeString(name, into: &buffer)
            MessagePackWriter.writeString(headers[name] ?? "", into: &buffer)
        }
    }

    private static func writeCall(
        type: UInt64, headers: [String: String], invocationId: String?, target: String, arguments: [HubValue],
        streamIds: [String], _ buffer: inout [UInt8]
    ) throws(HubProtocolError) {
        buffer.append(0x96)
        buffer.append(UInt8(type))
        writeHeaders(headers, &buffer)
        if let invocationId { MessagePackWriter.writeString(invocationId, into: &buffer) } else { buffer.append(0xC0) }
        MessagePackWriter.writeString(target, into: &buffer)
        MessagePackWriter.writeArrayHeader(arguments.count, into: &buffer)
        for argument in arguments { MessagePackWriter.write(try argument.messagePackValue(), into: &buffer) }
        MessagePackWriter.writeArrayHeader(streamIds.count, into: &buffer)
        for id in streamIds { MessagePackWriter.writeString(id, into: &buffer) }
    }

    private static func write(_ message: HubMessage, into buffer: inout [UInt8]) throws(HubProtocolError) {
        switch message {
        case .invocation(let m):
            try writeCall(
                type: 1, headers: m.headers, invocationId: m.invocationId, target: m.target, arguments: m.arguments,
                streamIds: m.streamIds, &buffer)
        case .streamInvocation(let m):
            try writeCall(
                type: 4, headers: m.headers, invocationId: m.invocationId, target: m.target, arguments: m.arguments,
                streamIds: m.streamIds, &buffer)
        case .streamItem(let m):
            let item = try m.item.messagePackValue()
            buffer.append(contentsOf: [0x94, 0x02])
            writeHeaders(m.headers, &buffer)
            MessagePackWriter.writeString(m.invocationId, into: &buffer)
            MessagePackWriter.write(item, into: &buffer)
        case .completion(let m):
            switch m.result {
            case .error(let error):
                buffer.append(contentsOf: [0x95, 0x03])
                writeHeaders(m.headers, &buffer)
                MessagePackWriter.writeString(m.invocationId, into: &buffer)
                buffer.append(0x01)
                MessagePackWriter.writeString(error, into: &buffer)
            case .void:
                buffer.append(contentsOf: [0x94, 0x03])
                writeHeaders(m.headers, &buffer)
                MessagePackWriter.writeString(m.invocationId, into: &buffer)
                buffer.append(0x02)
            case .value(let value):
                let result = try value.messagePackValue()
                buffer.append(contentsOf: [0x95, 0x03])
                writeHeaders(m.headers, &buffer)
                MessagePackWriter.writeString(m.invocationId, into: &buffer)
                buffer.append(0x03)
                MessagePackWriter.write(result, into: &buffer)
            }
        case .cancelInvocation(let m):
            buffer.append(contentsOf: [0x93, 0x05])
            writeHeaders(m.headers, &buffer)
            MessagePackWriter.writeString(m.invocationId, into: &buffer)
        case .ping:
            buffer.append(contentsOf: [0x91, 0x06])
        case .close(let m):
            buffer.append(contentsOf: [0x93, 0x07])
            if let error = m.error { MessagePackWriter.writeString(error, into: &buffer) } else { buffer.append(0xC0) }
            buffer.append(m.allowReconnect ? 0xC3 : 0xC2)
        case .ack(let id):
            buffer.append(contentsOf: [0x92, 0x08])
            MessagePackWriter.write(.int(id), into: &buffer)
        case .sequence(let id):
            buffer.append(contentsOf: [0x92, 0x09])
            MessagePackWriter.write(.int(id), into: &buffer)
        }
    }
}
