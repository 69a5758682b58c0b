import NIOConcurrencyHelpers
import ServerSentEvents
import Testing
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// A raw HTTP/1.1 client's view of an event stream response: the head, the de-chunked body and the events.
struct StreamResponse {
    var status: Int
    var head: RawResponse
    /// The body with the chunk framing removed.
    var body: [UInt8]
    /// Whether the terminating zero-length chunk was received.
    var ended: Bool

    init?(_ bytes: [UInt8]) {
        guard let head = RawResponse(bytes) else { return nil }
        self.head = head
        self.status = head.status
        (self.body, self.ended) = Self.dechunk(head.rest)
    }

    /// Decodes `chunk-size CRLF data CRLF` … `0 CRLF CRLF`; stops at the first incomplete chunk.
    static func dechunk(_ bytes: [UInt8]) -> ([UInt8], Bool) {
        var body: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = find([0x0D, 0x0A], in: bytes, from: index) else { return (body, false) }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { return (body, false) }
            if size == 0 { return (body, bytes.count >= lineEnd + 4) }
            let start = lineEnd + 2
            guard bytes.count >= start + size + 2 else { return (body, false) }
            body += bytes[start..<(start + size)]
            index = start + size + 2
        }
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var index = from
        while index + needle.count <= bytes.count {
            if Array(bytes[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }

    var outputs: [EventStreamParser.Output] {
        var parser = EventStreamParser()
        return (try? parser.parse(body)) ?? []
    }

    var events: [MessageEvent] {
        outputs.compactMap { if case .event(let event) = $0 { event } else { nil } }
    }
}

/// A GET request head for `target`, with extra header lines.
func getRequest(_ target: String, _ extra: [String] = []) -> String {
    (["GET \(target) HTTP/1.1", "Host: 127.0.0.1"] + extra).joined(separator: "\r\n") + "\r\n\r\n"
}

/// Opens a raw connection, sends the request and returns the client.
func rawStream(_ server: Server, _ target: String, _ extra: [String] = [], autoRead: Bool = true,
               receiveBufferSize: Int? = nil) async throws -> RawTestClient {
    let client = try await RawTestClient.connect(port: server.port, receiveBufferSize: receiveBufferSize,
                                                 autoRead: autoRead)
    try await client.send(getRequest(target, extra))
    return client
}

/// Waits until the stream holds `count` events (or the connection closed / timeout).
func waitForEvents(_ client: RawTestClient, _ count: Int, timeout: Duration = .seconds(10)) async -> StreamResponse? {
    let bytes = await client.wait(timeout: timeout) { bytes in
        (StreamResponse(bytes)?.events.count ?? 0) >= count
    }
    return StreamResponse(bytes)
}

func makeServer(_ routes: [EventStreamRoute], webSocketRoutes: [WebSocketRoute] = []) -> Server {
    var configuration = Server.Configuration(port: 0)
    configuration.shutdownGracePeriod = .seconds(1)
    return Server(configuration: configuration, routes: webSocketRoutes, eventStreamRoutes: routes)
}

/// A counter shared between a route and a test.
final class Counter: Sendable {
    private let box = NIOLockedValueBox(0)
    func increment() { box.withLockedValue { $0 += 1 } }
    var value: Int { box.withLockedValue { $0 } }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(5), _ condition: @Sendable () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
