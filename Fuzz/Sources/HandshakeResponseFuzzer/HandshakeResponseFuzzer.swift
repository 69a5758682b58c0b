import FuzzSupport
import HTTPTypes
import WebSocketHandshake

// Arbitrary 101 responses through the client-side validation of a fixed request. Invariants: it never traps;
// an accepted response has status 101, the exact accept value, and only a subprotocol and extensions the
// client offered.

@_cdecl("LLVMFuzzerTestOneInput")
public func handshakeResponseFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    let head = HTTPHead(input.bytes)
    guard head.startLine.count >= 2, let code = Int(head.startLine[1]), (100...999).contains(code) else { return 0 }
    var fields = HTTPFields()
    for (name, value) in head.fields {
        guard let fieldName = HTTPField.Name(name) else { continue }
        fields.append(HTTPField(name: fieldName, value: value))
    }
    let response = HTTPResponse(status: HTTPResponse.Status(code: code), headerFields: fields)
    guard let url = try? WebSocketURL("ws://127.0.0.1:9001/chat?x=1") else { violated("URL parsing failed") }
    let client = ClientHandshake(
        url: url, key: "dGhlIHNhbXBsZSBub25jZQ==", subprotocols: ["chat", "superchat"],
        extensions: [WebSocketExtension(name: "permessage-deflate", parameters: [.init(name: "client_max_window_bits")])])
    do throws(ClientHandshakeError) {
        let negotiated = try client.validate(response)
        if code != 101 { violated("accepted status \(code)") }
        if response.headerFields[.secWebSocketAccept] != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { violated("accept value") }
        if let subprotocol = negotiated.subprotocol, !client.subprotocols.contains(subprotocol) {
            violated("subprotocol \(subprotocol) not offered")
        }
        if negotiated.extensions.contains(where: { $0.name != "permessage-deflate" }) { violated("extension not offered") }
    } catch {
        _ = error.description
    }
    return 0
}

@_cdecl("HandshakeResponseFuzzer_main")
func handshakeResponseFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, handshakeResponseFuzz)
}
