import HTTPTypes

/// An incremental, bounded parser for an HTTP/1.x response head (RFC 9112 §2–§5): the status line and the
/// header field lines up to the empty line. Sans-I/O: feed it bytes as they arrive, in any split, down to one
/// byte at a time.
///
/// ```swift
/// var parser = HTTPResponseHeadParser()
/// // for each chunk read from the connection:
/// switch try parser.parse(chunk) {           // throws HTTPResponseHeadError
/// case .needMoreBytes: break                 // every byte of chunk belongs to the head; read more
/// case .complete(let head, let consumed):    // chunk[consumed...] follows the head (e.g. WebSocket frames)
///     let negotiated = try handshake.validate(head)
/// }
/// ```
///
/// It is strict, as a WebSocket client may be (RFC 6455 §4.1: a non-conforming response fails the
/// connection):
/// - the status line is `HTTP/1.d SP 3DIGIT SP reason-phrase CRLF` (RFC 9112 §4), with the space after the
///   code even when the reason phrase is empty, and a code in 100…599;
/// - lines end in CRLF only; a bare LF or a bare CR is refused (RFC 9112 §2.2);
/// - no empty line before the status line;
/// - a field line is `field-name ":" OWS field-value OWS` with a `token` name and no whitespace before the
///   colon (RFC 9112 §5.1); obsolete line folding is refused (§5.2); values may hold `VCHAR`, `obs-text`,
///   space and tab, no other control character (RFC 9110 §5.5).
///
/// It reads the head only, never a body: a 101 response has none, and any other status fails the handshake.
/// Memory is bounded by ``Limits/maxHeadLength`` (the longest line is buffered) plus the parsed fields.
public struct HTTPResponseHeadParser: Sendable {
    /// How much the parser accepts before it gives up.
    public struct Limits: Sendable, Hashable {
        /// The most bytes the head may take, counted from the first byte of the status line to the LF of the
        /// empty line that ends the head, both included. Default 16384 (16 KiB): far more than a 101 response
        /// needs, small enough that a server cannot make the client buffer much. Must be positive.
        public var maxHeadLength: Int
        /// The most header field lines the head may have. Default 100. Each line counts, also when several
        /// have the same name.
        public var maxFieldCount: Int

        /// Creates limits: `maxHeadLength` in bytes (default 16 KiB), `maxFieldCount` in field lines (default 100).
        public init(maxHeadLength: Int = 16 * 1024, maxFieldCount: Int = 100) {
            self.maxHeadLength = maxHeadLength
            self.maxFieldCount = maxFieldCount
        }
    }

    /// What ``parse(_:)`` found in the bytes it was given.
    public enum Progress: Sendable, Hashable {
        /// Every byte given belongs to the head, which has not ended yet: feed more.
        case needMoreBytes
        /// The head ended after the first `consumed` bytes of the input to this call (the LF of the empty line
        /// included); the bytes after them are not the head's and stay with the caller.
        case complete(HTTPResponseHead, consumed: Int)
    }

    private enum State: Sendable {
        /// Reading the status line (RFC 9112 §4); its bytes are checked as they arrive.
        case statusLine
        /// The status line was read; reading field lines until the empty line (RFC 9112 §5).
        case fieldLines(version: HTTPProtocolVersion, status: HTTPResponse.Status)
        /// The head ended; ``parse(_:)`` returns it again and consumes nothing more.
        case complete(HTTPResponseHead)
        /// A rule was broken; ``parse(_:)`` throws this error again.
        case failed(HTTPResponseHeadError)
    }

    /// The limits this parser enforces.
    public let limits: Limits
    /// The number of bytes consumed so far, never more than ``Limits/maxHeadLength``.
    public private(set) var headLength = 0

    private var state = State.statusLine
    /// The bytes of the current line, without its line ending.
    private var line: [UInt8] = []
    /// Whether the last byte was a CR, which must be followed by LF.
    private var sawCR = false
    private var fields = HTTPFields()
    private var fieldCount = 0

    /// Creates a parser for one response head.
    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Consumes bytes of the head, stopping right after the empty line that ends it.
    ///
    /// - Parameter bytes: the next bytes from the connection, in any split.
    /// - Returns: ``Progress/needMoreBytes`` when all of `bytes` was consumed and the head goes on, or
    ///   ``Progress/complete(_:consumed:)`` with the head and how many of `bytes` it took. Once complete,
    ///   further calls consume nothing and return the same head with `consumed: 0`.
    /// - Throws: ``HTTPResponseHeadError`` for the first rule or limit broken; the parser stays failed and
    ///   throws the same error on every later call.
    public mutating func parse(_ bytes: some Sequence<UInt8>) throws(HTTPResponseHeadError) -> Progress {
        switch state {
        case .complete(let head): return .complete(head, consumed: 0)
        case .failed(let error): throw error
        case .statusLine, .fieldLines: break
        }
        do throws(HTTPResponseHeadError) {
            var consumed = 0
            for byte in bytes {
                consumed += 1
                if let head = try consume(byte) {
                    state = .complete(head)
                    line = []
                    fields = HTTPFields()
                    return .complete(head, consumed: consumed)
                }
            }
            return .needMoreBytes
        } catch {
            state = .failed(error)
            line = []
            fields = HTTPFields()
            throw error
        }
    }

    /// One byte; returns the head when this byte ended it.
    private mutating func consume(_ byte: UInt8) throws(HTTPResponseHeadError) -> HTTPResponseHead? {
        guard headLength < limits.maxHeadLength else {
            throw .with(.headTooLong, "no end of head within \(limits.maxHeadLength) bytes")
        }
        headLength += 1
        if sawCR {
            guard byte == Self.lf else { throw .with(.invalidLineEnding, "CR not followed by LF") }
            sawCR = false
            return try endOfLine()
        }
        switch byte {
        case Self.cr:
            sawCR = true
        case Self.lf:
            throw .with(.invalidLineEnding, "LF without CR")
        default:
            if case .statusLine = state, !Self.statusLineAllows(byte, at: line.count) {
                throw .with(.malformedStatusLine, "unexpected byte in '\(Self.printable(line + [byte]))'")
            }
            line.append(byte)
        }
        return nil
    }

    /// Handles the line in `line`, which just ended in CRLF.
    private mutating func endOfLine() throws(HTTPResponseHeadError) -> HTTPResponseHead? {
        defer { line.removeAll(keepingCapacity: true) }
        switch state {
        case .statusLine:
            let (version, status) = try Self.parseStatusLine(line)
            state = .fieldLines(version: version, status: status)
            return nil
        case .fieldLines(let version, let status):
            if line.isEmpty {
                return HTTPResponseHead(version: version, response: HTTPResponse(status: status, headerFields: fields))
            }
            guard fieldCount < limits.maxFieldCount else {
                throw .with(.tooManyFields, "more than \(limits.maxFieldCount) header fields")
            }
            fieldCount += 1
            fields.append(try Self.parseFieldLine(line))
            return nil
        case .complete, .failed:
            return nil  // parse(_:) does not feed bytes in these states
        }
    }

    // MARK: - Status line (RFC 9112 §4)

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")
    private static let httpName: [UInt8] = Array("HTTP/".utf8)
    /// `HTTP/d.d SP ddd SP`: the fixed-length part of the status line.
    private static let statusLinePrefixLength = 13

    /// Whether `byte` may stand at `index` of a status line:
    /// `HTTP-name "/" DIGIT "." DIGIT SP 3DIGIT SP *( HTAB / SP / VCHAR / obs-text )`.
    private static func statusLineAllows(_ byte: UInt8, at index: Int) -> Bool {
        switch index {
        case 0..<httpName.count: return byte == httpName[index]
        case 5, 7, 9, 10, 11: return isDigit(byte)
        case 6: return byte == UInt8(ascii: ".")
        case 8, 12: return byte == space
        default: return byte == tab || (byte >= space && byte != 0x7F)
        }
    }

    private static func parseStatusLine(
        _ line: [UInt8]
    ) throws(HTTPResponseHeadError) -> (HTTPProtocolVersion, HTTPResponse.Status) {
        // Every byte was checked on arrival; only the length remains (the SP after the code is required).
        guard line.count >= statusLinePrefixLength else {
            throw .with(.malformedStatusLine, "'\(printable(line))' is not 'HTTP/1.1 SP code SP reason'")
        }
        let version = HTTPProtocolVersion(major: digit(line[5]), minor: digit(line[7]))
        guard version.major == 1 else {
            throw .with(.unsupportedVersion, "\(version) in '\(printable(line))'")
        }
        let code = digit(line[9]) * 100 + digit(line[10]) * 10 + digit(line[11])
        guard (100...599).contains(code) else {
            throw .with(.invalidStatusCode, "status code \(code)")
        }
        let reason = String(decoding: line[statusLinePrefixLength...], as: UTF8.self)
        return (version, HTTPResponse.Status(code: code, reasonPhrase: reason))
    }

    // MARK: - Field lines (RFC 9112 §5)

    private static func parseFieldLine(_ line: [UInt8]) throws(HTTPResponseHeadError) -> HTTPField {
        if let first = line.first, first == space || first == tab {
            throw .with(.obsoleteLineFolding, "line '\(printable(line))' continues the previous field")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw .with(.missingColon, "'\(printable(line))'")
        }
        let nameBytes = line[..<colon]
        if let last = nameBytes.last, last == space || last == tab {
            throw .with(.whitespaceBeforeColon, "'\(printable(nameBytes))'")
        }
        guard !nameBytes.isEmpty, nameBytes.allSatisfy(HTTPSyntax.isTokenCharacter),
            let name = HTTPField.Name(String(decoding: nameBytes, as: UTF8.self))
        else {
            throw .with(.invalidFieldName, "'\(printable(nameBytes))'")
        }
        var value = line[(colon + 1)...]
        if let bad = value.first(where: { ($0 < space && $0 != tab) || $0 == 0x7F }) {
            throw .with(.invalidFieldValue, "byte 0x\(String(bad, radix: 16)) in field '\(printable(nameBytes))'")
        }
        while let first = value.first, first == space || first == tab { value = value.dropFirst() }
        while let last = value.last, last == space || last == tab { value = value.dropLast() }
        return HTTPField(name: name, value: value)
    }

    // MARK: - Helpers

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// The value of a byte already checked by ``isDigit(_:)``.
    private static func digit(_ byte: UInt8) -> Int { Int(byte &- UInt8(ascii: "0")) }

    /// Up to 80 bytes for an error message, with bytes other than printable ASCII as `\xHH`.
    private static func printable(_ bytes: some Collection<UInt8>) -> String {
        var text = ""
        for byte in bytes.prefix(80) {
            if byte >= space && byte < 0x7F {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                text += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return bytes.count > 80 ? text + "…" : text
    }
}
