import NIOCore
import WebSocketCore
import WebSocketNIO
import WebSocketTestSupport

/// Echoes every message with the delegate API (the fast path, as ws-echo).
public struct EchoDelegate: WebSocketDelegate {
    public init() {}

    public func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        try? webSocket.send(kind, copying: payload)
    }
}

/// Deterministic, incompressible test payloads (see ``seededBytes(_:seed:)``).
public func testPayload(_ count: Int, seed: UInt64 = 7) -> ByteBuffer {
    ByteBuffer(bytes: seededBytes(count, seed: seed))
}
