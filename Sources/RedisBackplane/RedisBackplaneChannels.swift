import Backplane

/// The channel names of one backplane, laid out like ASP.NET Core SignalR's Redis backplane:
/// `{prefix}:{scope}:all`, `{prefix}:{scope}:group:{name}`, `{prefix}:{scope}:connection:{id}`,
/// `{prefix}:{scope}:user:{id}`, `{prefix}:{scope}:internal:groups` (group-change requests) and
/// `{prefix}:internal:ack:{serverId}` (their acknowledgements).
///
/// Names are joined with `:` and not escaped; a receiver routes by the scope and target inside each envelope,
/// not by parsing the channel name, so names containing `:` cannot be misrouted (at worst two names share a
/// channel and a server receives messages it then ignores).
public struct RedisBackplaneChannels: Sendable, Hashable {
    public var prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    public func all(scope: String) -> String { "\(prefix):\(scope):all" }
    public func group(_ name: String, scope: String) -> String { "\(prefix):\(scope):group:\(name)" }
    public func connection(_ id: String, scope: String) -> String { "\(prefix):\(scope):connection:\(id)" }
    public func user(_ id: String, scope: String) -> String { "\(prefix):\(scope):user:\(id)" }
    public func groupChanges(scope: String) -> String { "\(prefix):\(scope):internal:groups" }
    public func acknowledgements(serverId: String) -> String { "\(prefix):internal:ack:\(serverId)" }

    /// The channel a message for `target` is published on.
    public func channel(for target: BackplaneTarget, scope: String) -> String {
        switch target {
        case .all: all(scope: scope)
        case .group(let name): group(name, scope: scope)
        case .connection(let id): connection(id, scope: scope)
        case .user(let id): user(id, scope: scope)
        }
    }
}
