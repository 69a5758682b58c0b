import EventSourceClient
import NIOSSL
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

/// `https://`: the event stream route over the server's TLS, read by `EventSource` trusting a throw-away
/// certificate.
@Suite(.serialized, .timeLimit(.minutes(1)), .enabled(if: TestCertificate.isAvailable))
struct EventSourceTLSTests {
    @Test("events over https://")
    func overTLS() async throws {
        let certificate = try TestCertificate.make()
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0, tls: try certificate.serverTLS())
        configuration.shutdownGracePeriod = .seconds(1)
        let route = EventStreamRoute(path: "/secure", handler: .async { _, writer in
            try await writer.send(try ServerSentEvent(data: "over tls", id: "1"))
        })
        let server = Server(configuration: configuration, routes: [], eventStreamRoutes: [route])
        var clientConfiguration = EventSource.Configuration()
        let roots = try NIOSSLCertificate.fromPEMFile(certificate.certificatePath)
        clientConfiguration.tls.trustRoots = .certificates(roots)
        let trusted = clientConfiguration
        try await server.withRunning { server in
            var iterator = try EventSource(url: "https://localhost:\(server.port)/secure", configuration: trusted)
                .makeAsyncIterator()
            #expect(try await iterator.next() == .open)
            #expect(try await iterator.next() == .event(MessageEvent(data: "over tls", lastEventID: "1")))
        }
    }
}
