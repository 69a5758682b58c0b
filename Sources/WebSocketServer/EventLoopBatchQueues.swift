import NIOCore

/// The per-event-loop queues of a fan-out (``WebSocketGroups``, ``EventStreamBroadcaster``): what one message
/// becomes for the connections of one event loop waits in that loop's queue, in send order, and at most one
/// drain task per loop is scheduled (a sender faster than the loops never piles up tasks in front of accepting
/// and reading). Kept inside the owner's lock; the owner schedules the drains and closes the overloaded
/// recipients.
///
/// Overload: when a loop's queued bytes exceed `limit`, its queue is dropped and returned; the owner closes those
/// recipients (they resume or reconnect). Only a backlog is an overload: one message on a loop with nothing
/// queued is accepted whatever its size (the per-connection limits judge it), as the connections' own buffers
/// accept their first message.
struct EventLoopBatchQueues<Batch: Sendable>: Sendable {
    private struct Queue: Sendable {
        var batches: [Batch] = []
        var bytes = 0
        var drainScheduled = false
    }

    /// What ``append(_:bytes:to:limit:)`` did.
    struct Appended {
        /// The loop's queue past its limit, dropped (the new batch included); empty when it was queued.
        var dropped: [Batch]
        /// Whether the caller must schedule a drain of this loop now (none was pending).
        var scheduleDrain: Bool
    }

    private var queues: [ObjectIdentifier: Queue] = [:]

    /// Queues `batch` (`bytes` long: counted once however many recipients it has) for `loop`.
    mutating func append(_ batch: Batch, bytes: Int, to loop: any EventLoop, limit: Int) -> Appended {
        let key = ObjectIdentifier(loop)
        var queue = queues[key] ?? Queue()
        queue.batches.append(batch)
        queue.bytes += bytes
        var dropped: [Batch] = []
        if queue.bytes > limit, queue.bytes - bytes > 0 {
            dropped = queue.batches
            queue.batches = []
            queue.bytes = 0
        }
        var scheduleDrain = false
        if !queue.drainScheduled, !queue.batches.isEmpty {
            queue.drainScheduled = true
            scheduleDrain = true
        }
        queues[key] = queue
        return Appended(dropped: dropped, scheduleDrain: scheduleDrain)
    }

    /// Everything queued for `loop`, in order; the loop then has no drain pending.
    mutating func take(for loop: any EventLoop) -> [Batch] {
        queues.removeValue(forKey: ObjectIdentifier(loop))?.batches ?? []
    }

    /// The bytes queued for `loop`.
    func queuedBytes(for loop: any EventLoop) -> Int {
        queues[ObjectIdentifier(loop)]?.bytes ?? 0
    }
}
