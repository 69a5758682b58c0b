import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if TLS
    import NIOSSL
#endif

/// The smallest HTTP/1.1 client that negotiate needs: one `POST` with an empty body on a fresh connection
/// (`Connection: close`), the status and a body of at most 64 KiB back.
enum HubNegotiatePost {
    struct Response: Sendable {
        var status: Int
        var body: [UInt8]
    }

    static let maximumBodyLength = 64 * 1024

    #if TLS
        typealias TLSSettings = TLSConfiguration
    #else
        typealias TLSSettings = Void
    #endif

    /// Sends `POST target` to `url`'s host and port.
    /// - Throws: ``HubClientError`` `.negotiateFailed` (connect, TLS, timeout, malformed or oversized answer).
    static func post(
        url: HubURL, target: String, headers: [(String, String)], timeout: Duration, tls: TLSSettings,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Response {
        let eventLoop = eventLoopGroup.next()
        let once = OneShot(promise: eventLoop.makePromise(of: Response.self))
        #if TLS
            let sslContext: NIOSSLContext?
            if url.secure {
                do { sslContext = try NIOSSLContext(configuration: tls) } catch {
                    throw HubClientError(.negotiateFailed, "TLS configuration: \(error)")
                }
            } else {
                sslContext = nil
            }
        #else
            guard !url.secure else { throw HubClientError(.negotiateFailed, "https needs the package trait TLS") }
        #endif
        let host = url.host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeAmount(timeout))
            .channelInitializer { channel in
                do {
                    #if TLS
                        if let sslContext {
                            let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
                            let handler = try NIOSSLClientHandler(
                                context: sslContext, serverHostname: isAddress ? nil : host)
                            try channel.pipeline.syncOperations.addHandler(handler)
                        }
                    #endif
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(once: once))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: url.host, port: url.port).get()
        } catch {
            once.fail(HubClientError(.negotiateFailed, "connect to \(url.hostHeader): \(error)"))
            _ = try? await once.promise.futureResult.get()
            throw HubClientError(.negotiateFailed, "connect to \(url.hostHeader): \(error)")
        }
        var fields = HTTPHeaders()
        fields.add(name: "Host", value: url.hostHeader)
        fields.add(name: "Content-Length", value: "0")
        fields.add(name: "Connection", value: "close")
        for (name, value) in headers { fields.add(name: name, value: value) }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target, headers: fields)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timer = eventLoop.scheduleTask(in: timeAmount(timeout)) {
            once.fail(HubClientError(.negotiateFailed, "no answer within \(timeout)"))
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        return try await once.promise.futureResult.get()
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// A promise completed at most once, from any thread.
    final class OneShot: Sendable {
        let promise: EventLoopPromise<Response>
        private let done = NIOLockedValueBox(false)

        init(promise: EventLoopPromise<Response>) {
            self.promise = promise
        }

        private func claim() -> Bool {
            done.withLockedValue { done in
                defer { done = true }
                return !done
            }
        }

        func succeed(_ response: Response) {
            if claim() { promise.succeed(response) }
        }

        func fail(_ error: any Error) {
            if claim() { promise.fail(error) }
        }
    }

    /// Collects the response head and body; completes on `.end`, on an error, or when the connection ends.
    final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        let once: OneShot
        var status: Int?
        var body: [UInt8] = []

        init(once: OneShot) {
            self.once = once
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
            case .body(let buffer):
                guard body.count + buffer.readableBytes <= HubNegotiatePost.maximumBodyLength else {
                    once.fail(HubClientError(.negotiateFailed, "negotiate body over 64 KiB"))
                    context.close(promise: nil)
                    return
                }
                body += buffer.readableBytesView
            case .end:
                guard let status else {
                    once.fail(HubClientError(.negotiateFailed, "no response head"))
                    return
                }
                once.succeed(Response(status: status, body: body))
                context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            once.fail(HubClientError(.negotiateFailed, "\(error)"))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            once.fail(HubClientError(.negotiateFailed, "the connection closed before the response ended"))
            context.fireChannelInactive()
        }
    }
}
