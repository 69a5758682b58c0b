#if TLS
import NIOCore
import NIOSSL
import NIOTLS
import WebSocketHandshake

/// Checks the server's certificate against the URL's host when TLS runs inside a proxy tunnel, before the
/// opening request (which may carry `Authorization`) is sent.
///
/// Why: NIOSSL's own check accepts a certificate whose IP-address subjectAltName equals the socket's peer
/// address. Through a proxy that peer is the proxy, so a certificate issued for the proxy's IP address would pass
/// for any server name. Through a proxy the client therefore turns NIOSSL's name check off (the chain is still
/// verified by BoringSSL) and checks here instead, RFC 6125 style: for a host name, the dNSName entries
/// (ASCII case-insensitive, a `*` only as the whole left-most label matching one label); for an IP literal, the
/// iPAddress entries. The common name is not consulted (RFC 6125 §6.4.4: only without any subjectAltName,
/// which public CAs no longer issue).
///
/// It holds back `channelActive` from the upgrade handler until the TLS handshake completed and the name
/// matched, then removes itself.
final class ProxiedServerIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let url: WebSocketURL
    private let fail: @Sendable (WebSocketClientError) -> Void

    init(url: WebSocketURL, fail: @escaping @Sendable (WebSocketClientError) -> Void) {
        self.url = url
        self.fail = fail
    }

    func channelActive(context: ChannelHandlerContext) {
        // Held back until the server's identity is checked.
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        guard let certificate, Self.certificate(certificate, matches: self.url) else {
            self.fail(.closedDuringHandshake(ServerIdentityError(host: self.url.host)))
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
        context.fireChannelActive()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Whether the certificate's subjectAltName entries name `url`'s host.
    static func certificate(_ certificate: NIOSSLCertificate, matches url: WebSocketURL) -> Bool {
        let address = url.hostAddressBytes
        for name in certificate._subjectAlternativeNames() {
            switch name.nameType {
            case .dnsName where address == nil:
                if self.dnsName(Array(name.contents), matches: url.host) { return true }
            case .ipAddress:
                if let address, Array(name.contents) == address { return true }
            default:
                continue
            }
        }
        return false
    }

    /// RFC 6125 §6.4.1 and §6.4.3: ASCII case-insensitive equality, a wildcard only as the whole left-most
    /// label, matching exactly one non-empty label.
    static func dnsName(_ pattern: [UInt8], matches host: String) -> Bool {
        func lowered(_ bytes: some Sequence<UInt8>) -> [UInt8] {
            var result = bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
            if result.last == UInt8(ascii: ".") { result.removeLast() }
            return result
        }
        let pattern = lowered(pattern)
        let host = lowered(host.utf8)
        guard !pattern.isEmpty, !host.isEmpty else { return false }
        if pattern.starts(with: "*.".utf8) {
            guard let dot = host.firstIndex(of: UInt8(ascii: ".")), dot > 0 else { return false }
            return host[dot...].elementsEqual(pattern.dropFirst())
        }
        return pattern == host
    }
}

/// The server's certificate does not name the host of the URL (checked by the client when TLS runs through a
/// proxy tunnel).
struct ServerIdentityError: Error, CustomStringConvertible {
    let host: String
    var description: String { "the server's certificate is not valid for '\(host)'" }
}
#endif
