import Foundation
import NIOSSL
import WebSocketClient

/// A throw-away self-signed certificate for `localhost` and `127.0.0.1`, made with the `openssl` command line
/// tool (tests that need it are enabled only ``ifAvailable``).
public struct TestCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String

    static let openssl = "/usr/bin/openssl"

    /// Whether the openssl tool is there.
    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: openssl) }

    public struct CreationFailed: Error {}

    public static func make() throws -> TestCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CreationFailed() }
        return TestCertificate(certificatePath: certificate, keyPath: key)
    }

    /// A server configuration that presents this certificate.
    public func serverTLS() throws -> TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(self.certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: self.keyPath, format: .pem))
        )
    }

    /// A client configuration that trusts this certificate only.
    public func clientConfiguration() throws -> WebSocketClientConfiguration {
        var configuration = WebSocketClientConfiguration()
        configuration.tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(self.certificatePath))
        return configuration
    }
}
