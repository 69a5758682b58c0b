#if canImport(Glibc)
    import Glibc
#endif

/// The name `fail` prints before its message: the executable's file name.
public let programName: String = {
    let path = CommandLine.arguments.first ?? "bench"
    return String(path.split(separator: "/").last ?? Substring(path))
}()

/// Prints `message` to standard error and exits with status 2.
public func fail(_ message: String) -> Never {
    var standardError = StandardError()
    print("\(programName): \(message)", to: &standardError)
    exit(2)
}

/// `value`, or `fail(message)` when it is nil.
public func need<T>(_ value: T?, _ message: String) -> T {
    guard let value else { fail(message) }
    return value
}

/// Standard error as a `TextOutputStream` (unbuffered `write(2)`).
public struct StandardError: TextOutputStream {
    public init() {}

    public mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// `value` rounded to `digits` decimals, without trailing noise.
public func formatted(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return digits == 0 ? String(Int(rounded)) : String(rounded)
}

/// The RFC 6455 §1.3 sample key and its accept value: every connection uses it, so the client needs no SHA-1.
public let handshakeKey = "dGhlIHNhbXBsZSBub25jZQ=="
public let handshakeAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/// Performs the RFC 6455 §4.1 opening handshake for `path` on a blocking socket connected to `host:port`;
/// returns the bytes that arrived after the response head (the first frames, if the server was quick). Exits
/// through `fail` when the server refuses or answers a wrong `Sec-WebSocket-Accept`.
public func webSocketHandshake(fd: Int32, host: String, port: UInt16, path: String) -> [UInt8] {
    let request =
        "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\n"
        + "Connection: Upgrade\r\nSec-WebSocket-Key: \(handshakeKey)\r\nSec-WebSocket-Version: 13\r\n\r\n"
    Socket.writeAll(fd, Array(request.utf8))
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
        guard n > 0 else { fail("handshake: connection closed or failed (\(errnoText()))") }
        response.append(contentsOf: chunk[0..<n])
        if let end = headEnd(response) {
            let head = String(decoding: response[0..<end], as: UTF8.self)
            guard head.hasPrefix("HTTP/1.1 101") else { fail("handshake refused: \(head.prefix(200))") }
            let lines = head.split(separator: "\r\n")
            let accept = lines.first { $0.lowercased().hasPrefix("sec-websocket-accept:") }
            guard let accept,
                accept.split(separator: ":", maxSplits: 1).last?.trimmingSpaces == Substring(handshakeAccept)
            else { fail("handshake: bad Sec-WebSocket-Accept in \(head.prefix(300))") }
            return Array(response[end...])
        }
        if response.count > 16 << 10 { fail("handshake: response head too long") }
    }
}

private func headEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4)
    where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i + 4
    }
    return nil
}

extension Substring {
    /// The text without leading and trailing spaces and tabs.
    public var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
