/// An incremental reader of RESP2 and RESP3 replies. Sans-I/O: feed it the bytes a Redis server sends, split
/// anywhere (down to one byte), and it returns each complete top-level value (a reply or a push) in stream
/// order. It imports nothing but the standard library, starts no task and reads no clock.
///
/// ```swift
/// var parser = RESPParser()
/// for chunk in socket {
///     for value in try parser.parse(chunk) { ... }   // replies and pushes, in order
/// }
/// parser.isIdle      // false at EOF means the server closed in the middle of a reply
/// ```
///
/// Sources: the Redis protocol specification (redis.io `develop/reference/protocol-spec`, "RESP protocol
/// description", for RESP2) and `protocol/RESP3.md` of redis/redis-specifications ("RESP3 types", "Simple
/// types", "Aggregate data types", "Attribute type", "Push type"). The rules, each tested in `RESPTests`:
/// - Every value starts with a type byte; every line (simple string, simple error, integer, null, boolean,
///   double, big number, and the length line of bulk and aggregate types) ends with CRLF. A lone LF, or a CR
///   not followed by LF, is a violation: simple strings cannot contain them.
/// - Bulk types (`$` bulk string, `!` bulk error, `=` verbatim string) carry a decimal length, then exactly that
///   many bytes, then CRLF. `$-1` is RESP2's null bulk string. A verbatim string's first three bytes are its
///   format (ASCII) and the fourth is `:`.
/// - Aggregates (`*` array, `%` map, `~` set, `>` push, `|` attribute) carry a decimal count of elements
///   (of pairs for `%` and `|`), then the elements, which may be aggregates. `*-1` is RESP2's null array.
/// - An attribute is auxiliary data that precedes the value it describes, anywhere a value may be; it does not
///   count as an element of the aggregate around it. By default it is read and dropped (as RESP3.md asks of
///   clients that do not use it); ``Configuration/surfaceAttributes`` wraps the value in
///   ``RESPValue/attributed(attributes:value:)`` instead.
/// - Integers are signed 64-bit; doubles follow RESP3.md's grammar plus `inf`, `-inf` and `nan` in any case
///   (older servers send libc spellings); big numbers are an optional sign and digits.
/// - RESP3 streamed strings and aggregates (`$?`, `;`, `.`) are refused: Redis does not send them.
///
/// Limits (``Configuration``) are checked when a length or count is read, before anything is allocated for
/// it, so `$999999999999\r\n` fails at once. Memory held between calls is bounded by
/// ``Configuration/maxReplyBytes`` (plus about 40 bytes of `RESPValue` per element already read). After an
/// error every call throws the same error until ``reset()``.
public struct RESPParser: Sendable {
    /// Bounds on what one reply may make the parser hold. Every field is checked before allocation.
    public struct Configuration: Sendable, Hashable {
        /// The longest bulk string, bulk error or verbatim string accepted, in bytes. Default 16 MiB (Redis
        /// itself accepts up to 512 MiB, `proto-max-bulk-len`; a pub/sub backplane needs far less).
        public var maxBulkLength: Int
        /// The most elements one aggregate may announce (a map's or attribute's pairs count twice).
        /// Default 1 048 576.
        public var maxAggregateCount: Int
        /// The deepest nesting of aggregates (attributes included); a top-level array is depth 1. Default 32.
        public var maxDepth: Int
        /// The longest reply accepted, in bytes on the wire, from its type byte to its last CRLF, attributes
        /// included. This also bounds simple strings and other lines. Default 32 MiB.
        public var maxReplyBytes: Int
        /// Wrap values that carry attributes in ``RESPValue/attributed(attributes:value:)`` instead of dropping
        /// the attributes. Default `false`.
        public var surfaceAttributes: Bool

        public init(
            maxBulkLength: Int = 16 << 20,
            maxAggregateCount: Int = 1 << 20,
            maxDepth: Int = 32,
            maxReplyBytes: Int = 32 << 20,
            surfaceAttributes: Bool = false
        ) {
            self.maxBulkLength = maxBulkLength
            self.maxAggregateCount = maxAggregateCount
            self.maxDepth = maxDepth
            self.maxReplyBytes = maxReplyBytes
            self.surfaceAttributes = surfaceAttributes
        }
    }

    /// What the parser expects next.
    private enum Phase: Sendable {
        /// The type byte of a value.
        case typeByte
        /// The bytes of a line, up to its CR (in `line`).
        case line
        /// The LF after a line's CR.
        case lineFeed
        /// `remaining` more bytes of a bulk type (in `bulk`).
        case bulk
        /// The CR after bulk bytes.
        case bulkCarriageReturn
        /// The LF after bulk bytes.
        case bulkLineFeed
    }

    private enum AggregateKind: Sendable {
        case array, map, set, push, attribute
    }

    /// An aggregate being read: its kind, how many elements it announced, those read so far, and the
    /// attributes that preceded it (surfaced mode only).
    private struct Frame: Sendable {
        var kind: AggregateKind
        var expected: Int
        var items: [RESPValue]
        var attributes: [RESPValue.Pair]?
    }

    /// The limits this parser enforces (bytes, element counts, depth) and the attribute mode.
    public let configuration: Configuration

    private var phase = Phase.typeByte
    private var type: UInt8 = 0
    private var line: [UInt8] = []
    private var bulk: [UInt8] = []
    private var remaining = 0
    private var stack: [Frame] = []
    /// Attributes read (surfaced mode) that belong to the next value at the current level.
    private var pendingAttributes: [RESPValue.Pair]?
    /// Bytes of the current reply read so far.
    private var replyBytes = 0
    private var failure: RESPParseError?

    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A
    /// The longest length line accepted: 19 digits hold any length below 2^63.
    private static let maxLengthDigits = 19

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Whether no reply is partly read: `false` at the end of the stream means it was cut in the middle of a
    /// reply (attributes included). Also `false` after a failure.
    public var isIdle: Bool { failure == nil && replyBytes == 0 }

    /// Forgets everything: a partial reply, a failure. For a new connection.
    public mutating func reset() {
        self = RESPParser(configuration: configuration)
    }

    /// Parses the next bytes of the stream.
    /// - Returns: the top-level values these bytes completed, in stream order.
    /// - Throws: ``RESPParseError`` on a protocol violation or an exceeded limit (now or in an earlier call);
    ///   the values completed before the offending byte are lost with the call.
    public mutating func parse(_ bytes: some Collection<UInt8>) throws(RESPParseError) -> [RESPValue] {
        var values: [RESPValue] = []
        try parse(bytes) { values.append($0) }
        return values
    }

    /// Parses the next bytes of the stream, handing each complete top-level value to `body` as it is found.
    /// - Throws: ``RESPParseError`` on a protocol violation or an exceeded limit (now or in an earlier call);
    ///   values completed before the offending byte have been handed to `body`.
    public mutating func parse(_ bytes: some Collection<UInt8>, _ body: (RESPValue) -> Void) throws(RESPParseError) {
        if let failure { throw failure }
        let result: Result<Void, RESPParseError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(RESPParseError) in try self.parseBuffer(buffer, body) }
        }
        if let result {
            try result.get()
        } else {
            let array = Array(bytes)
            try array.withUnsafeBufferPointer { (buffer) throws(RESPParseError) in try self.parseBuffer(buffer, body) }
        }
    }

    private mutating func parseBuffer(
        _ buffer: UnsafeBufferPointer<UInt8>,
        _ body: (RESPValue) -> Void
    ) throws(RESPParseError) {
        do {
            try step(buffer, body)
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func account(_ count: Int) throws(RESPParseError) {
        replyBytes += count
        if replyBytes > configuration.maxReplyBytes { throw .replyTooLarge(limit: configuration.maxReplyBytes) }
    }

    private mutating func step(_ buffer: UnsafeBufferPointer<UInt8>, _ body: (RESPValue) -> Void) throws(RESPParseError)
    {
        var index = 0
        let count = buffer.count
        while index < count {
            switch phase {
            case .typeByte:
                let byte = buffer[index]
                index += 1
                try account(1)
                guard Self.isTypeByte(byte) else { throw .invalidTypeByte(byte) }
                type = byte
                line.removeAll(keepingCapacity: true)
                phase = .line
            case .line:
                var end = index
                while end < count, buffer[end] != Self.cr, buffer[end] != Self.lf { end += 1 }
                // Two limits apply to a line; the one its first excess byte breaks first is reported, so that the
                // error does not depend on how the input is split.
                let replyRoom = configuration.maxReplyBytes - replyBytes
                let digitRoom = Self.hasLengthLine(type) ? Self.maxLengthDigits - line.count : Int.max
                if end - index > min(replyRoom, digitRoom) {
                    if digitRoom < replyRoom { throw .invalidLength(type: type) }
                    throw .replyTooLarge(limit: configuration.maxReplyBytes)
                }
                try account(end - index)
                line.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end]))
                index = end
                if index < count {
                    if buffer[index] == Self.lf { throw .lineFeedWithoutCarriageReturn }
                    index += 1
                    try account(1)
                    phase = .lineFeed
                }
            case .lineFeed:
                let byte = buffer[index]
                index += 1
                try account(1)
                guard byte == Self.lf else { throw .carriageReturnWithoutLineFeed }
                phase = .typeByte
                try finishLine(body)
            case .bulk:
                let take = min(remaining, count - index)
                bulk.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<(index + take)]))
                index += take
                remaining -= take
                try account(take)
                if remaining == 0 { phase = .bulkCarriageReturn }
            case .bulkCarriageReturn:
                let byte = buffer[index]
                index += 1
                try account(1)
                guard byte == Self.cr else { throw .missingBulkTerminator }
                phase = .bulkLineFeed
            case .bulkLineFeed:
                let byte = buffer[index]
                index += 1
                try account(1)
                guard byte == Self.lf else { throw .missingBulkTerminator }
                phase = .typeByte
                try finishBulk(body)
            }
        }
    }

    private static func isTypeByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "$"), UInt8(ascii: "*"),
            UInt8(ascii: "_"), UInt8(ascii: "#"), UInt8(ascii: ","), UInt8(ascii: "("), UInt8(ascii: "!"),
            UInt8(ascii: "="), UInt8(ascii: "%"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "|"):
            true
        default: false
        }
    }

    /// Types whose line is a length or count.
    private static func hasLengthLine(_ type: UInt8) -> Bool {
        switch type {
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="), UInt8(ascii: "*"), UInt8(ascii: "%"),
            UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "|"):
            true
        default: false
        }
    }

    private mutating func finishLine(_ body: (RESPValue) -> Void) throws(RESPParseError) {
        switch type {
        case UInt8(ascii: "+"):
            try complete(.simpleString(String(decoding: line, as: UTF8.self)), body)
        case UInt8(ascii: "-"):
            try complete(.simpleError(String(decoding: line, as: UTF8.self)), body)
        case UInt8(ascii: ":"):
            guard let value = RESPNumbers.integer(line) else { throw .invalidInteger }
            try complete(.integer(value), body)
        case UInt8(ascii: "_"):
            guard line.isEmpty else { throw .invalidNull }
            try complete(.null, body)
        case UInt8(ascii: "#"):
            guard line.count == 1 else { throw .invalidBoolean }
            switch line[0] {
            case UInt8(ascii: "t"): try complete(.boolean(true), body)
            case UInt8(ascii: "f"): try complete(.boolean(false), body)
            default: throw .invalidBoolean
            }
        case UInt8(ascii: ","):
            guard let value = RESPNumbers.double(line) else { throw .invalidDouble }
            try complete(.double(value), body)
        case UInt8(ascii: "("):
            guard RESPNumbers.isBigNumber(line) else { throw .invalidBigNumber }
            try complete(.bigNumber(String(decoding: line, as: UTF8.self)), body)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            guard let length = try readLength(allowingNull: type == UInt8(ascii: "$")) else {
                try complete(.bulkString(nil), body)
                return
            }
            guard length <= configuration.maxBulkLength else {
                throw .bulkTooLong(length: Int64(length), limit: configuration.maxBulkLength)
            }
            // The bytes and their CRLF must fit in what is left of the reply.
            guard length + 2 <= configuration.maxReplyBytes - replyBytes else {
                throw .replyTooLarge(limit: configuration.maxReplyBytes)
            }
            if type == UInt8(ascii: "="), length < 4 { throw .invalidVerbatimString }
            bulk = []
            bulk.reserveCapacity(min(length, 1 << 16))
            remaining = length
            phase = length == 0 ? .bulkCarriageReturn : .bulk
        default:  // * % ~ > |
            guard let count = try readLength(allowingNull: type == UInt8(ascii: "*")) else {
                try complete(.array(nil), body)
                return
            }
            let kind: AggregateKind =
                switch type {
                case UInt8(ascii: "*"): .array
                case UInt8(ascii: "%"): .map
                case UInt8(ascii: "~"): .set
                case UInt8(ascii: ">"): .push
                default: .attribute
                }
            let perEntry = kind == .map || kind == .attribute ? 2 : 1
            guard count <= configuration.maxAggregateCount / perEntry else {
                throw .aggregateTooLarge(count: Int64(count), limit: configuration.maxAggregateCount)
            }
            guard stack.count < configuration.maxDepth else {
                throw .nestingTooDeep(limit: configuration.maxDepth)
            }
            let attributes = pendingAttributes
            // Consecutive attributes are merged for the value that follows them: the merged list obeys the
            // same limit as one attribute (RESPParserFuzzer finding).
            if kind == .attribute, let attributes, count > configuration.maxAggregateCount / 2 - attributes.count {
                throw .aggregateTooLarge(
                    count: Int64(count + attributes.count), limit: configuration.maxAggregateCount)
            }
            pendingAttributes = nil
            var frame = Frame(kind: kind, expected: count * perEntry, items: [], attributes: attributes)
            if frame.expected == 0 {
                finish(frame, body)
            } else {
                frame.items.reserveCapacity(min(frame.expected, 1024))
                stack.append(frame)
            }
        }
    }

    /// The length or count in `line`: `nil` for `-1` when allowed.
    private func readLength(allowingNull: Bool) throws(RESPParseError) -> Int? {
        if line.count == 1, line[0] == UInt8(ascii: "?") { throw .streamedTypeUnsupported(type: type) }
        if allowingNull, line == [UInt8(ascii: "-"), UInt8(ascii: "1")] { return nil }
        guard !line.isEmpty, line.count <= Self.maxLengthDigits else { throw .invalidLength(type: type) }
        var value = 0
        for byte in line {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw .invalidLength(type: type) }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw .invalidLength(type: type) }
            value = sum
        }
        return value
    }

    private mutating func finishBulk(_ body: (RESPValue) -> Void) throws(RESPParseError) {
        let bytes = bulk
        bulk = []
        switch type {
        case UInt8(ascii: "$"):
            try complete(.bulkString(bytes), body)
        case UInt8(ascii: "!"):
            try complete(.bulkError(bytes), body)
        default:  // "=": length >= 4 was checked with the length
            guard bytes[3] == UInt8(ascii: ":"), bytes[0..<3].allSatisfy({ $0 < 0x80 }) else {
                throw .invalidVerbatimString
            }
            let format = String(decoding: bytes[0..<3], as: UTF8.self)
            try complete(.verbatimString(format: format, text: Array(bytes[4...])), body)
        }
    }

    /// A value that is not an aggregate is complete: attach the attributes read before it.
    private mutating func complete(_ scalar: RESPValue, _ body: (RESPValue) -> Void) throws(RESPParseError) {
        var value = scalar
        if let attributes = pendingAttributes {
            pendingAttributes = nil
            value = .attributed(attributes: attributes, value: value)
        }
        deliver(value, body)
    }

    /// Appends a complete value to the aggregate being read, finishing the aggregates it completes, or hands
    /// it to `body` at the top level.
    private mutating func deliver(_ value: RESPValue, _ body: (RESPValue) -> Void) {
        guard !stack.isEmpty else {
            replyBytes = 0
            body(value)
            return
        }
        let top = stack.count - 1
        stack[top].items.append(value)
        guard stack[top].items.count == stack[top].expected else { return }
        let frame = stack.removeLast()
        finish(frame, body)
    }

    /// An aggregate is complete: deliver it, or keep an attribute for the value that follows it.
    private mutating func finish(_ frame: Frame, _ body: (RESPValue) -> Void) {
        let value: RESPValue
        switch frame.kind {
        case .attribute:
            // Belongs to the next value at this level; it is not an element of the aggregate around it.
            if configuration.surfaceAttributes {
                pendingAttributes = (frame.attributes ?? []) + Self.pairs(frame.items)
            }
            return
        case .array: value = .array(frame.items)
        case .map: value = .map(Self.pairs(frame.items))
        case .set: value = .set(frame.items)
        case .push: value = .push(frame.items)
        }
        if let attributes = frame.attributes {
            deliver(.attributed(attributes: attributes, value: value), body)
        } else {
            deliver(value, body)
        }
    }

    private static func pairs(_ items: [RESPValue]) -> [RESPValue.Pair] {
        stride(from: 0, to: items.count - 1, by: 2).map { RESPValue.Pair(items[$0], items[$0 + 1]) }
    }
}
