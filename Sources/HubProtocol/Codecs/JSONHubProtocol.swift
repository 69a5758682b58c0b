/// The JSON hub protocol (HubProtocol.md, "JSON Encoding"): each message is one JSON object followed by the
/// record separator 0x1E; a text frame holds one or more whole messages and never part of one.
///
/// Decoding is strict about syntax and field types and lenient about what the spec leaves open, as the shipped
/// clients and the .NET server are: unknown fields are ignored, `invocationId: null` on an Invocation means
/// non-blocking, headers are optional. Encoding is compact, with fields in the spec's order and only the optional
/// fields that carry something.
public struct JSONHubProtocol: Sendable {
    /// The protocol's name in the handshake.
    public static let name = "json"
    /// The record separator that ends every message.
    public static let recordSeparator: UInt8 = 0x1E

    /// Bounds applied when decoding (encoding is not limited: the caller decides what it sends).
    public var limits: HubProtocolLimits

    public init(limits: HubProtocolLimits = .default) {
        self.limits = limits
    }

    // MARK: Decoding

    /// Decodes every message of a text frame (or POST body), in order, appending them to `messages`.
    ///
    /// The frame is checked for its final 0x1E before anything is decoded, so a frame cut short is refused whole.
    /// If message *k* is bad, the messages before it are in `messages` when the error is thrown, and nothing
    /// after it is looked at (the connection is broken anyway: a hub server closes it with the error).
    /// - Throws: ``HubProtocolError``: `.missingRecordSeparator` (empty frame or no final 0x1E), `.emptyMessage`,
    ///   `.messageTooLarge` (a message above `limits.maximumMessageSize` bytes), the JSON syntax and limit codes of
    ///   ``JSONValue/init(parsing:limits:)``, `.invalidMessage` (not an object), `.unknownMessageType`,
    ///   `.missingField`, `.wrongFieldType`, `.resultAndError`.
    public func decode(frame: some Collection<UInt8>, into messages: inout [HubMessage]) throws(HubProtocolError) {
        let bytes = Array(frame)
        guard bytes.last == Self.recordSeparator else {
            throw HubProtocolError(
                .missingRecordSeparator, "the frame does not end with the record separator 0x1E (message incomplete)")
        }
        var start = 0
        while start < bytes.count {
            // Every message ends with 0x1E, so a separator always exists from here.
            var end = start
            while bytes[end] != Self.recordSeparator { end += 1 }
            messages.append(try decodeMessage(bytes[start..<end]))
            start = end + 1
        }
    }

    /// Decodes every message of a frame; see ``decode(frame:into:)``.
    public func decode(frame: some Collection<UInt8>) throws(HubProtocolError) -> [HubMessage] {
        var messages: [HubMessage] = []
        try decode(frame: frame, into: &messages)
        return messages
    }

    /// Decodes one message given without its 0x1E.
    /// - Throws: as ``decode(frame:into:)`` except the framing codes.
    public func decodeMessage(_ body: ArraySlice<UInt8>) throws(HubProtocolError) -> HubMessage {
        guard !body.isEmpty else { throw HubProtocolError(.emptyMessage, "empty message between separators") }
        guard body.count <= limits.maximumMessageSize else {
            throw HubProtocolError(.messageTooLarge, "\(body.count) bytes, limit \(limits.maximumMessageSize)")
        }
        let value = try JSONValue(parsing: body, limits: limits)
        guard case .object(let object) = value else {
            throw HubProtocolError(.invalidMessage, "a message must be a JSON object, found \(value.kindDescription)")
        }
        return try Self.message(from: object)
    }

    static func message(from object: JSONObject) throws(HubProtocolError) -> HubMessage {
        guard let typeValue = object["type"] else { throw .missing("type") }
        guard case .int(let typeNumber) = typeValue else { throw .wrongType("type", expected: "an integer") }
        guard let type = HubMessageType(rawValue: Int(clamping: typeNumber)) else {
            throw HubProtocolError(.unknownMessageType, field: "type", "unknown message type \(typeNumber)")
        }
        let fields = Fields(object: object)
        switch type {
        case .invocation:
            return .invocation(
                HubMessage.Invocation(
                    headers: try fields.headers(), invocationId: try fields.optionalString("invocationId"),
                    target: try fields.string("target"), arguments: try fields.arguments(),
                    streamIds: try fields.streamIds()))
        case .streamInvocation:
            return .streamInvocation(
                HubMessage.StreamInvocation(
                    headers: try fields.headers(), invocationId: try fields.string("invocationId"),
                    target: try fields.string("target"), arguments: try fields.arguments(),
                    streamIds: try fields.streamIds()))
        case .streamItem:
            guard let item = object["item"] else { throw .missing("item") }
            return .streamItem(
                HubMessage.StreamItem(
                    headers: try fields.headers(), invocationId: try fields.string("invocationId"), item: .json(item)))
        case .completion:
            let headers = try fields.headers()
            let invocationId = try fields.string("invocationId")
            let result: HubMessage.Completion.Result
            switch (object["result"], object["error"]) {
            case (.some, .some):
                throw HubProtocolError(.resultAndError, "a Completion carries both 'result' and 'error'")
            case (.some(let value), nil): result = .value(.json(value))
            case (nil, .some): result = .error(try fields.string("error"))
            case (nil, nil): result = .void
            }
            return .completion(HubMessage.Completion(headers: headers, invocationId: invocationId, result: result))
        case .cancelInvocation:
            return .cancelInvocation(
                HubMessage.CancelInvocation(
                    headers: try fields.headers(), invocationId: try fields.string("invocationId")))
        case .ping:
            return .ping
        case .close:
            let allowReconnect: Bool
            switch object["allowReconnect"] {
            case nil, .null: allowReconnect = false
            case .bool(let flag): allowReconnect = flag
            default: throw .wrongType("allowReconnect", expected: "a boolean")
            }
            return .close(HubMessage.Close(error: try fields.optionalString("error"), allowReconnect: allowReconnect))
        case .ack:
            return .ack(sequenceId: try fields.sequenceId())
        case .sequence:
            return .sequence(sequenceId: try fields.sequenceId())
        }
    }

    /// Typed access to the members of a message object.
    private struct Fields {
        let object: JSONObject

        func string(_ name: String) throws(HubProtocolError) -> String {
            guard let value = object[name] else { throw .missing(name) }
            guard case .string(let string) = value else { throw .wrongType(name, expected: "a string") }
            return string
        }

        func optionalString(_ name: String) throws(HubProtocolError) -> String? {
            switch object[name] {
            case nil, .null: return nil
            case .string(let string): return string
            default: throw .wrongType(name, expected: "a string or null")
            }
        }

        func headers() throws(HubProtocolError) -> [String: String] {
            switch object["headers"] {
            case nil, .null: return [:]
            case .object(let members):
                var headers: [String: String] = [:]
                for (key, value) in members {
                    guard case .string(let string) = value else {
                        throw .wrongType("headers.\(key)", expected: "a string")
                    }
                    headers[key] = string
                }
                return headers
            default: throw .wrongType("headers", expected: "an object")
            }
        }

        func arguments() throws(HubProtocolError) -> [HubValue] {
            guard let value = object["arguments"] else { throw .missing("arguments") }
            guard case .array(let elements) = value else { throw .wrongType("arguments", expected: "an array") }
            return elements.map { .json($0) }
        }

        func streamIds() throws(HubProtocolError) -> [String] {
            switch object["streamIds"] {
            case nil, .null: return []
            case .array(let elements):
                var ids: [String] = []
                ids.reserveCapacity(elements.count)
                for (index, element) in elements.enumerated() {
                    guard case .string(let id) = element else {
                        throw .wrongType("streamIds[\(index)]", expected: "a string")
                    }
                    ids.append(id)
                }
                return ids
            default: throw .wrongType("streamIds", expected: "an array of strings")
            }
        }

        func sequenceId() throws(HubProtocolError) -> Int64 {
            guard let value = object["sequenceId"] else { throw .missing("sequenceId") }
            guard case .int(let id) = value, id >= 0 else {
                throw .wrongType("sequenceId", expected: "a non-negative integer")
            }
            return id
        }
    }

    // MARK: Encoding

    /// Appends the message and its 0x1E to `buffer`; on error `buffer` is left as it was.
    /// - Throws: ``HubProtocolError`` `.unrepresentableValue` when an argument, item or result has no JSON form
    ///   (NaN/infinity, a MessagePack extension or non-string map key, an `Encodable` whose `encode(to:)` fails).
    public func encode(_ message: HubMessage, into buffer: inout [UInt8]) throws(HubProtocolError) {
        let start = buffer.count
        do {
            try Self.write(message, into: &buffer)
        } catch {
            buffer.removeSubrange(start...)
            throw error
        }
        buffer.append(Self.recordSeparator)
    }

    /// The message and its 0x1E as bytes. - Throws: as ``encode(_:into:)``.
    public func encode(_ message: HubMessage) throws(HubProtocolError) -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(message, into: &bytes)
        return bytes
    }

    private static func key(_ name: StaticString, _ buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: ","))
        buffer.append(UInt8(ascii: "\""))
        JSONWriter.append(name, &buffer)
        buffer.append(UInt8(ascii: "\""))
        buffer.append(UInt8(ascii: ":"))
    }

    private static func writeHeaders(_ headers: [String: String], _ buffer: inout [UInt8]) {
        guard !headers.isEmpty else { return }
        key("headers", &buffer)
        buffer.append(UInt8(ascii: "{"))
        for (index, name) in headers.keys.sorted().enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            JSONWriter.writeString(name, into: &buffer)
            buffer.append(UInt8(ascii: ":"))
            JSONWriter.writeString(headers[name] ?? "", into: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }

    private static func writeValue(_ value: HubValue, _ buffer: inout [UInt8]) throws(HubProtocolError) {
        try JSONWriter.write(try value.jsonValue(), into: &buffer)
    }

    private static func writeCall(
        type: Int, headers: [String: String], invocationId: String?, target: String, arguments: [HubValue],
        streamIds: [String], _ buffer: inout [UInt8]
    ) throws(HubProtocolError) {
        JSONWriter.append("{\"type\":", &buffer)
        JSONWriter.writeInteger(type, into: &buffer)
        writeHeaders(headers, &buffer)
        if let invocationId {
            key("invocationId", &buffer)
            JSONWriter.writeString(invocationId, into: &buffer)
        }
        key("target", &buffer)
        JSONWriter.writeString(target, into: &buffer)
        key("arguments", &buffer)
        buffer.append(UInt8(ascii: "["))
        for (index, argument) in arguments.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            try writeValue(argument, &buffer)
        }
        buffer.append(UInt8(ascii: "]"))
        if !streamIds.isEmpty {
            key("streamIds", &buffer)
            try JSONWriter.write(.array(streamIds.map { .string($0) }), into: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
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
            JSONWriter.append("{\"type\":2", &buffer)
            writeHeaders(m.headers, &buffer)
            key("invocationId", &buffer)
            JSONWriter.writeString(m.invocationId, into: &buffer)
            key("item", &buffer)
            try writeValue(m.item, &buffer)
            buffer.append(UInt8(ascii: "}"))
        case .completion(let m):
            JSONWriter.append("{\"type\":3", &buffer)
            writeHeaders(m.headers, &buffer)
            key("invocationId", &buffer)
            JSONWriter.writeString(m.invocationId, into: &buffer)
            switch m.result {
            case .void: break
            case .value(let value):
                key("result", &buffer)
                try writeValue(value, &buffer)
            case .error(let error):
                key("error", &buffer)
                JSONWriter.writeString(error, into: &buffer)
            }
            buffer.append(UInt8(ascii: "}"))
        case .cancelInvocation(let m):
            JSONWriter.append("{\"type\":5", &buffer)
            writeHeaders(m.headers, &buffer)
            key("invocationId", &buffer)
            JSONWriter.writeString(m.invocationId, into: &buffer)
            buffer.append(UInt8(ascii: "}"))
        case .ping:
            JSONWriter.append("{\"type\":6}", &buffer)
        case .close(let m):
            JSONWriter.append("{\"type\":7", &buffer)
            if let error = m.error {
                key("error", &buffer)
                JSONWriter.writeString(error, into: &buffer)
            }
            if m.allowReconnect { JSONWriter.append(",\"allowReconnect\":true", &buffer) }
            buffer.append(UInt8(ascii: "}"))
        case .ack(let id):
            JSONWriter.append("{\"type\":8,\"sequenceId\":", &buffer)
            JSONWriter.writeInteger(id, into: &buffer)
            buffer.append(UInt8(ascii: "}"))
        case .sequence(let id):
            JSONWriter.append("{\"type\":9,\"sequenceId\":", &buffer)
            JSONWriter.writeInteger(id, into: &buffer)
            buffer.append(UInt8(ascii: "}"))
        }
    }
}
