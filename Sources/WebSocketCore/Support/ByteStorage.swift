/// A growable byte buffer with a stable address, owned by one ``Connection``.
///
/// It backs the borrowed payloads that ``Connection`` hands out (reassembled messages, control payloads split
/// across reads) and the queue of bytes to send. A class, so that a pointer to its bytes stays valid while the
/// connection is not mutated; its capacity only grows up to what the configured limits allow.
@usableFromInline
final class ByteStorage {
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var count = 0
    private(set) var capacity = 0

    /// Growth stops at this many bytes unless a single append needs more (the owner enforces its limits
    /// before appending, so this keeps capacity within the configured message limit).
    let maxCapacity: Int

    init(maxCapacity: Int = .max) { self.maxCapacity = maxCapacity }

    deinit { base?.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Makes room for `additional` more bytes and returns where they go; `count` grows by `additional`.
    func appendUninitialized(_ additional: Int) -> UnsafeMutableRawBufferPointer {
        reserve(count + additional)
        let start = (base.unsafelyUnwrapped) + count
        count += additional
        return UnsafeMutableRawBufferPointer(start: start, count: additional)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, let source = bytes.baseAddress else { return }
        appendUninitialized(bytes.count).baseAddress.unsafelyUnwrapped.copyMemory(
            from: source, byteCount: bytes.count)
    }

    func append(_ byte: UInt8) {
        appendUninitialized(1)[0] = byte
    }

    /// Empties the buffer; frees its memory when it grew above `retainedCapacity` bytes.
    func removeAll(retainingAtMost retainedCapacity: Int) {
        count = 0
        if capacity > retainedCapacity {
            base?.deallocate()
            base = nil
            capacity = 0
        }
    }

    /// Ensures room for `needed` bytes in total without further allocation.
    func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        var newCapacity = max(64, capacity)
        while newCapacity < needed { newCapacity = newCapacity > Int.max / 2 ? needed : newCapacity * 2 }
        newCapacity = max(needed, min(newCapacity, maxCapacity))
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        if let base {
            newBase.copyMemory(from: base, byteCount: count)
            base.deallocate()
        }
        base = newBase
        capacity = newCapacity
    }
}
