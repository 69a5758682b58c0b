import NIOConcurrencyHelpers

/// A backplane inside one process: several servers (or endpoints) sharing one ``Bus``.
///
/// What tests and single-process deployments use: it follows the ``Backplane`` contract exactly (own
/// publications are not delivered back; group, connection and user messages reach only servers with a local
/// interest), delivers synchronously in publish order, and never loses a message.
public final class InProcessBackplane: Backplane {
    /// The shared medium of the servers of one process.
    public final class Bus: Sendable {
        fileprivate struct Scope {
            var receiver: any BackplaneReceiver
            var connections: Set<String> = []
            var users: [String: Int] = [:]
            var groups: Set<String> = []
        }

        fileprivate struct Member {
            var scopes: [String: Scope] = [:]
        }

        fileprivate let members = NIOLockedValueBox([String: Member]())

        public init() {}
    }

    public let serverId: String
    private let bus: Bus

    /// - Parameters:
    ///   - serverId: unique on `bus`.
    ///   - bus: the medium shared with the other servers; a new one (this server alone) by default.
    public init(serverId: String, bus: Bus = Bus()) {
        self.serverId = serverId
        self.bus = bus
    }

    private func withScope(_ scope: String, _ body: (inout Bus.Scope) -> Void) {
        bus.members.withLockedValue { members in
            guard var entry = members[serverId]?.scopes[scope] else { return }
            body(&entry)
            members[serverId]?.scopes[scope] = entry
        }
    }

    public func register(scope: String, receiver: any BackplaneReceiver) async throws {
        bus.members.withLockedValue { members in
            members[serverId, default: Bus.Member()].scopes[scope] = Bus.Scope(receiver: receiver)
        }
    }

    public func unregister(scope: String) async {
        bus.members.withLockedValue { members in
            members[serverId]?.scopes[scope] = nil
        }
    }

    public func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {
        withScope(scope) { entry in
            entry.connections.insert(connectionId)
            if let userId { entry.users[userId, default: 0] += 1 }
        }
    }

    public func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {
        withScope(scope) { entry in
            entry.connections.remove(connectionId)
            if let userId, let count = entry.users[userId] {
                entry.users[userId] = count > 1 ? count - 1 : nil
            }
        }
    }

    public func localGroupJoined(_ scope: String, group: String) async {
        withScope(scope) { $0.groups.insert(group) }
    }

    public func localGroupLeft(_ scope: String, group: String) async {
        withScope(scope) { $0.groups.remove(group) }
    }

    public func publish(_ message: BackplaneMessage, scope: String) async throws {
        let receivers = try bus.members.withLockedValue { members -> [any BackplaneReceiver] in
            guard members[serverId]?.scopes[scope] != nil else {
                throw BackplaneError(.unknownScope, "Scope '\(scope)' is not registered on server '\(serverId)'.")
            }
            var receivers: [any BackplaneReceiver] = []
            for (id, member) in members where id != serverId {
                guard let entry = member.scopes[scope] else { continue }
                let interested =
                    switch message.target {
                    case .all: true
                    case .group(let name): entry.groups.contains(name)
                    case .connection(let id): entry.connections.contains(id)
                    case .user(let id): entry.users[id] != nil
                    }
                if interested { receivers.append(entry.receiver) }
            }
            return receivers
        }
        for receiver in receivers { receiver.receive(message) }
    }

    public func requestGroupChange(
        _ change: GroupMembershipChange,
        connectionId: String,
        group: String,
        scope: String,
        timeout: Duration
    ) async throws {
        let holders = try bus.members.withLockedValue { members -> [any BackplaneReceiver] in
            guard members[serverId]?.scopes[scope] != nil else {
                throw BackplaneError(.unknownScope, "Scope '\(scope)' is not registered on server '\(serverId)'.")
            }
            return members.values.compactMap { member in
                guard let entry = member.scopes[scope], entry.connections.contains(connectionId) else { return nil }
                return entry.receiver
            }
        }
        for receiver in holders where await receiver.applyGroupChange(change, connectionId: connectionId, group: group) {
            return
        }
        throw BackplaneError(
            .acknowledgementTimeout,
            "No server of scope '\(scope)' holds connection '\(connectionId)'."
        )
    }
}
