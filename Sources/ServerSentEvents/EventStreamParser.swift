/// An incremental `text/event-stream` parser that follows WHATWG HTML §9.2.5 "Parsing an event stream" and
/// §9.2.6 "Interpreting an event stream". Sans-I/O: feed it the bytes of a response body as they arrive, split
/// anywhere (down to one byte), and it returns what a browser's `EventSource` would see.
///
/// ```swift
/// var parser = EventStreamParser()
/// for chunk in body { for output in try parser.parse(chunk) { ... } }
/// parser.finish()          // end of the stream: the unfinished event is discarded
/// parser.lastEventID       // send it as Last-Event-ID when reconnecting (if not empty)
/// ```
///
/// The rules, each with its test in `ServerSentEventsTests`:
/// - Lines end with CRLF, a lone LF or a lone CR (§9.2.5 `end-of-line`), also when a CRLF is split between two
///   calls.
/// - One UTF-8 byte order mark is removed at the start of the stream, and only there (UTF-8 decode).
/// - Text is decoded as UTF-8 with U+FFFD for invalid bytes.
/// - An empty line dispatches the event; a line starting with `:` is a comment (surfaced as
///   ``Output/comment(_:)``); otherwise the field name is what precedes the first `:` and the value what
///   follows it, less one leading space; a line without `:` is a field named by the whole line with an empty
///   value. Field names are case-sensitive; unknown fields are ignored.
/// - `event` sets the event type; `data` appends its value and LF to the data buffer; `id` sets the last
///   event ID buffer unless the value contains U+0000 (then the field is ignored), and an empty `id` resets it;
///   `retry` sets the reconnection time only when its value is one or more ASCII digits (``Output/retry(_:)``,
///   at once, not at dispatch; `0` is valid; values beyond `Int.max` saturate).
/// - Dispatch: the last event ID becomes the buffer's value (also when nothing is dispatched); a block without
///   `data` dispatches nothing and clears the event type; otherwise one final LF is removed from the data and a
///   ``MessageEvent`` is returned (type `message` when the type is empty).
/// - At the end of the stream (``finish()``) a block not ended by an empty line is discarded.
///
/// Limits (``Configuration``): a line longer than ``Configuration/maxLineLength`` or an event whose `data` and
/// `event` buffers together exceed ``Configuration/maxEventLength`` fails the stream with
/// ``EventStreamError``; after that every call throws the same error until ``finish()``. Memory is bounded by
/// the two limits (plus the outputs of one call).
///
/// Reconnecting: ``finish()`` keeps ``lastEventID`` and readies the parser for the next response body, whose
/// last event ID buffer starts from it (as browsers do), and where a BOM is again removed.
public struct EventStreamParser: Sendable {
    /// Bounds on what one event may make the parser hold.
    public struct Configuration: Sendable, Hashable {
        /// The longest line accepted, in bytes, without its line end. Default 1 MiB (1 048 576).
        public var maxLineLength: Int
        /// The largest event accepted, in bytes: the data buffer (values of the block's `data` lines, with one
        /// LF each) plus the event type. Default 1 MiB (1 048 576).
        public var maxEventLength: Int

        public init(maxLineLength: Int = 1 << 20, maxEventLength: Int = 1 << 20) {
            self.maxLineLength = maxLineLength
            self.maxEventLength = maxEventLength
        }
    }

    /// What the parser found.
    public enum Output: Sendable, Hashable {
        /// An event to dispatch.
        case event(MessageEvent)
        /// A valid `retry` field: the new reconnection time, in milliseconds.
        case retry(Int)
        /// A comment line: the text after the `:` (not trimmed). Heartbeats are usually empty comments.
        case comment(String)
    }

    public let configuration: Configuration
    /// The last event ID string (§9.2.6): set at each dispatch (empty line), kept across ``finish()``.
    public private(set) var lastEventID: String

    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var eventType: [UInt8] = []
    private var idBuffer: String
    /// The previous byte was a CR: an LF right after it belongs to the same line end.
    private var afterCR = false
    /// How many bytes of the BOM (EF BB BF) were seen at the start of the stream; nil once the start is past.
    private var bomMatched: Int? = 0
    private var failure: EventStreamError?

    private static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// - Parameters:
    ///   - configuration: the limits.
    ///   - lastEventID: the last event ID to start from (e.g. the one a reconnecting client sent).
    public init(configuration: Configuration = .init(), lastEventID: String = "") {
        self.configuration = configuration
        self.lastEventID = lastEventID
        self.idBuffer = lastEventID
    }

    /// Parses the next bytes of the stream.
    /// - Returns: what the bytes completed, in stream order.
    /// - Throws: ``EventStreamError`` when a limit is exceeded (now or by an earlier call); the outputs of the
    ///   bytes before the offending line are lost with the call, and the stream is over.
    public mutating func parse(_ bytes: some Collection<UInt8>) throws(EventStreamError) -> [Output] {
        var outputs: [Output] = []
        try parse(bytes) { outputs.append($0) }
        return outputs
    }

    /// Parses the next bytes of the stream, handing each output to `body` as it is found.
    /// - Throws: ``EventStreamError`` when a limit is exceeded (now or by an earlier call); outputs found
    ///   before the offending line have been handed to `body`.
    public mutating func parse(
        _ bytes: some Collection<UInt8>,
        _ body: (Output) -> Void
    ) throws(EventStreamError) {
        if let failure { throw failure }
        let result: Result<Void, EventStreamError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(EventStreamError) in try self.parse(buffer, body) }
        }
        if let result {
            try result.get()
        } else {
            let array = Array(bytes)
            try array.withUnsafeBufferPointer { (buffer) throws(EventStreamError) in try self.parse(buffer, body) }
        }
    }

    /// Ends the stream (the connection closed): a block not ended by an empty line is discarded (§9.2.5), and
    /// the parser is ready for a new stream that starts from ``lastEventID``. Clears a failure.
    public mutating func finish() {
        line.removeAll(keepingCapacity: false)
        data.removeAll(keepingCapacity: false)
        eventType.removeAll()
        idBuffer = lastEventID
        afterCR = false
        bomMatched = 0
        failure = nil
    }

    // MARK: - Lines

    private mutating func parse(
        _ buffer: UnsafeBufferPointer<UInt8>,
        _ body: (Output) -> Void
    ) throws(EventStreamError) {
        do {
            try parseLines(buffer, body)
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func parseLines(
        _ buffer: UnsafeBufferPointer<UInt8>,
        _ body: (Output) -> Void
    ) throws(EventStreamError) {
        var index = 0
        let end = buffer.count
        // The byte order mark, possibly split over calls.
        while let matched = bomMatched, index < end {
            if buffer[index] == Self.bom[matched] {
                index += 1
                bomMatched = matched + 1 == Self.bom.count ? nil : matched + 1
            } else {
                bomMatched = nil
                try appendToLine(Self.bom[..<matched])  // a false start is ordinary text
            }
        }
        while index < end {
            if afterCR {
                afterCR = false
                if buffer[index] == ASCII.lf {
                    index += 1
                    continue
                }
            }
            var lineEnd = index
            while lineEnd < end, buffer[lineEnd] != ASCII.lf, buffer[lineEnd] != ASCII.cr {
                lineEnd += 1
            }
            try appendToLine(UnsafeBufferPointer(rebasing: buffer[index..<lineEnd]))
            guard lineEnd < end else { return }
            afterCR = buffer[lineEnd] == ASCII.cr
            try processLine(body)
            index = lineEnd + 1
        }
    }

    private mutating func appendToLine(_ bytes: some Collection<UInt8>) throws(EventStreamError) {
        guard !bytes.isEmpty else { return }
        guard line.count + bytes.count <= configuration.maxLineLength else {
            throw .lineTooLong(limit: configuration.maxLineLength)
        }
        line.append(contentsOf: bytes)
    }

    private mutating func processLine(_ body: (Output) -> Void) throws(EventStreamError) {
        defer { line.removeAll(keepingCapacity: line.count <= 4096) }
        guard let first = line.first else {
            dispatch(body)
            return
        }
        if first == ASCII.colon {
            body(.comment(String(decoding: line[1...], as: UTF8.self)))
            return
        }
        let name: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: ASCII.colon) {
            name = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == ASCII.space { value = value.dropFirst() }
        } else {
            name = line[...]
            value = []
        }
        try process(field: name, value: value, body)
    }

    // MARK: - Fields (§9.2.6)

    private static let event: [UInt8] = Array("event".utf8)
    private static let dataName: [UInt8] = Array("data".utf8)
    private static let id: [UInt8] = Array("id".utf8)
    private static let retry: [UInt8] = Array("retry".utf8)

    private mutating func process(
        field name: ArraySlice<UInt8>,
        value: ArraySlice<UInt8>,
        _ body: (Output) -> Void
    ) throws(EventStreamError) {
        if name.elementsEqual(Self.dataName) {
            try checkEventLength(adding: value.count + 1, replacingType: false)
            data.append(contentsOf: value)
            data.append(ASCII.lf)
        } else if name.elementsEqual(Self.event) {
            try checkEventLength(adding: value.count, replacingType: true)
            eventType = Array(value)
        } else if name.elementsEqual(Self.id) {
            if !value.contains(0) {
                idBuffer = String(decoding: value, as: UTF8.self)
            }
        } else if name.elementsEqual(Self.retry) {
            if let milliseconds = Self.decimal(value) {
                body(.retry(milliseconds))
            }
        }
    }

    private func checkEventLength(adding count: Int, replacingType: Bool) throws(EventStreamError) {
        let current = data.count + (replacingType ? 0 : eventType.count)
        guard current + count <= configuration.maxEventLength else {
            throw .eventTooLarge(limit: configuration.maxEventLength)
        }
    }

    /// One or more ASCII digits as a base-ten integer, saturating at `Int.max`; nil otherwise.
    private static func decimal(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty else { return nil }
        var result = 0
        for digit in digits {
            guard digit >= ASCII.zero, digit <= ASCII.nine else { return nil }
            let (times10, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(digit - ASCII.zero))
            result = overflow1 || overflow2 ? Int.max : sum
        }
        return result
    }

    private mutating func dispatch(_ body: (Output) -> Void) {
        lastEventID = idBuffer
        defer {
            data.removeAll(keepingCapacity: data.count <= 4096)
            eventType.removeAll()
        }
        guard !data.isEmpty else { return }
        data.removeLast()  // the LF after the last data line
        let type = eventType.isEmpty ? "message" : String(decoding: eventType, as: UTF8.self)
        body(.event(MessageEvent(type: type, data: String(decoding: data, as: UTF8.self), lastEventID: lastEventID)))
    }
}

/// A stream that broke one of ``EventStreamParser/Configuration``'s limits; the stream is over.
public enum EventStreamError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A line longer than ``EventStreamParser/Configuration/maxLineLength`` (`limit`, in bytes).
    case lineTooLong(limit: Int)
    /// An event larger than ``EventStreamParser/Configuration/maxEventLength`` (`limit`, in bytes).
    case eventTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .lineTooLong(let limit): "event stream line longer than \(limit) bytes"
        case .eventTooLarge(let limit): "event larger than \(limit) bytes"
        }
    }
}
