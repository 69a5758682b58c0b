#if TLS
import RedisTestSupport
import Foundation
import NIOSSL
import RESP
import RedisClient
import Testing

/// A throw-away self-signed certificate for `localhost` and 127.0.0.1, made with the openssl tool.
struct RedisTestCertificate {
    let directory: URL
    var certificate: String { directory.appendingPathComponent("cert.pem").path }
    var key: String { directory.appendingPathComponent("key.pem").path }

    static let openssl = "/usr/bin/openssl"

    static func make() throws -> RedisTestCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "redis-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let made = RedisTestCertificate(directory: directory)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", made.key, "-out", made.certificate, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("openssl could not make a certificate") }
        return made
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

@Suite(
    "RedisClient over TLS (redis-server --tls-port)",
    .enabled(if: RedisServerProcess.binary != nil, Comment(rawValue: RedisServerProcess.missingMessage)),
    .enabled(if: FileManager.default.isExecutableFile(atPath: RedisTestCertificate.openssl), "openssl is missing")
)
struct TLSTests {
    @Test("HELLO, AUTH and pub/sub over TLS; an untrusted certificate is refused")
    func overTLS() async throws {
        let certificate = try RedisTestCertificate.make()
        defer { certificate.remove() }
        let port = try await RedisServerProcess.freePort()
        let server = try await RedisServerProcess.start(
            [
                "--tls-port", String(port), "--tls-cert-file", certificate.certificate, "--tls-key-file",
                certificate.key, "--tls-auth-clients", "no", "--requirepass", "pw",
            ],
            port: port,
            plainPort: 0
        )
        defer { server.stop() }
        var configuration = RedisConfiguration(host: "127.0.0.1", port: port, password: "pw")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate.certificate))
        configuration.tls = tls
        let subscriber = try await RedisConnection.connect(configuration)
        #expect(subscriber.protocolVersion == 3)
        try await subscriber.subscribe(to: ["secure"])
        configuration.tlsServerName = "localhost"
        let publisher = try await RedisConnection.connect(configuration)
        #expect(try await publisher.publish(Array("sealed".utf8), to: "secure") == 1)
        #expect(
            try await collect(subscriber.messages, count: 1)
                == [PubSubMessage(channel: "secure", payload: Array("sealed".utf8))]
        )
        await subscriber.close()
        await publisher.close()

        // The default trust roots do not include our certificate.
        configuration.tls = .makeClientConfiguration()
        let untrusted = configuration
        await #expect(throws: (any Error).self) { _ = try await RedisConnection.connect(untrusted) }
        // Plain TCP to the TLS port gets no RESP answer: the server closes the connection.
        configuration.tls = nil
        configuration.connectTimeout = .seconds(2)
        let plain = configuration
        await #expect(throws: (any Error).self) {
            _ = try await withTimeout(.seconds(10)) { try await RedisConnection.connect(plain) }
        }
    }
}
#endif
