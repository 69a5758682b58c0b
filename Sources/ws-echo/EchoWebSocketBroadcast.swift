import NIOConcurrencyHelpers
import WebSocketServer

/// ws-echo's `/ws-broadcast` route (with `--ws-broadcast`): the WebSocket twin of the `/broadcast` event stream,
/// for the fan-out benchmark (`Benchmarks/sse_fanout.py`). Every tick's payload goes to every connected
/// WebSocket as one text message; messages from the clients are ignored.
///
/// The payload `ByteBuffer` is built once per tick and shared; the engine has no API to send pre-encoded frame
/// bytes, so each WebSocket still encodes its own frame header (2 bytes below 126 bytes of payload) and, for
/// payloads up to `WebSocketConfiguration.smallPayloadCopyLimit` (1024 bytes by default), copies the payload
/// behind it into one outbound buffer; larger payloads are written by reference after the header (one
/// `writev`). Like ``EventStreamBroadcaster``, one task per event loop writes to that loop's WebSockets.
/// There is no slow-reader policy: a WebSocket that does not read queues messages without bound.
final class EchoWebSocketBroadcaster: Sendable {
    private let subscribers = NIOLockedValueBox([ObjectIdentifier: WebSocketSendHandle]())

    /// The number of WebSockets receiving the broadcast.
    var count: Int { subscribers.withLockedValue { $0.count } }

    /// The route: each WebSocket subscribes when it opens and leaves when it closes.
    func route() -> WebSocketRoute {
        WebSocketRoute(path: "/ws-broadcast", handler: .delegate { _ in Subscriber(broadcaster: self) })
    }

    /// Sends `payload` as one text message to every subscribed WebSocket.
    func publish(_ payload: ByteBuffer) {
        var byLoop: [ObjectIdentifier: (any EventLoop, [WebSocketSendHandle])] = [:]
        subscribers.withLockedValue { subscribers in
            for handle in subscribers.values {
                byLoop[ObjectIdentifier(handle.eventLoop), default: (handle.eventLoop, [])].1.append(handle)
            }
        }
        for (loop, handles) in byLoop.values {
            loop.execute {
                for handle in handles { handle.send(.text, payload) }
            }
        }
    }

    fileprivate func add(_ context: WebSocketDelegateContext) {
        let handle = context.sendHandle
        subscribers.withLockedValue { $0[ObjectIdentifier(context.channel)] = handle }
    }

    fileprivate func remove(_ context: WebSocketDelegateContext) {
        _ = subscribers.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(context.channel)) }
    }

    private struct Subscriber: WebSocketDelegate {
        let broadcaster: EchoWebSocketBroadcaster

        func webSocketDidOpen(_ webSocket: WebSocketDelegateContext) {
            broadcaster.add(webSocket)
        }

        func webSocket(
            _ webSocket: WebSocketDelegateContext,
            didReceiveMessage kind: MessageKind,
            payload: UnsafeRawBufferPointer
        ) {}

        func webSocket(_ webSocket: WebSocketDelegateContext, didCloseWith status: CloseStatus) {
            broadcaster.remove(webSocket)
        }
    }
}
