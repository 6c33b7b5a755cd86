//! Time for the driver: a monotonic clock with timers, and the wall clock for listings.

use core::future::Future;
use core::time::Duration;

/// The driver's source of time. [`EmbassyClock`] is the real one; tests use a fake.
pub trait Clock {
    /// Monotonic time since any fixed origin (the `now` every `Session` call takes).
    fn now(&self) -> Duration;
    /// Completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: Duration) -> impl Future<Output = ()>;
    /// Wall-clock time in seconds since the Unix epoch (for `ls -l` dates), or 0 when unknown.
    fn unix_secs(&self) -> i64;
}

/// [`embassy_time`]'s clock, with the Unix time at boot when the device knows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbassyClock {
    /// Seconds since the Unix epoch at `embassy_time::Instant` zero; 0 when unknown.
    pub unix_at_boot: i64,
}

impl Clock for EmbassyClock {
    fn now(&self) -> Duration {
        Duration::from_micros(embassy_time::Instant::now().as_micros())
    }

    fn sleep_until(&self, deadline: Duration) -> impl Future<Output = ()> {
        let micros = u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX);
        embassy_time::Timer::at(embassy_time::Instant::from_micros(micros))
    }

    fn unix_secs(&self) -> i64 {
        if self.unix_at_boot == 0 {
            return 0;
        }
        let up = embassy_time::Instant::now().as_secs();
        self.unix_at_boot
            .saturating_add(i64::try_from(up).unwrap_or(i64::MAX))
    }
}
