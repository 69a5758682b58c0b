import FuzzSupport
import HTTPTypes
import WebSocketHandshake

// Arbitrary upgrade requests through the server-side validation. Invariants: it never traps; an accepted
// request has a key that is base64 of 16 bytes, and its 101 response carries the accept value of exactly that
// key, shaped as base64 of a 20-byte SHA-1 digest (the digest itself is checked against FIPS 180 and hashlib
// vectors in the unit tests, not here); a rejection has a 4xx status, and 426 carries
// `Sec-WebSocket-Version: 13`.

@_cdecl("LLVMFuzzerTestOneInput")
public func handshakeRequestFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    let head = HTTPHead(input.bytes)
    guard head.startLine.count == 3 else { return 0 }
    let method = HTTPRequest.Method(head.startLine[0]) ?? .post
    let version: HTTPProtocolVersion
    switch head.startLine[2] {
    case "HTTP/1.0": version = .http1_0
    case "HTTP/2.0": version = HTTPProtocolVersion(major: 2, minor: 0)
    default: version = .http1_1
    }
    var fields = HTTPFields()
    var authority: String? = nil
    for (name, value) in head.fields {
        if name.lowercased() == "host" {
            authority = value
            continue
        }
        guard let fieldName = HTTPField.Name(name) else { continue }
        fields.append(HTTPField(name: fieldName, value: value))
    }
    let request = HTTPRequest(method: method, scheme: nil, authority: authority, path: head.startLine[1], headerFields: fields)
    do throws(ServerHandshakeError) {
        let upgrade = try UpgradeRequest(validating: request, httpVersion: version)
        guard OpeningHandshake.isValidKey(upgrade.key) else { violated("accepted an invalid key \(upgrade.key)") }
        let expected = OpeningHandshake.acceptValue(forKey: upgrade.key)
        let response = try upgrade.makeResponse(subprotocol: upgrade.subprotocols.first)
        if response.status != .switchingProtocols { violated("accept status \(response.status)") }
        if response.headerFields[.secWebSocketAccept] != expected {
            violated("Sec-WebSocket-Accept \(response.headerFields[.secWebSocketAccept] ?? "-") != \(expected)")
        }
        // Base64 of 20 bytes: 27 characters of the alphabet, then one '='.
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        if expected.utf8.count != 28 || !expected.utf8.dropLast().allSatisfy(alphabet.contains)
            || expected.utf8.last != UInt8(ascii: "=")
        {
            violated("accept value '\(expected)' is not base64 of a 20-byte digest")
        }
        if method != .get || version < .http1_1 { violated("accepted \(method) \(version)") }
    } catch {
        let status = error.response.status.code
        if !(400...499).contains(status) { violated("rejection with status \(status)") }
        if status == 426 && error.response.headerFields[.secWebSocketVersion] != "13" {
            violated("426 without Sec-WebSocket-Version: 13")
        }
    }
    return 0
}

@_cdecl("HandshakeRequestFuzzer_main")
func handshakeRequestFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, handshakeRequestFuzz)
}
