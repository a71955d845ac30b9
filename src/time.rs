//! The crate's own clock type. Time is an input: the endpoint never reads a
//! clock, the caller passes `now` into every call.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point in time, in microseconds since an arbitrary epoch chosen by the
/// caller (for example the moment the program started).
///
/// All arithmetic saturates, so no input can make it overflow or panic.
///
/// ```
/// use coap_proto::Instant;
/// use core::time::Duration;
/// let t = Instant::from_millis(1_500);
/// assert_eq!(t + Duration::from_millis(500), Instant::from_secs(2));
/// assert_eq!(Instant::from_secs(2) - t, Duration::from_millis(500));
/// assert_eq!(t - Instant::from_secs(9), Duration::ZERO); // saturates
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "_internal", derive(arbitrary::Arbitrary))]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);
    /// The largest representable instant.
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `us` microseconds after the epoch.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// assert_eq!(Instant::from_micros(1_000), Instant::from_millis(1));
    /// ```
    #[must_use]
    pub const fn from_micros(us: u64) -> Self {
        Self(us)
    }

    /// An instant `ms` milliseconds after the epoch.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// assert_eq!(Instant::from_millis(2).as_micros(), 2_000);
    /// ```
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1_000))
    }

    /// An instant `s` seconds after the epoch.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// assert_eq!(Instant::from_secs(1).as_millis(), 1_000);
    /// ```
    #[must_use]
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// assert_eq!(Instant::from_micros(7).as_micros(), 7);
    /// ```
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the epoch.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// assert_eq!(Instant::from_micros(1_999).as_millis(), 1);
    /// ```
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// The time since the epoch.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// # use core::time::Duration;
    /// assert_eq!(Instant::from_secs(3).since_epoch(), Duration::from_secs(3));
    /// ```
    #[must_use]
    pub const fn since_epoch(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// # use core::time::Duration;
    /// let a = Instant::from_secs(1);
    /// assert_eq!(a.saturating_duration_since(Instant::from_secs(3)), Duration::ZERO);
    /// ```
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    ///
    /// ```
    /// # use coap_proto::Instant;
    /// # use core::time::Duration;
    /// assert_eq!(Instant::MAX.saturating_add(Duration::from_secs(1)), Instant::MAX);
    /// ```
    #[must_use]
    pub const fn saturating_add(self, d: Duration) -> Instant {
        let us = d.as_micros();
        let us = if us > u64::MAX as u128 {
            u64::MAX
        } else {
            us as u64
        };
        Instant(self.0.saturating_add(us))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Maps `std::time::Instant` onto the crate's [`Instant`] through a base
/// taken once at start-up (feature `std`). Drivers own the clock; the
/// endpoint only ever sees the mapped values.
///
/// ```
/// use coap_proto::time::Clock;
/// let clock = Clock::new(std::time::Instant::now());
/// let t = clock.to_instant(std::time::Instant::now());
/// assert!(t.as_micros() < 60_000_000);
/// ```
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: std::time::Instant,
}

#[cfg(feature = "std")]
impl Clock {
    /// A clock whose epoch is `base`.
    ///
    /// ```
    /// # use coap_proto::time::Clock;
    /// let _ = Clock::new(std::time::Instant::now());
    /// ```
    #[must_use]
    pub fn new(base: std::time::Instant) -> Self {
        Self { base }
    }

    /// Converts a std instant (earlier than the base gives the epoch).
    ///
    /// ```
    /// # use coap_proto::{Instant, time::Clock};
    /// let base = std::time::Instant::now();
    /// assert_eq!(Clock::new(base).to_instant(base), Instant::ZERO);
    /// ```
    #[must_use]
    pub fn to_instant(&self, t: std::time::Instant) -> Instant {
        Instant::ZERO.saturating_add(t.saturating_duration_since(self.base))
    }

    /// Converts back to a std instant, for socket timeouts. An instant too
    /// far in the future for the platform's clock saturates to the latest
    /// representable one (never a panic).
    ///
    /// ```
    /// # use coap_proto::{Instant, time::Clock};
    /// let base = std::time::Instant::now();
    /// assert_eq!(Clock::new(base).to_std(Instant::ZERO), base);
    /// assert!(Clock::new(base).to_std(Instant::MAX) > base);
    /// ```
    #[must_use]
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        let mut d = t.since_epoch();
        loop {
            if let Some(at) = self.base.checked_add(d) {
                return at;
            }
            d /= 2;
        }
    }
}
