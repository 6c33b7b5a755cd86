//! Bandwidth limits: token buckets that transfers draw from before they move bytes.
//!
//! A [`RateLimit`] is one token bucket of so many bytes per second. The server keeps one per direction
//! for all sessions together ([`ServerConfig::bandwidth`](crate::ServerConfig::bandwidth)), and one per
//! direction for each account that has a limit of its own ([`Account::bandwidth`](crate::Account::bandwidth)),
//! shared by every session of that account (`RateLimits`). A transfer obeys every bucket that applies
//! to it (a `Throttle`): it moves a chunk only once each bucket granted it, so its rate is that of the
//! slowest bucket, and the sessions sharing a bucket share its rate.
//!
//! Transfers without any limit never touch a bucket: `Throttle::grant` returns at once, so the
//! unthrottled paths (zero-copy included) are unchanged. Throttled zero-copy transfers stay zero-copy:
//! `sendfile` and `splice` are asked for one granted chunk at a time.
//!
//! # Crate choice
//!
//! The buckets are [`leaky_bucket::RateLimiter`]s: a token bucket driven by tokio's timer, fair (waiting
//! tasks are served in order, so sessions sharing a bucket make steady progress), with two small
//! dependencies that the workspace already has (`parking_lot`, `pin-project-lite`). `governor` was the
//! alternative; its GCRA counts time per token in whole nanoseconds, which at one token per byte makes
//! rates above about 100 MB/s several percent off, and its async waiting uses a timer thread of its own.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Bandwidth limits in bytes per second, each `None` for no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bandwidth {
    /// Uploads (STOR, APPE, STOU).
    pub upload: Option<u64>,
    /// Downloads (RETR), listings and checksums (HASH and the X commands read the file like a download).
    pub download: Option<u64>,
}

/// A token bucket of [`RateLimit::rate`] bytes per second.
///
/// Tokens are added every few milliseconds (see [`RateLimit::new`]); an idle bucket fills up to one
/// tenth of a second's worth, which is also the largest chunk a transfer is granted at once.
pub struct RateLimit {
    limiter: leaky_bucket::RateLimiter,
    rate: u64,
    chunk: usize,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("rate", &self.rate)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// The smallest chunk granted at once (and so the smallest burst), whatever the rate.
const MIN_CHUNK: u64 = 4 * 1024;
/// The largest chunk granted at once.
const MAX_CHUNK: u64 = 8 * 1024 * 1024;

impl RateLimit {
    /// A bucket of `rate` bytes per second (at least 1).
    ///
    /// The refill interval is 100 ms, or 1 s for rates below 10,000 bytes per second, so that a
    /// refill is at least a thousand bytes (the rounding to whole bytes costs at most 0.1 % of the
    /// rate). Shorter intervals lose accuracy on a busy machine: the bucket schedules each refill from
    /// the moment its timer actually fired, so a timer that fires a millisecond late costs 10 % of
    /// the rate at 10 ms intervals and 1 % at 100 ms (measured in docs/benchmarks.md).
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        let interval_ms = [100u64, 1000]
            .into_iter()
            .find(|ms| rate.saturating_mul(*ms) / 1000 >= 1000)
            .unwrap_or(1000);
        let refill = (rate.saturating_mul(interval_ms) / 1000).max(1);
        let chunk = (rate / 10).clamp(MIN_CHUNK, MAX_CHUNK).max(refill);
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let limiter = leaky_bucket::RateLimiter::builder()
            .interval(Duration::from_millis(interval_ms))
            .refill(to_usize(refill))
            .max(to_usize(chunk))
            .initial(0)
            .fair(true)
            .build();
        Self {
            limiter,
            rate,
            chunk: to_usize(chunk),
        }
    }

    /// The rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The largest chunk this bucket grants at once.
    fn chunk(&self) -> usize {
        self.chunk
    }
}

/// The buckets one transfer obeys (the server's and the account's for its direction); empty when
/// nothing limits it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Throttle {
    buckets: Vec<Arc<RateLimit>>,
}

impl Throttle {
    /// A throttle without buckets (in a `static`).
    #[cfg(test)]
    pub(crate) const fn unlimited() -> Self {
        Self {
            buckets: Vec::new(),
        }
    }

    /// A throttle obeying every bucket given.
    pub(crate) fn new(buckets: impl IntoIterator<Item = Option<Arc<RateLimit>>>) -> Self {
        Self {
            buckets: buckets.into_iter().flatten().collect(),
        }
    }

    /// True when no bucket applies.
    pub(crate) fn is_unlimited(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Waits until the buckets allow moving some bytes, at most `want`, and returns how many (at least
    /// 1 when `want` is). Without buckets it returns `want` at once. Bytes granted and not moved are
    /// lost to the caller, so ask for what will be moved next.
    pub(crate) async fn grant(&self, want: usize) -> usize {
        if self.buckets.is_empty() || want == 0 {
            return want;
        }
        let n = self
            .buckets
            .iter()
            .map(|b| b.chunk())
            .fold(want, usize::min)
            .max(1);
        for bucket in &self.buckets {
            bucket.limiter.acquire(n).await;
        }
        n
    }
}

/// The per-account buckets of a server: every session of an account with a limit of its own shares
/// that account's bucket for each direction. A bucket lives as long as a session uses it.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    /// By account name, direction (`true` for uploads) and rate: a rate changed by a reload gets a
    /// bucket of its own for the sessions that start afterwards.
    buckets: Mutex<HashMap<(String, bool, u64), Weak<RateLimit>>>,
}

impl RateLimits {
    /// The shared bucket of `user` for uploads (`upload`) or downloads at `rate` bytes per second;
    /// `None` when `rate` is.
    pub(crate) fn bucket(
        &self,
        user: &str,
        upload: bool,
        rate: Option<u64>,
    ) -> Option<Arc<RateLimit>> {
        let rate = rate?;
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (user.to_owned(), upload, rate);
        if let Some(live) = map.get(&key).and_then(Weak::upgrade) {
            return Some(live);
        }
        // Forget the buckets no session uses any more, so the map stays as small as the set of
        // accounts logged in.
        map.retain(|_, w| w.strong_count() > 0);
        let bucket = Arc::new(RateLimit::new(rate));
        map.insert(key, Arc::downgrade(&bucket));
        Some(bucket)
    }
}

/// A number of bytes as administrators write it: `1048576`, `512K`, `10M`, `2G` or `1T` (binary
/// multiples: `K` is 1024 bytes, as for curl's and rclone's rate limits). The suffix may be lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteCount(pub u64);

impl FromStr for ByteCount {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || {
            format!("{s:?} is not a byte count: write a whole number of bytes, optionally with K, M, G or T (1024-based), e.g. 10M or 512K")
        };
        let (digits, shift) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let shift = match c.to_ascii_uppercase() {
                    'K' => 10,
                    'M' => 20,
                    'G' => 30,
                    'T' => 40,
                    _ => return Err(bad()),
                };
                (&t[..i], shift)
            }
            _ => (t, 0),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        n.checked_mul(1u64 << shift)
            .map(Self)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, suffix) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
            if n != 0 && n.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{suffix}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl<'de> serde::Deserialize<'de> for ByteCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, or a string such as \"10M\" or \"512K\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteCount, E> {
                u64::try_from(v)
                    .map(ByteCount)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteCount, E> {
                Ok(ByteCount(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteCount, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn byte_counts_parse_with_binary_suffixes() {
        for (text, n) in [
            ("0", 0),
            ("1048576", 1_048_576),
            ("512K", 512 * 1024),
            ("512k", 512 * 1024),
            ("10M", 10 * 1024 * 1024),
            (" 2G ", 2 << 30),
            ("1T", 1 << 40),
        ] {
            assert_eq!(text.parse::<ByteCount>(), Ok(ByteCount(n)), "{text}");
        }
        for bad in [
            "",
            "M",
            "10MB",
            "1.5M",
            "-1",
            "10X",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(bad.parse::<ByteCount>().is_err(), "{bad}");
        }
        assert_eq!(ByteCount(10 << 20).to_string(), "10M");
        assert_eq!(ByteCount(1000).to_string(), "1000");
    }

    #[test]
    fn byte_counts_deserialize_from_numbers_and_strings() {
        #[derive(serde::Deserialize)]
        struct T {
            a: ByteCount,
            b: ByteCount,
        }
        let t: T = toml::from_str("a = 1000\nb = \"10M\"").unwrap();
        assert_eq!((t.a, t.b), (ByteCount(1000), ByteCount(10 << 20)));
        assert!(toml::from_str::<T>("a = -1\nb = 1").is_err());
        assert!(toml::from_str::<T>("a = \"ten\"\nb = 1").is_err());
    }

    #[test]
    fn buckets_are_sized_from_the_rate() {
        let b = RateLimit::new(10 << 20);
        assert_eq!(b.rate(), 10 << 20);
        assert_eq!(b.chunk(), (10 << 20) / 10);
        // Slow rates still move chunks of a few KiB, refilled precisely.
        let slow = RateLimit::new(1000);
        assert_eq!(slow.chunk(), 4096);
        assert_eq!(slow.limiter.interval(), Duration::from_secs(1));
        assert_eq!(slow.limiter.refill(), 1000);
        let mid = RateLimit::new(50_000);
        assert_eq!(mid.limiter.interval(), Duration::from_millis(100));
        assert_eq!(mid.limiter.refill(), 5000);
        assert_eq!(b.limiter.interval(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_moves_bytes_at_the_rate() {
        let rate = 1_000_000u64;
        let throttle = Throttle::new([Some(Arc::new(RateLimit::new(rate)))]);
        let start = tokio::time::Instant::now();
        let mut moved = 0u64;
        while moved < 5 * rate {
            moved += throttle.grant(64 * 1024).await as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        let measured = moved as f64 / secs;
        assert!(
            (measured / rate as f64 - 1.0).abs() < 0.02,
            "{measured} bytes/s for a limit of {rate}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_bucket_sets_the_pace_and_sessions_share_it() {
        let shared = Arc::new(RateLimit::new(1_000_000));
        let server = Arc::new(RateLimit::new(4_000_000));
        let a = Throttle::new([Some(Arc::clone(&server)), Some(Arc::clone(&shared))]);
        let b = Throttle::new([Some(server), Some(shared)]);
        let start = tokio::time::Instant::now();
        let run = |t: Throttle| async move {
            let mut moved = 0u64;
            while moved < 2_000_000 {
                moved += t.grant(1 << 20).await as u64;
            }
            moved
        };
        let (x, y) = tokio::join!(run(a), run(b));
        let secs = start.elapsed().as_secs_f64();
        let measured = (x + y) as f64 / secs;
        assert!(
            (measured / 1_000_000.0 - 1.0).abs() < 0.05,
            "{measured} bytes/s shared, for a limit of 1000000"
        );
    }

    #[tokio::test]
    async fn no_bucket_grants_everything_at_once() {
        let t = Throttle::default();
        assert!(t.is_unlimited());
        assert_eq!(t.grant(1 << 30).await, 1 << 30);
    }

    #[test]
    fn sessions_of_an_account_share_its_bucket_while_they_live() {
        let limits = RateLimits::default();
        let a = limits.bucket("alice", true, Some(1000)).unwrap();
        let b = limits.bucket("alice", true, Some(1000)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let down = limits.bucket("alice", false, Some(1000)).unwrap();
        assert!(!Arc::ptr_eq(&a, &down));
        let other = limits.bucket("bob", true, Some(1000)).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(limits.bucket("alice", true, None).is_none());
        drop((a, b, down, other));
        let fresh = limits.bucket("carol", true, Some(5)).unwrap();
        assert_eq!(limits.buckets.lock().unwrap().len(), 1);
        drop(fresh);
    }
}
