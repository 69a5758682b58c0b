import NIOConcurrencyHelpers

/// A FIFO lock that may be held across suspension points: callers of ``enter()`` get it one at a time, in call
/// order. Waiters are not cancellable, so every holder must bound its work.
///
/// Package-internal: shared by the server's event-history appends and group-interest ordering and the hub
/// client's ordered writes.
package final class AsyncSerialGate: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    package init() {}

    /// Waits for the gate, then holds it until ``leave()``.
    package func enter() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state in
                if state.locked {
                    state.waiters.append(continuation)
                    return false
                }
                state.locked = true
                return true
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Hands the gate to the next waiter, or opens it.
    package func leave() {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.locked = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
