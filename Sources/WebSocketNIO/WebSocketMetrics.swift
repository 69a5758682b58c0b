import CoreMetrics
import WebSocketCore

/// The counters a WebSocket server or client reports through swift-metrics.
///
/// Made once per server (or client configuration) from a `MetricsFactory`; with swift-metrics' default
/// (no backend bootstrapped) every call is a no-op. Labels, all prefixed with `labelPrefix` (default
/// `websocket`):
///
/// | label | type | dimensions | meaning |
/// |---|---|---|---|
/// | `websocket_connections_open` | meter | | upgraded connections now open |
/// | `websocket_upgrades_total` | counter | `status` | opening handshakes answered: `101`, or the refusal's status |
/// | `websocket_messages_total` | counter | `direction` (`in`, `out`) | data messages (whole, or first fragments) |
/// | `websocket_bytes_total` | counter | `direction` | message payload bytes, before compression |
/// | `websocket_close_codes_total` | counter | `code`, `origin` (`local`, `remote`) | how connections ended |
/// | `websocket_deflate_ratio` | recorder | | compressed / uncompressed payload length of each deflated message sent |
public final class WebSocketMetrics: Sendable {
    private let factory: any MetricsFactory
    private let prefix: String
    let openConnections: Meter
    let messagesIn: Counter
    let messagesOut: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    let deflateRatio: Recorder

    /// Creates the metrics.
    ///
    /// - Parameters:
    ///   - factory: the backend; default: whatever `MetricsSystem` was bootstrapped with (a no-op if nothing).
    ///   - labelPrefix: the first word of every label. Default `websocket`.
    public init(factory: any MetricsFactory = MetricsSystem.factory, labelPrefix: String = "websocket") {
        self.factory = factory
        self.prefix = labelPrefix
        self.openConnections = Meter(label: "\(labelPrefix)_connections_open", factory: factory)
        self.messagesIn = Counter(
            label: "\(labelPrefix)_messages_total", dimensions: [("direction", "in")], factory: factory)
        self.messagesOut = Counter(
            label: "\(labelPrefix)_messages_total", dimensions: [("direction", "out")], factory: factory)
        self.bytesIn = Counter(
            label: "\(labelPrefix)_bytes_total", dimensions: [("direction", "in")], factory: factory)
        self.bytesOut = Counter(
            label: "\(labelPrefix)_bytes_total", dimensions: [("direction", "out")], factory: factory)
        self.deflateRatio = Recorder(label: "\(labelPrefix)_deflate_ratio", factory: factory)
    }

    /// Counts an answered opening handshake: `status` 101 for an upgrade, else the refusal's status code.
    public func recordUpgrade(status: Int) {
        Counter(label: "\(self.prefix)_upgrades_total", dimensions: [("status", String(status))], factory: self.factory)
            .increment()
    }

    /// Counts how a connection ended: `remote` when the peer's close frame (or its TCP close) decided the code,
    /// `local` when we failed or closed it.
    func recordClose(_ code: CloseCode, remote: Bool) {
        Counter(
            label: "\(self.prefix)_close_codes_total",
            dimensions: [("code", String(code.rawValue)), ("origin", remote ? "remote" : "local")],
            factory: self.factory
        ).increment()
    }
}
