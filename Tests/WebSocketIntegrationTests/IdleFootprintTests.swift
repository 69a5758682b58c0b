import Logging
import NIOCore
import NIOEmbedded
import Testing
import WebSocketCore
import WebSocketNIOTestSupport
@testable import WebSocketServer
import WebSocketTestSupport

@testable import WebSocketNIO

/// Echoes every message, as ws-echo does.
private struct Echo: WebSocketDelegate {
    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {
        try? webSocket.send(kind, copying: payload)
    }
}

/// Keeps the delegate context it is given, to ask for `closed` at a chosen moment.
private final class ContextKeeper: WebSocketDelegate, @unchecked Sendable {
    var context: WebSocketDelegateContext?
    var closedFromDidClose: EventLoopFuture<CloseStatus>?

    func webSocketDidOpen(_ webSocket: WebSocketDelegateContext) {
        self.context = webSocket
    }

    func webSocket(
        _ webSocket: WebSocketDelegateContext,
        didReceiveMessage kind: MessageKind,
        payload: UnsafeRawBufferPointer
    ) {}

    func webSocket(_ webSocket: WebSocketDelegateContext, didCloseWith status: CloseStatus) {
        self.closedFromDidClose = webSocket.closed
    }
}

/// What an idle connection holds is kept small (issue #12): the close promise is made only when asked for, the
/// logger is not copied per connection, the default upgrade decision runs on the event loop, and the first
/// receive buffer is sized by `Server.Configuration.initialReceiveBufferSize`. These tests pin the behaviour that
/// must not change with it.
@Suite(.timeLimit(.minutes(1)))
struct IdleFootprintTests {
    private static func makeChannel(_ delegate: some WebSocketDelegate) throws -> (EmbeddedChannel, WebSocketHandler) {
        let channel = EmbeddedChannel()
        let context = try channel.pipeline.syncOperations.addWebSocketDelegate(
            role: .server,
            configuration: WebSocketConfiguration(),
            delegate: delegate
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return (channel, context.handler)
    }

    @Test("no close promise until someone asks; asked before the end, it completes with the final status")
    func closedAskedBeforeTheEnd() throws {
        let (channel, handler) = try Self.makeChannel(Echo())
        #expect(handler.closedPromise == nil)
        let closed = handler.closed
        #expect(handler.closedPromise != nil)
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(opcode: 0x8, [0x03, 0xE8])))
        _ = try channel.finish(acceptAlreadyClosed: true)
        let status = try closed.wait()
        #expect(status.code == .normalClosure)
    }

    @Test("asked after the end, or from didCloseWith, `closed` still completes with the final status")
    func closedAskedAfterTheEnd() throws {
        let keeper = ContextKeeper()
        let (channel, handler) = try Self.makeChannel(keeper)
        try channel.writeInbound(ByteBuffer(bytes: maskedFrame(opcode: 0x8, [0x03, 0xE9])))
        _ = try channel.finish(acceptAlreadyClosed: true)
        #expect(handler.finalStatus?.code == .goingAway)
        let fromDidClose = try #require(keeper.closedFromDidClose)
        #expect(try fromDidClose.wait().code == .goingAway)
        let context = try #require(keeper.context)
        #expect(try context.closed.wait().code == .goingAway)
    }

    /// NIO traps on an initial receive buffer under its minimum: the server clamps it. A request head far larger
    /// than the first buffer is read in several reads and the upgrade still succeeds.
    @Test("a tiny initialReceiveBufferSize is clamped, and a 4 KiB handshake still upgrades", arguments: [0, 64, 1024])
    func smallInitialReceiveBuffer(size: Int) async throws {
        var configuration = Server.Configuration(port: 0)
        configuration.initialReceiveBufferSize = size
        let route = WebSocketRoute(path: "/echo", handler: .delegate { _ in Echo() })
        try await Server(configuration: configuration, routes: [route]).withRunning { server in
            let client = try await RawTestClient.connect(port: server.port)
            let cookie = "Cookie: session=" + String(repeating: "a", count: 4096)
            try await client.send(upgradeRequest(path: "/echo", extra: [cookie]))
            #expect(await client.waitForResponse()?.status == 101)
            try await client.send(maskedFrame(opcode: 0x2, [1, 2, 3]))
            let frame = await client.waitForFrame()
            #expect(frame?.payload == [1, 2, 3])
            await client.close()
        }
    }

    @Test("a route without a decision hook accepts without a subprotocol; one with a hook still decides")
    func defaultDecision() async throws {
        let plain = WebSocketRoute(path: "/plain", handler: .delegate { _ in Echo() })
        #expect(plain.decisionHook == nil)
        let chooser = WebSocketRoute(
            path: "/chat",
            shouldUpgrade: { request, _ in
                request.subprotocols.contains("chat") ? .accept(subprotocol: "chat") : .reject(status: .forbidden)
            },
            handler: .delegate { _ in Echo() }
        )
        try await Server(configuration: Server.Configuration(port: 0), routes: [plain, chooser]).withRunning {
            server in
            let first = try await RawTestClient.connect(port: server.port)
            try await first.send(upgradeRequest(path: "/plain", extra: ["Sec-WebSocket-Protocol: chat"]))
            let accepted = await first.waitForResponse()
            #expect(accepted?.status == 101)
            #expect(accepted?.header("Sec-WebSocket-Protocol") == nil)
            await first.close()

            let second = try await RawTestClient.connect(port: server.port)
            try await second.send(upgradeRequest(path: "/chat", extra: ["Sec-WebSocket-Protocol: chat"]))
            let chosen = await second.waitForResponse()
            #expect(chosen?.status == 101)
            #expect(chosen?.header("Sec-WebSocket-Protocol") == "chat")
            await second.close()

            let third = try await RawTestClient.connect(port: server.port)
            try await third.send(upgradeRequest(path: "/chat"))
            #expect(await third.waitForResponse()?.status == 403)
            await third.close()
        }
    }
}
