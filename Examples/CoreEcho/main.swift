import WebSocketCore

// Drives the README's `Endpoint` (Endpoint.swift) with a client `Connection` over an in-memory "socket": the
// client sends a masked text message, a ping and a close; the endpoint must echo the text, answer the ping and
// complete the close handshake. Prints "core echo ok" on success and exits 1 otherwise (Tests/Readme runs it).
final class Wire {
    var toServer: [UInt8] = []
    var toClient: [UInt8] = []
    var serverClosedTCP = false
}

let wire = Wire()
var server = Endpoint(
    write: { wire.toClient += $0 },
    closeTCP: { wire.serverClosedTCP = true }
)
var client = Connection(role: .client)
var failures: [String] = []

@MainActor func clientSends(_ body: (inout Connection) throws -> Void) {
    do { try body(&client) } catch { failures.append("client send: \(error)") }
    client.withPendingOutput { wire.toServer += $0 }
}

@MainActor func deliverToServer() {
    var bytes = wire.toServer
    wire.toServer = []
    bytes.withUnsafeMutableBytes { server.received($0) }
}

var echoed: [String] = []
var pongs = 0
var closeCode: CloseCode?
@MainActor func deliverToClient() {
    var bytes = wire.toClient
    wire.toClient = []
    do {
        try bytes.withUnsafeMutableBytes { raw in
            try client.receive(raw) { _, event in
                switch event {
                case .message(.text, let payload): echoed.append(String(decoding: payload, as: UTF8.self))
                case .pong: pongs += 1
                case .close(let status): closeCode = status.code
                default: break
                }
            }
        }
    } catch {
        failures.append("client receive: \(error)")
    }
}

clientSends { try $0.send(.text, UnsafeRawBufferPointer(start: nil, count: 0)) }
Array("hello, core".utf8).withUnsafeBytes { payload in clientSends { try $0.send(.text, payload) } }
[1, 2, 3].withUnsafeBytes { payload in clientSends { try $0.ping(payload) } }
clientSends { try $0.close(code: .normalClosure, reason: "done") }
deliverToServer()
deliverToClient()

if echoed != ["", "hello, core"] { failures.append("echo: \(echoed)") }
if pongs != 1 { failures.append("pongs: \(pongs)") }
if closeCode != .normalClosure { failures.append("close: \(String(describing: closeCode))") }
if !wire.serverClosedTCP { failures.append("the server did not close TCP after the close handshake") }

if failures.isEmpty {
    print("core echo ok")
} else {
    print("core echo FAILED:", failures.joined(separator: "; "))
    fatalError("core echo failed")
}
