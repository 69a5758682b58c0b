/// Small pieces of HTTP syntax (RFC 9110 §5.6) that the handshake rules are written in.
enum HTTPSyntax {
    /// `tchar` (RFC 9110 §5.6.2): the characters of a `token`.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Whether `string` is a non-empty `token` (RFC 9110 §5.6.2).
    static func isToken(_ string: some StringProtocol) -> Bool {
        !string.isEmpty && string.utf8.allSatisfy(isTokenCharacter)
    }

    /// `OWS` (RFC 9110 §5.6.3): space or horizontal tab.
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// Removes leading and trailing `OWS`.
    static func trimmed(_ string: some StringProtocol) -> Substring {
        let utf8 = Substring(string).utf8
        guard let first = utf8.firstIndex(where: { !isWhitespace($0) }),
            let last = utf8.lastIndex(where: { !isWhitespace($0) })
        else { return Substring() }
        return Substring(utf8[first...last])
    }

    /// The elements of a comma-separated list (`#element`, RFC 9110 §5.6.1) spread over one or more field
    /// lines, trimmed of `OWS`, with empty elements dropped (recipients must accept and ignore them).
    static func listElements(_ fieldValues: some Sequence<String>) -> [Substring] {
        var elements: [Substring] = []
        for value in fieldValues {
            for element in value.split(separator: ",", omittingEmptySubsequences: false) {
                let trimmedElement = trimmed(element)
                if !trimmedElement.isEmpty {
                    elements.append(trimmedElement)
                }
            }
        }
        return elements
    }

    /// Whether a comma-separated list over `fieldValues` contains `token`, compared ASCII case-insensitively.
    static func listContainsToken(_ fieldValues: some Sequence<String>, _ token: String) -> Bool {
        listElements(fieldValues).contains { asciiCaseInsensitiveEquals($0, token) }
    }

    /// ASCII case-insensitive comparison (HTTP tokens are ASCII).
    static func asciiCaseInsensitiveEquals(_ lhs: some StringProtocol, _ rhs: some StringProtocol) -> Bool {
        lhs.utf8.count == rhs.utf8.count && zip(lhs.utf8, rhs.utf8).allSatisfy { lowercased($0) == lowercased($1) }
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 0x20 : byte
    }
}
