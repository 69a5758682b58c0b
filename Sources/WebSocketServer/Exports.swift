// One import for a server user: the types this module's API exposes.
@_exported import HTTPTypes
@_exported import Logging
@_exported import NIOCore
@_exported import ServiceLifecycle
@_exported import UnixSignals
@_exported import WebSocketCore
@_exported import WebSocketDeflate
@_exported import WebSocketHandshake
@_exported import WebSocketNIO

#if TLS
@_exported import NIOSSL
#endif
