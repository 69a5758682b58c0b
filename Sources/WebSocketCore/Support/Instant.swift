/// A reading of a monotonic clock that the caller owns, in nanoseconds since an arbitrary fixed origin.
///
/// The core never reads a clock: the I/O layer passes the current time to ``Connection/tick(now:)`` (for
/// example `NIODeadline.now().uptimeNanoseconds` or `DispatchTime.now().uptimeNanoseconds`). All readings
/// given to one connection must come from the same clock.
public struct Instant: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    @inlinable
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    @inlinable
    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// `instant` moved forward by `duration`; negative durations count as zero, and the sum saturates.
    @inlinable
    public static func + (instant: Instant, duration: Duration) -> Instant {
        let (nanos, overflow) = instant.nanoseconds.addingReportingOverflow(duration.wholeNanoseconds)
        return Instant(nanoseconds: overflow ? .max : nanos)
    }

    public var description: String { "\(nanoseconds)ns" }
}

extension Duration {
    /// This duration in whole nanoseconds, clamped to `0...UInt64.max`.
    @usableFromInline
    var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        let (fromSeconds, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = fromSeconds.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow2 ? .max : sum
    }
}
