import Backplane

/// What one server publishes for the others on a broker channel: a message, a group-membership request, or the
/// acknowledgement of one.
///
/// The binary layout (version 1; every integer big-endian; a *string* is a `UInt16` byte count then UTF-8 bytes,
/// *bytes* a `UInt32` count then the bytes):
///
/// ```
/// version: UInt8 = 1   kind: UInt8 (0 message, 1 group-change request, 2 acknowledgement)
/// origin: string       (the publishing server's ID)
/// message:        scope: string, target: UInt8 (0 all, 1 group, 2 connection, 3 user) [name: string unless all],
///                 excluded: UInt16 count × string, payloads: UInt8 count × (encoding: string, bytes)
/// group change:   scope: string, requestId: UInt64, change: UInt8 (0 add, 1 remove), connectionId: string,
///                 group: string, replyTo: string
/// acknowledgement: requestId: UInt64
/// ```
///
/// Decoding is strict: unknown versions, kinds, targets and changes, invalid UTF-8, values above the
/// ``BackplaneEnvelopeCodec/Limits``, a repeated payload encoding, missing and trailing bytes are refused.
public enum BackplaneEnvelope: Sendable, Hashable {
    /// A message for the connections of `scope` on other servers.
    case message(origin: String, scope: String, BackplaneMessage)
    /// A request to the server holding a connection to change its group membership.
    case groupChange(origin: String, GroupChangeRequest)
    /// The holder applied request `requestId` (sent to the requester's acknowledgement channel).
    case acknowledgement(origin: String, requestId: UInt64)

    /// The server that published it.
    public var origin: String {
        switch self {
        case .message(let origin, _, _), .groupChange(let origin, _), .acknowledgement(let origin, _): origin
        }
    }
}

/// A group-membership change asked of the server holding `connectionId`.
public struct GroupChangeRequest: Sendable, Hashable {
    public var scope: String
    /// Unique per requesting server; echoed in the acknowledgement.
    public var requestId: UInt64
    public var change: GroupMembershipChange
    public var connectionId: String
    public var group: String
    /// The server ID whose acknowledgement channel gets the answer.
    public var replyTo: String

    public init(
        scope: String,
        requestId: UInt64,
        change: GroupMembershipChange,
        connectionId: String,
        group: String,
        replyTo: String
    ) {
        self.scope = scope
        self.requestId = requestId
        self.change = change
        self.connectionId = connectionId
        self.group = group
        self.replyTo = replyTo
    }
}

/// Why bytes are not a valid ``BackplaneEnvelope``. Each case names the field it is about.
public enum BackplaneEnvelopeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input ended inside `field`.
    case truncated(field: String)
    /// A version other than 1.
    case unsupportedVersion(UInt8)
    /// A kind byte other than 0, 1, 2.
    case unknownKind(UInt8)
    /// A target byte other than 0…3.
    case unknownTarget(UInt8)
    /// A change byte other than 0 (add) and 1 (remove).
    case unknownChange(UInt8)
    /// `field` is not valid UTF-8.
    case invalidUTF8(field: String)
    /// `field` is longer (in bytes) than ``BackplaneEnvelopeCodec/Limits/maxStringLength``.
    case stringTooLong(field: String, length: Int, limit: Int)
    /// More excluded connection IDs than ``BackplaneEnvelopeCodec/Limits/maxExcludedConnections``.
    case tooManyExcludedConnections(count: Int, limit: Int)
    /// More payloads than ``BackplaneEnvelopeCodec/Limits/maxPayloads``.
    case tooManyPayloads(count: Int, limit: Int)
    /// A payload larger than ``BackplaneEnvelopeCodec/Limits/maxPayloadLength``.
    case payloadTooLarge(length: Int, limit: Int)
    /// Two payloads with the same encoding name.
    case duplicateEncoding(String)
    /// Bytes after the end of the envelope.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .truncated(let field): "backplane envelope truncated in \(field)"
        case .unsupportedVersion(let version): "backplane envelope version \(version) is not supported (only 1)"
        case .unknownKind(let kind): "unknown backplane envelope kind \(kind)"
        case .unknownTarget(let target): "unknown backplane target \(target)"
        case .unknownChange(let change): "unknown group-membership change \(change)"
        case .invalidUTF8(let field): "\(field) is not valid UTF-8"
        case .stringTooLong(let field, let length, let limit): "\(field) is \(length) bytes, above the limit \(limit)"
        case .tooManyExcludedConnections(let count, let limit):
            "\(count) excluded connection IDs, above the limit \(limit)"
        case .tooManyPayloads(let count, let limit): "\(count) payloads, above the limit \(limit)"
        case .payloadTooLarge(let length, let limit): "a payload of \(length) bytes, above the limit \(limit)"
        case .duplicateEncoding(let name): "payload encoding '\(name)' appears twice"
        case .trailingBytes(let count): "\(count) bytes after the end of the backplane envelope"
        }
    }
}

/// Encodes and decodes ``BackplaneEnvelope`` (no I/O, no allocation beyond the values themselves).
public struct BackplaneEnvelopeCodec: Sendable {
    /// Bounds applied when decoding, and when encoding too: an envelope the receivers would refuse is refused by
    /// the publisher (an ``EncodingError``, counted there) rather than published and dropped on every other server.
    public struct Limits: Sendable, Hashable {
        /// Longest string (server ID, scope, group, connection or user ID, encoding name), in UTF-8 bytes.
        /// Default 1024.
        public var maxStringLength: Int
        /// Most excluded connection IDs in one message. Default 1024.
        public var maxExcludedConnections: Int
        /// Most payloads (encodings) in one message. Default 16.
        public var maxPayloads: Int
        /// Largest payload, in bytes. Default 16 MiB.
        public var maxPayloadLength: Int

        public init(
            maxStringLength: Int = 1024,
            maxExcludedConnections: Int = 1024,
            maxPayloads: Int = 16,
            maxPayloadLength: Int = 16 << 20
        ) {
            self.maxStringLength = maxStringLength
            self.maxExcludedConnections = maxExcludedConnections
            self.maxPayloads = maxPayloads
            self.maxPayloadLength = maxPayloadLength
        }
    }

    /// The layout version written and accepted.
    public static let version: UInt8 = 1

    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    // MARK: Encoding

    /// Why a value cannot be encoded: one of its strings, lists or payloads does not fit the layout.
    public struct EncodingError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// The envelope's bytes.
    /// - Throws: ``EncodingError`` when a string is longer than ``Limits/maxStringLength`` bytes, or there are more
    ///   excluded IDs than ``Limits/maxExcludedConnections``, more payloads than ``Limits/maxPayloads``, or a payload
    ///   longer than ``Limits/maxPayloadLength`` (each also capped by what the layout can hold: 65 535 bytes,
    ///   65 535 IDs, 255 payloads, 4 GiB).
    public func encode(_ envelope: BackplaneEnvelope) throws(EncodingError) -> [UInt8] {
        var writer = Writer(maxStringLength: min(limits.maxStringLength, Int(UInt16.max)))
        writer.bytes.append(Self.version)
        switch envelope {
        case .message(let origin, let scope, let message):
            writer.bytes.append(0)
            try writer.string(origin, "origin")
            try writer.string(scope, "scope")
            switch message.target {
            case .all:
                writer.bytes.append(0)
            case .group(let name):
                writer.bytes.append(1)
                try writer.string(name, "group")
            case .connection(let id):
                writer.bytes.append(2)
                try writer.string(id, "connection ID")
            case .user(let id):
                writer.bytes.append(3)
                try writer.string(id, "user ID")
            }
            let maxExcluded = min(limits.maxExcludedConnections, Int(UInt16.max))
            guard message.excludedConnectionIds.count <= maxExcluded else {
                throw EncodingError(description: "more than \(maxExcluded) excluded connection IDs")
            }
            writer.integer(UInt16(message.excludedConnectionIds.count))
            for id in message.excludedConnectionIds { try writer.string(id, "excluded connection ID") }
            let maxPayloads = min(limits.maxPayloads, Int(UInt8.max))
            guard message.payloads.count <= maxPayloads else {
                throw EncodingError(description: "more than \(maxPayloads) payloads")
            }
            writer.bytes.append(UInt8(message.payloads.count))
            for payload in message.payloads {
                try writer.string(payload.encoding, "encoding")
                guard payload.bytes.count <= min(limits.maxPayloadLength, Int(UInt32.max)) else {
                    throw EncodingError(
                        description: "a payload of \(payload.bytes.count) bytes (limit \(limits.maxPayloadLength))")
                }
                writer.integer(UInt32(payload.bytes.count))
                writer.bytes.append(contentsOf: payload.bytes)
            }
        case .groupChange(let origin, let request):
            writer.bytes.append(1)
            try writer.string(origin, "origin")
            try writer.string(request.scope, "scope")
            writer.integer(request.requestId)
            writer.bytes.append(request.change == .add ? 0 : 1)
            try writer.string(request.connectionId, "connection ID")
            try writer.string(request.group, "group")
            try writer.string(request.replyTo, "reply-to server ID")
        case .acknowledgement(let origin, let requestId):
            writer.bytes.append(2)
            try writer.string(origin, "origin")
            writer.integer(requestId)
        }
        return writer.bytes
    }

    private struct Writer {
        var bytes: [UInt8] = []
        let maxStringLength: Int

        mutating func integer<T: FixedWidthInteger>(_ value: T) {
            var big = value.bigEndian
            withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
        }

        mutating func string(_ text: String, _ field: String) throws(EncodingError) {
            let utf8 = text.utf8
            guard utf8.count <= maxStringLength else {
                throw EncodingError(description: "\(field) is longer than \(maxStringLength) bytes")
            }
            integer(UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    // MARK: Decoding

    /// Decodes one envelope: all of `bytes`, nothing more.
    /// - Throws: ``BackplaneEnvelopeError``.
    public func decode(_ bytes: some Collection<UInt8>) throws(BackplaneEnvelopeError) -> BackplaneEnvelope {
        var reader = Reader(bytes: Array(bytes), limits: limits)
        let version = try reader.byte("version")
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let kind = try reader.byte("kind")
        let envelope: BackplaneEnvelope
        switch kind {
        case 0:
            let origin = try reader.string("origin")
            let scope = try reader.string("scope")
            let targetByte = try reader.byte("target")
            let target: BackplaneTarget
            switch targetByte {
            case 0: target = .all
            case 1: target = .group(try reader.string("group"))
            case 2: target = .connection(try reader.string("connection ID"))
            case 3: target = .user(try reader.string("user ID"))
            default: throw .unknownTarget(targetByte)
            }
            let excludedCount = Int(try reader.integer(UInt16.self, "excluded count"))
            guard excludedCount <= limits.maxExcludedConnections else {
                throw .tooManyExcludedConnections(count: excludedCount, limit: limits.maxExcludedConnections)
            }
            var excluded: [String] = []
            excluded.reserveCapacity(min(excludedCount, reader.remaining / 2))
            for _ in 0..<excludedCount { excluded.append(try reader.string("excluded connection ID")) }
            let payloadCount = Int(try reader.byte("payload count"))
            guard payloadCount <= limits.maxPayloads else {
                throw .tooManyPayloads(count: payloadCount, limit: limits.maxPayloads)
            }
            var payloads: [BackplaneMessage.Payload] = []
            for _ in 0..<payloadCount {
                let encoding = try reader.string("encoding")
                if payloads.contains(where: { $0.encoding == encoding }) { throw .duplicateEncoding(encoding) }
                let length = Int(try reader.integer(UInt32.self, "payload length"))
                guard length <= limits.maxPayloadLength else {
                    throw .payloadTooLarge(length: length, limit: limits.maxPayloadLength)
                }
                payloads.append(.init(encoding: encoding, bytes: try reader.take(length, "payload")))
            }
            envelope = .message(
                origin: origin,
                scope: scope,
                BackplaneMessage(target: target, excludedConnectionIds: excluded, payloads: payloads)
            )
        case 1:
            let origin = try reader.string("origin")
            let scope = try reader.string("scope")
            let requestId = try reader.integer(UInt64.self, "request ID")
            let changeByte = try reader.byte("change")
            let change: GroupMembershipChange
            switch changeByte {
            case 0: change = .add
            case 1: change = .remove
            default: throw .unknownChange(changeByte)
            }
            let connectionId = try reader.string("connection ID")
            let group = try reader.string("group")
            let replyTo = try reader.string("reply-to server ID")
            envelope = .groupChange(
                origin: origin,
                GroupChangeRequest(
                    scope: scope,
                    requestId: requestId,
                    change: change,
                    connectionId: connectionId,
                    group: group,
                    replyTo: replyTo
                )
            )
        case 2:
            let origin = try reader.string("origin")
            envelope = .acknowledgement(origin: origin, requestId: try reader.integer(UInt64.self, "request ID"))
        default:
            throw .unknownKind(kind)
        }
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return envelope
    }

    private struct Reader {
        let bytes: [UInt8]
        let limits: Limits
        var position = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        var remaining: Int { bytes.count - position }

        mutating func byte(_ field: String) throws(BackplaneEnvelopeError) -> UInt8 {
            guard position < bytes.count else { throw .truncated(field: field) }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ field: String)
            throws(BackplaneEnvelopeError) -> T
        {
            let size = MemoryLayout<T>.size
            guard remaining >= size else { throw .truncated(field: field) }
            var value: T = 0
            for index in position..<(position + size) { value = value << 8 | T(bytes[index]) }
            position += size
            return value
        }

        mutating func take(_ count: Int, _ field: String) throws(BackplaneEnvelopeError) -> [UInt8] {
            guard count >= 0, remaining >= count else { throw .truncated(field: field) }
            defer { position += count }
            return Array(bytes[position..<(position + count)])
        }

        mutating func string(_ field: String) throws(BackplaneEnvelopeError) -> String {
            let length = Int(try integer(UInt16.self, "\(field) length"))
            guard length <= limits.maxStringLength else {
                throw .stringTooLong(field: field, length: length, limit: limits.maxStringLength)
            }
            guard remaining >= length else { throw .truncated(field: field) }
            let slice = bytes[position..<(position + length)]
            // Decoding repairs invalid sequences (U+FFFD), so a repaired string no longer has the same bytes.
            let text = String(decoding: slice, as: UTF8.self)
            guard text.utf8.elementsEqual(slice) else { throw .invalidUTF8(field: field) }
            position += length
            return text
        }
    }
}
