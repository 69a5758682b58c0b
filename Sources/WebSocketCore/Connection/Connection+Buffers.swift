extension Connection {
    /// Frees the buffer memory that no message, control frame or queued output is using right now: the
    /// reassembly buffer (when no fragmented or split message is being received), the control-frame slots and
    /// the empty output queue. For owners that keep large buffers between messages
    /// (``retainedReassemblyCapacity``) and call it once the connection has gone idle; buffers are allocated
    /// again on demand. A payload handed out by an earlier event is invalid afterwards.
    public mutating func releaseBuffers() {
        if inbound == nil {
            reassembly.removeAll(retainingAtMost: 0)
            releaseOnNextCall = false
        }
        if currentFrame == nil || currentFrame?.opcode.isControl == false {
            controlPayload.removeAll(retainingAtMost: 0)
        }
        if !hasPendingPong {
            pongSlot.removeAll(retainingAtMost: 0)
        }
        if output.count == 0 {
            output.removeAll(retainingAtMost: 0)
        }
    }
}
