/// Bounds applied by every decoder in this module. Input above a bound is refused with a typed
/// ``HubProtocolError`` before anything proportional to the claimed size is allocated; nothing is truncated.
public struct HubProtocolLimits: Sendable, Hashable {
    /// The largest message in bytes: a JSON message without its 0x1E separator, a MessagePack body without its
    /// length prefix, a handshake request. Default 32 KiB (32 768 bytes), ASP.NET Core's
    /// `HubOptions.MaximumReceiveMessageSize`. Policy: ``HubProtocolError/Code/messageTooLarge``; the
    /// hub server closes the connection with an error.
    public var maximumMessageSize: Int
    /// The deepest nesting of arrays/objects/maps inside one message, counting the message itself as depth 1.
    /// Default 64 (System.Text.Json's default). Policy: ``HubProtocolError/Code/depthLimitExceeded``. Bounds the
    /// decoders' recursion, so hostile input cannot exhaust the stack.
    public var maximumDepth: Int
    /// The most elements of one array, object or map. Default 16 384. Policy:
    /// ``HubProtocolError/Code/collectionTooLarge``. A MessagePack header claiming more elements than there are
    /// bytes left is refused as ``HubProtocolError/Code/truncated`` before any storage is reserved.
    public var maximumCollectionCount: Int

    public init(maximumMessageSize: Int = 32 * 1024, maximumDepth: Int = 64, maximumCollectionCount: Int = 16_384) {
        self.maximumMessageSize = maximumMessageSize
        self.maximumDepth = maximumDepth
        self.maximumCollectionCount = maximumCollectionCount
    }

    /// 32 KiB messages, depth 64, 16 384 elements per collection.
    public static let `default` = HubProtocolLimits()
}
