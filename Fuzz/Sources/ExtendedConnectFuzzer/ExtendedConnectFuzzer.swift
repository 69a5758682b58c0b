import FuzzSupport
import HTTPTypes
import WebSocketHandshake

// Arbitrary HTTP/2 request header blocks through the extended CONNECT validation (RFC 8441 §4-§5, RFC 9113
// §8.2-§8.3). Input: one byte whose low bit says whether SETTINGS_ENABLE_CONNECT_PROTOCOL was advertised, then
// field lines `name\tvalue` separated by `\n` (a name or value may hold any other byte). Invariants: it never
// traps; a parsed head never carries `:protocol` unless the setting was advertised and the method is CONNECT, an
// extended CONNECT has :scheme, :path (not empty) and :authority, and no connection-specific field survives;
// an accepted WebSocket request has `:protocol websocket`, version 13, an empty key, and its 200 response has no
// upgrade, connection or sec-websocket-accept field; a refusal is either a stream error without a response or a
// 4xx/501 response, and a version refusal carries `sec-websocket-version: 13`.

@_cdecl("LLVMFuzzerTestOneInput")
public func extendedConnectFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let enabled = input.byte() & 1 == 1
    var fields: [(name: String, value: String)] = []
    for line in input.rest().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        let parts = line.split(separator: UInt8(ascii: "\t"), maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(decoding: parts[0], as: UTF8.self)
        let value = parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : ""
        fields.append((name, value))
    }
    let head: HTTP2RequestHead
    do throws(ExtendedConnectError) {
        head = try HTTP2RequestHead(fields: fields, connectProtocolEnabled: enabled)
    } catch {
        if !error.isStreamError || error.response != nil {
            violated("header-block error \(error) is not a stream error")
        }
        return 0
    }
    if head.protocol != nil && (!enabled || head.method != "CONNECT") {
        violated(":protocol accepted with enabled=\(enabled) method=\(head.method)")
    }
    if head.isExtendedConnect && (head.scheme == nil || head.path?.isEmpty != false || head.authority == nil) {
        violated("extended CONNECT without :scheme, :path or :authority")
    }
    for field in head.request.headerFields {
        switch field.name.canonicalName {
        case "connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding":
            violated("connection-specific field \(field.name) accepted")
        default: break
        }
    }
    do throws(ExtendedConnectError) {
        let request = try UpgradeRequest(validatingExtendedConnect: head)
        if head.protocol != "websocket" { violated("accepted :protocol \(head.protocol ?? "-")") }
        if request.headerFields[values: .secWebSocketVersion].map({ $0.trimmingSpaces }) != ["13"] {
            violated("accepted version \(request.headerFields[values: .secWebSocketVersion])")
        }
        if !request.key.isEmpty { violated("a key over HTTP/2") }
        guard let response = try? request.makeExtendedConnectResponse(subprotocol: request.subprotocols.first) else {
            violated("offered subprotocol refused")
        }
        if response.status != .ok { violated("accept status \(response.status)") }
        for name in [HTTPField.Name.upgrade, .connection, .secWebSocketAccept] {
            if response.headerFields[name] != nil { violated("\(name) in the 200") }
        }
    } catch {
        guard let response = error.response, !error.isStreamError else {
            violated("route-level refusal \(error) without a response")
        }
        let status = response.status.code
        if !(400...499).contains(status) && status != 501 { violated("refusal with status \(status)") }
        if error == .unsupportedVersion && response.headerFields[.secWebSocketVersion] != "13" {
            violated("version refusal without sec-websocket-version: 13")
        }
    }
    return 0
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}

@_cdecl("ExtendedConnectFuzzer_main")
func extendedConnectFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, extendedConnectFuzz)
}
