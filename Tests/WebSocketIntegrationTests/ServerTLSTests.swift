import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Testing
import WebSocketServer

/// A throw-away self-signed certificate made with the `openssl` command line tool.
private func makeSelfSignedCertificate() throws -> (certificate: String, key: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let certificate = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=localhost",
    ]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    return (certificate, key)
}

@Suite("Server over TLS (wss)")
struct ServerTLSTests {
    @Test(
        "the upgrade and an early frame work over TLS",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"))
    )
    func tlsEcho() async throws {
        let (certificatePath, keyPath) = try makeSelfSignedCertificate()
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
        )
        let seenSecure = NIOLockedValueBoxBool()
        let route = WebSocketRoute(
            path: "/ws",
            shouldUpgrade: { _, connection in
                seenSecure.set(connection.isSecure)
                return .accept()
            },
            handler: .delegate { _ in EchoDelegate() }
        )
        let server = Server(
            configuration: .init(host: "127.0.0.1", port: 0, tls: tls),
            routes: [route]
        )
        try await server.withRunning { server in
            let client = try await RawTestClient.connect(port: server.port, tls: true)
            let payload = Array("over tls".utf8)
            try await client.send(Array(upgradeRequest().utf8) + maskedFrame(opcode: 0x1, payload))
            let bytes = await client.wait { RawResponse($0).flatMap { parseServerFrame($0.rest) } != nil }
            let response = try #require(RawResponse(bytes))
            #expect(response.status == 101)
            #expect(parseServerFrame(response.rest)?.payload == payload)
            #expect(seenSecure.get())
            await client.close()
        }

        // Plain HTTP on the TLS port gets no HTTP answer.
        let server2 = Server(
            configuration: .init(host: "127.0.0.1", port: 0, tls: tls),
            routes: [route]
        )
        try await server2.withRunning { server2 in
            let plain = try await RawTestClient.connect(port: server2.port)
            try await plain.send(upgradeRequest())
            let answer = await plain.wait(timeout: .seconds(3))
            #expect(RawResponse(answer) == nil)
            await plain.close()
        }
    }
}

private final class NIOLockedValueBoxBool: Sendable {
    private let box = NIOLockedValueBox(false)
    func set(_ value: Bool) { box.withLockedValue { $0 = value } }
    func get() -> Bool { box.withLockedValue { $0 } }
}
