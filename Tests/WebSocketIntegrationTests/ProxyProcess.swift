import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import WebSocketClient

/// A third-party proxy (tinyproxy, microsocks) or ws-echo run as a child process on 127.0.0.1 for one test:
/// started on a free port, waited for until it listens, stopped by its PID.
final class ChildProcess: @unchecked Sendable {
    let process: Process
    let port: Int
    let directory: URL

    struct StartFailed: Error, CustomStringConvertible {
        let description: String
    }

    static func isInstalled(_ path: String) -> Bool { FileManager.default.isExecutableFile(atPath: path) }

    static let tinyproxy = "/usr/bin/tinyproxy"
    static let microsocks = "/usr/bin/microsocks"

    /// ws-echo from this package's debug build (`swift build --build-tests` builds it).
    static var wsEcho: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/ws-echo").path
    }

    private init(process: Process, port: Int, directory: URL) {
        self.process = process
        self.port = port
        self.directory = directory
    }

    /// Starts `executable` with `arguments(port, directory)` on `port` (a free one when nil) and waits until it
    /// accepts TCP connections (at most 10 s).
    static func start(
        _ executable: String,
        port: Int? = nil,
        arguments: (_ port: Int, _ directory: URL) throws -> [String]
    ) async throws -> ChildProcess {
        var chosenPort = port ?? 0
        if port == nil { chosenPort = try await freePort() }
        let port = chosenPort
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ws-proxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = try arguments(port, directory)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let child = ChildProcess(process: process, port: port, directory: directory)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            guard process.isRunning else {
                throw StartFailed(description: "\(executable) exited with \(process.terminationStatus)")
            }
            if (try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get().close()) != nil
            {
                return child
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        child.stop()
        throw StartFailed(description: "\(executable) does not listen on 127.0.0.1:\(port)")
    }

    /// tinyproxy in the foreground, HTTP CONNECT to any port, with `BasicAuth` when credentials are given;
    /// `connectPorts` restricts CONNECT to those ports (others get 403).
    static func tinyproxy(basicAuth: (String, String)? = nil, connectPorts: [Int] = []) async throws -> ChildProcess {
        try await start(tinyproxy) { port, directory in
            var lines = [
                "Port \(port)", "Listen 127.0.0.1", "Timeout 30", "MaxClients 20", "LogLevel Critical",
                "Allow 127.0.0.1", "DisableViaHeader Yes",
            ]
            if let (user, password) = basicAuth { lines.append("BasicAuth \(user) \(password)") }
            lines += connectPorts.map { "ConnectPort \($0)" }
            let file = directory.appendingPathComponent("tinyproxy.conf")
            try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
            return ["-d", "-c", file.path]
        }
    }

    /// microsocks (SOCKS5), with username/password authentication when credentials are given.
    static func microsocks(credentials: (String, String)? = nil) async throws -> ChildProcess {
        try await start(microsocks) { port, _ in
            var arguments = ["-i", "127.0.0.1", "-p", "\(port)"]
            if let (user, password) = credentials { arguments += ["-u", user, "-P", password] }
            return arguments
        }
    }

    /// Stops the process by its PID and waits for it. SIGKILL: these test servers hold no state worth a clean
    /// exit, and tinyproxy does not exit on SIGTERM while it still has connection threads.
    func stop() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
        self.process.waitUntilExit()
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Kills the process at once (SIGKILL by its PID): no close frame, no FIN from the application.
    func kill9() {
        kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }

    /// Runs `body` with a started process and stops it afterwards.
    static func with<T>(_ child: ChildProcess, _ body: (ChildProcess) async throws -> T) async throws -> T {
        do {
            let result = try await body(child)
            child.stop()
            return result
        } catch {
            child.stop()
            throw error
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
func freePort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    return port
}

/// A self-signed certificate for the name `localhost` only (no IP address in subjectAltName): NIOSSL accepts
/// a certificate whose IP address matches the socket's peer, which through a proxy is the proxy's address, so
/// a name check through a tunnel needs a certificate without one.
struct NameOnlyCertificate {
    let serverTLS: TLSConfiguration
    let clientConfiguration: WebSocketClientConfiguration

    static func make() throws -> NameOnlyCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ws-cert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ChildProcess.StartFailed(description: "openssl failed") }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate)
        var client = WebSocketClientConfiguration()
        client.tls.trustRoots = .certificates(chain)
        return NameOnlyCertificate(
            serverTLS: .makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            ),
            clientConfiguration: client
        )
    }
}
