import NIOCore
import WebSocketCore
import WebSocketServer

/// Where a ``HubConnection`` reads and writes: a WebSocket, or one of the two HTTP transports of
/// TransportProtocols.md (Server-Sent Events and long polling), whose client-to-server half is `POST {hub}?id=…`.
enum HubConnectionTransport: Sendable {
    case webSocket(WebSocket)
    /// The `text/event-stream` response of the SSE `GET` (Text only: one event per hub message).
    case serverSentEvents(HubHTTPSession, EventStreamWriter)
    /// Polls take one queued hub message each.
    case longPolling(HubHTTPSession)

    /// Writes one framed hub message. Throws once the transport is gone.
    func send(_ kind: MessageKind, _ bytes: ByteBuffer) async throws {
        switch self {
        case .webSocket(let webSocket):
            try await webSocket.send(kind, bytes)
        case .serverSentEvents(let session, let writer):
            // One event per message; the encoder writes each line of the text as a `data:` line (JSON text holds
            // no raw line breaks, so this is one line ending with the record separator).
            do {
                try await writer.send(ServerSentEvent(data: String(decoding: bytes.readableBytesView, as: UTF8.self)))
            } catch {
                session.end(error: nil)
                throw error
            }
        case .longPolling(let session):
            guard await session.offer(bytes) else { throw HubConnectionError("The long polling connection ended.") }
        }
    }

    /// Writes framed hub messages in order: on a WebSocket with one hop to the event loop and one flush, a message
    /// to several connections as its shared frame; on the HTTP transports one by one. Throws once the transport
    /// is gone.
    func send(batch items: [HubOutbox.Item]) async throws {
        switch self {
        case .webSocket(let webSocket):
            try await webSocket.send(
                batch: items.map { item in item.shared.map { .shared($0) } ?? .payload(item.kind, item.bytes) })
        case .serverSentEvents, .longPolling:
            for item in items { try await send(item.kind, item.bytes) }
        }
    }

    /// Ends the transport after what was written (WebSocket close 1000; the SSE response ends; the pending poll
    /// is answered 204).
    func close() async {
        switch self {
        case .webSocket(let webSocket): await webSocket.close(code: .normalClosure)
        case .serverSentEvents(let session, _), .longPolling(let session): session.end(error: nil)
        }
    }

    /// Ends the transport at once (overflow).
    func abort() {
        switch self {
        case .webSocket(let webSocket): webSocket.channel.close(promise: nil)
        case .serverSentEvents(let session, _), .longPolling(let session): session.end(error: nil)
        }
    }

    var isLongPolling: Bool {
        if case .longPolling = self { return true }
        return false
    }
}
