import ArgumentParser
import EventSourceClient
import Foundation
import HTTPTypes
import Logging

@main
struct SSEClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sse-client",
        abstract: "Prints each Server-Sent Event of a URL as one JSON line, reconnecting like a browser.",
        discussion: """
            Each event is printed as {"type": ..., "id": ..., "data": ..., "retry": ...}: its type, the last \
            event ID, its data, and the reconnection time in milliseconds the server set (null when it set \
            none). When the connection ends the client waits (the server's retry, default 3000 ms, growing on \
            failures) and reconnects with Last-Event-ID. It exits 0 after --max-events events or on 204 No \
            Content, and 1 on a status other than 200, a wrong Content-Type or a stream that breaks a limit.
            """
    )

    @Argument(help: "An http:// or https:// URL.")
    var url: String

    @Option(name: .customLong("header"), help: "A request header field 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "The Last-Event-ID for the first connection.")
    var lastEventId = ""

    @Option(help: "Exit after this many events (0: never).")
    var maxEvents = 0

    @Option(help: "Give up after this many consecutive failed attempts (default: never).")
    var maxAttempts: Int?

    @Option(help: "Reconnection time in milliseconds until the server sends retry.")
    var reconnectionTime = 3000

    @Flag(help: "Also print comments and opened connections ({\"type\": \"comment\"|\"open\", ...}) to stderr.")
    var verbose = false

    func validate() throws {
        for header in headers where !header.contains(":") { throw ValidationError("--header needs 'Name: value'") }
        if maxEvents < 0 { throw ValidationError("--max-events must be >= 0") }
        if reconnectionTime < 0 { throw ValidationError("--reconnection-time must be >= 0") }
    }

    func run() async throws {
        var configuration = EventSource.Configuration(lastEventID: lastEventId)
        configuration.reconnectionTime = .milliseconds(reconnectionTime)
        configuration.maxReconnectAttempts = maxAttempts
        for header in headers {
            let parts = header.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let name = HTTPField.Name(String(parts[0]).trimmingCharacters(in: .whitespaces))
            else { throw ValidationError("bad --header '\(header)'") }
            configuration.headerFields.append(
                HTTPField(name: name, value: String(parts[1]).trimmingCharacters(in: .whitespaces))
            )
        }
        let source: EventSource
        do {
            source = try EventSource(url: url, configuration: configuration)
        } catch {
            throw ValidationError("\(error)")
        }
        var retry: Int? = nil
        var printed = 0
        do {
            for try await output in source {
                switch output {
                case .event(let event):
                    let line: [String: Any] = [
                        "type": event.type, "id": event.lastEventID, "data": event.data,
                        "retry": retry.map { $0 as Any } ?? NSNull(),
                    ]
                    FileHandle.standardOutput.write(Data((try Self.json(line) + "\n").utf8))
                    printed += 1
                    if maxEvents > 0, printed >= maxEvents { return }
                case .retry(let milliseconds):
                    retry = milliseconds
                case .comment(let text):
                    if verbose { Self.printError(try Self.json(["type": "comment", "data": text])) }
                case .open:
                    if verbose { Self.printError(try Self.json(["type": "open"])) }
                }
            }
        } catch let error as EventSourceError {
            Self.printError("sse-client: \(error)")
            throw ExitCode(1)
        }
    }

    static func json(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
