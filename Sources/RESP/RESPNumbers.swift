/// The number grammars of RESP (integers: redis.io protocol spec "Integers"; doubles and big numbers:
/// RESP3.md "Double", "Big number").
enum RESPNumbers {
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// `[+-]?digit+` within the signed 64-bit range.
    static func integer(_ bytes: [UInt8]) -> Int64? {
        var index = 0
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            index = 1
        }
        guard index < bytes.count else { return nil }
        var magnitude: UInt64 = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard isDigit(byte) else { return nil }
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            magnitude = sum
            index += 1
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return Int64(truncatingIfNeeded: 0 &- magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    /// `[+-]?digit+`.
    static func isBigNumber(_ bytes: [UInt8]) -> Bool {
        var digits = bytes[...]
        if let first = digits.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            digits = digits.dropFirst()
        }
        return !digits.isEmpty && digits.allSatisfy(isDigit)
    }

    /// `[+-]?digit+(.digit+)?([eE][+-]?digit+)?`, or `inf` / `nan` with an optional sign, in any case.
    static func double(_ bytes: [UInt8]) -> Double? {
        var rest = bytes[...]
        var negative = false
        if let first = rest.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            rest = rest.dropFirst()
        }
        let lowered = rest.map { $0 | 0x20 }
        if lowered == Array("inf".utf8) { return negative ? -.infinity : .infinity }
        if lowered == Array("nan".utf8) { return .nan }
        func digits() -> Bool {
            let start = rest.startIndex
            while let byte = rest.first, isDigit(byte) { rest = rest.dropFirst() }
            return rest.startIndex > start
        }
        guard digits() else { return nil }
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            guard digits() else { return nil }
        }
        if let byte = rest.first, byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            rest = rest.dropFirst()
            if let sign = rest.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") { rest = rest.dropFirst() }
            guard digits() else { return nil }
        }
        guard rest.isEmpty else { return nil }
        return Double(String(decoding: bytes, as: UTF8.self))
    }
}
