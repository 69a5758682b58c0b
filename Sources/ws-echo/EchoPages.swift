import ArgumentParser
import NIOConcurrencyHelpers
import WebSocketServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ws-echo's plain HTTP answers with HTTP/2 on: `/page` (an HTML file for browser tests) and `/stats` (the
/// server's HTTP/2 counters as JSON, so a test can prove from the server side that WebSockets ran over HTTP/2).
enum EchoPages {
    static func server(
        configuration: Server.Configuration,
        routes: [WebSocketRoute],
        eventStreamRoutes: [EventStreamRoute] = [],
        pageFile: String?
    ) throws -> Server {
        let page: [UInt8]?
        if let pageFile {
            guard let bytes = readFile(pageFile) else { throw ValidationError("cannot read --page \(pageFile)") }
            page = bytes
        } else {
            page = nil
        }
        let box = NIOLockedValueBox<Server?>(nil)
        let server = Server(configuration: configuration, routes: routes, eventStreamRoutes: eventStreamRoutes) {
            request,
            _ in
            switch request.path ?? "" {
            case "/page":
                guard let page else { return .notFound }
                var response = HTTPResponse(status: .ok)
                response.headerFields[.contentType] = "text/html; charset=utf-8"
                return PlainHTTPResponse(response: response, body: page)
            case "/stats":
                let stats = box.withLockedValue { $0 }?.http2Statistics ?? .init()
                let json = """
                    {"connections":\(stats.connections),"streams":\(stats.streams),\
                    "webSocketsOpened":\(stats.webSocketsOpened),"openWebSockets":\(stats.openWebSockets),\
                    "eventStreamsOpened":\(stats.eventStreamsOpened),"openEventStreams":\(stats.openEventStreams)}
                    """
                var response = HTTPResponse(status: .ok)
                response.headerFields[.contentType] = "application/json"
                return PlainHTTPResponse(response: response, body: Array(json.utf8))
            default:
                return .notFound
            }
        }
        box.withLockedValue { $0 = server }
        return server
    }

    /// The whole file, or nil.
    private static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            if bytes.count > 16 * 1024 * 1024 { return nil }
        }
        return bytes
    }
}
