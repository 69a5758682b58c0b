import ServerSentEvents

/// Why an ``EventSource`` stopped with an error. A stream the server ends with 204 No Content is not an error:
/// the sequence just ends.
public enum EventSourceError: Error, Sendable, CustomStringConvertible {
    /// The URL is not a usable `http://` or `https://` URL.
    case invalidURL(String)
    /// The server answered a status other than 200 (and 204): no reconnection (WHATWG HTML §9.2.3, "fail the
    /// connection").
    case badStatus(Int)
    /// A 200 response whose `Content-Type` is not `text/event-stream` (the value, or nil when absent): no
    /// reconnection.
    case wrongContentType(String?)
    /// The stream broke a limit of ``EventSource/Configuration/parser``: no reconnection (the same stream
    /// would break it again).
    case stream(EventStreamError)
    /// ``EventSource/Configuration/maxReconnectAttempts`` consecutive attempts failed; the last error.
    case gaveUp(lastError: String)
    /// `https://` needs the package trait `TLS`, which is off.
    case tlsUnavailable

    public var description: String {
        switch self {
        case .invalidURL(let reason): "invalid URL: \(reason)"
        case .badStatus(let status): "the server answered \(status) (not 200)"
        case .wrongContentType(let type): "the response's Content-Type is \(type ?? "missing"), not text/event-stream"
        case .stream(let error): "\(error)"
        case .gaveUp(let lastError): "gave up reconnecting: \(lastError)"
        case .tlsUnavailable: "https:// needs the package trait TLS"
        }
    }
}
