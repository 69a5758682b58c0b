/// Writes `text/event-stream` bytes (WHATWG HTML §9.2.5), with LF line ends.
///
/// Pure functions over byte arrays: encode an event once and write the same bytes to every stream that
/// carries it.
public enum EventStreamEncoder {
    /// The bytes of `event`, ending with the empty line that makes the client dispatch it.
    public static func encode(_ event: ServerSentEvent) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity((event.data?.utf8.count ?? 0) + 16)
        encode(event, into: &bytes)
        return bytes
    }

    /// Appends the bytes of `event` to `bytes` (see ``encode(_:)``).
    public static func encode(_ event: ServerSentEvent, into bytes: inout [UInt8]) {
        if let type = event.type {
            appendField("event", type.utf8, to: &bytes)
        }
        if let data = event.data {
            forEachLine(of: data) { appendField("data", $0, to: &bytes) }
        }
        if let id = event.id {
            appendField("id", id.utf8, to: &bytes)
        }
        if let retry = event.retry {
            appendField("retry", String(retry).utf8, to: &bytes)
        }
        bytes.append(ASCII.lf)
    }

    /// The bytes of a comment (lines starting with `:`, which clients ignore; §9.2.7 suggests one every 15 s
    /// or so as a heartbeat for proxies). `text` is split on CR, LF and CRLF into one comment line each; the
    /// empty string gives the single line `:`. A comment dispatches nothing, so no empty line follows it.
    public static func comment(_ text: String = "") -> [UInt8] {
        var bytes: [UInt8] = []
        comment(text, into: &bytes)
        return bytes
    }

    /// Appends a comment to `bytes` (see ``comment(_:)``).
    public static func comment(_ text: String, into bytes: inout [UInt8]) {
        if text.isEmpty {
            bytes.append(ASCII.colon)
            bytes.append(ASCII.lf)
            return
        }
        forEachLine(of: text) { line in
            bytes.append(ASCII.colon)
            if !line.isEmpty {
                bytes.append(ASCII.space)
                bytes.append(contentsOf: line)
            }
            bytes.append(ASCII.lf)
        }
    }

    /// A block with only a `retry` field: sets the client's reconnection time (milliseconds) without
    /// dispatching an event. Nil when `milliseconds` is negative.
    public static func retry(milliseconds: Int) -> [UInt8]? {
        guard let event = try? ServerSentEvent(retry: milliseconds) else { return nil }
        return encode(event)
    }

    private static func appendField(_ name: StaticString, _ value: some Collection<UInt8>, to bytes: inout [UInt8]) {
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(ASCII.colon)
        bytes.append(ASCII.space)  // the parser removes exactly one leading space, so a value may start with one
        bytes.append(contentsOf: value)
        bytes.append(ASCII.lf)
    }

    /// Calls `body` with each line of `text`, split on CR, LF and CRLF; a trailing break gives a last empty line.
    private static func forEachLine(of text: String, _ body: (Substring.UTF8View) -> Void) {
        let utf8 = text.utf8
        var start = utf8.startIndex
        var index = start
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == ASCII.lf || byte == ASCII.cr {
                body(text[start..<index].utf8)
                var next = utf8.index(after: index)
                if byte == ASCII.cr, next != utf8.endIndex, utf8[next] == ASCII.lf {
                    next = utf8.index(after: next)
                }
                start = next
                index = next
            } else {
                index = utf8.index(after: index)
            }
        }
        body(text[start..<utf8.endIndex].utf8)
    }
}
