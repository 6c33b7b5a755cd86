//! [`LoginLimiter`]: failed logins counted per client address and per user name, turned into growing
//! delays, temporary bans of addresses and temporary locks of names.
//!
//! The session's own failed-login delay (`session.failed_login_delay`) only lasts as long as one
//! connection; an attacker reconnects. The limiter remembers across connections, for the whole server:
//!
//! - every failure is counted for the client's address and for the user name tried (known or not, so
//!   that counting reveals nothing);
//! - past [`LoginLimits::free_failures`], each failure's `530` is delayed, doubling per failure;
//! - at [`LoginLimits::ban_after`] failures an address is banned: it gets `421` at connect, and its open
//!   sessions get `421` at their next PASS;
//! - at [`LoginLimits::lock_user_after`] failures (from any addresses) a name is locked: logins to it
//!   are refused without checking the password until the lock ends;
//! - a successful login clears its address's and its name's counts.
//!
//! Failures older than [`LoginLimits::window`] are forgotten. Both tables are bounded by
//! [`LoginLimits::max_tracked`], and names are kept only as keyed hashes, so a flood of long, distinct
//! names costs a fixed amount of memory.
//!
//! Log lines for fail2ban and similar tools come from here, with the client address before any text the
//! client chose (user names are quoted and escaped); the session span (`session{id=.. peer=..}: `) comes
//! between the level and the target:
//!
//! ```text
//! WARN session{id=17 peer=192.0.2.7:50312}: ferry::auth: login failed: address 192.0.2.7, user "root", failures 3
//! WARN session{id=21 peer=192.0.2.7:50388}: ferry::auth: ban: address 192.0.2.7 banned for 900 s after 10 failed logins
//! WARN session{id=40 peer=198.51.100.4:41000}: ferry::auth: lock: user "root" locked for 900 s after 30 failed logins
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

/// The `tracing` target of the limiter's log lines.
const TARGET: &str = "ferry::auth";

/// Brute-force protection settings (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures (per address, or per name) within [`window`](Self::window) that get no extra delay
    /// beyond the session's own. Default 5.
    pub free_failures: u32,
    /// Extra delay before the `530` of the first failure past `free_failures`; it doubles with each
    /// further failure. Default 1 s; zero turns delays off.
    pub delay: Duration,
    /// Upper bound of the extra delay. Default 30 s.
    pub max_delay: Duration,
    /// Failures from one address within the window that ban it. Default 10; 0 turns bans off.
    pub ban_after: u32,
    /// How long a ban lasts. Default 15 min.
    pub ban_duration: Duration,
    /// Failures for one user name, from any addresses, within the window that lock the name. A lock
    /// also keeps the rightful user out (anyone can lock a name they know), so the default is higher
    /// than `ban_after`: 30; 0 turns locks off.
    pub lock_user_after: u32,
    /// How long a lock lasts. Default 15 min.
    pub lock_duration: Duration,
    /// Failures older than this are forgotten. Default 15 min.
    pub window: Duration,
    /// Addresses, and names, tracked at most (each); beyond, expired entries are dropped first, then
    /// the least recently failed. Default 100 000.
    pub max_tracked: usize,
    /// IPv6 clients are counted and banned per network of this prefix length (a single host usually has
    /// a whole /64). Default 64; 128 counts single addresses.
    pub ipv6_prefix: u8,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            free_failures: 5,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            ban_after: 10,
            ban_duration: Duration::from_secs(15 * 60),
            lock_user_after: 30,
            lock_duration: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
            max_tracked: 100_000,
            ipv6_prefix: 64,
        }
    }
}

impl LoginLimits {
    /// No delays, bans or locks (for tests and trusted networks).
    pub fn off() -> Self {
        Self {
            delay: Duration::ZERO,
            ban_after: 0,
            lock_user_after: 0,
            ..Self::default()
        }
    }
}

/// What the limiter says before a password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Go ahead.
    Allowed,
    /// The address is banned: refuse with `421` and close.
    Banned,
    /// The name is locked: refuse (as a failed login) without checking the password.
    Locked,
}

/// What the limiter says after a failed login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Extra time to wait before the `530`.
    pub delay: Duration,
    /// This failure banned the address: close the session with `421`.
    pub banned: bool,
}

/// Failed-login bookkeeping shared by every session of a server. See the [module docs](self).
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    hasher: RandomState,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    addresses: HashMap<IpAddr, Entry>,
    names: HashMap<u64, Entry>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    /// Banned (address) or locked (name) until then.
    until: Option<Instant>,
}

impl Entry {
    fn blocked(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// True if the entry says nothing any more: not blocked and its failures are forgotten.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        !self.blocked(now) && now.saturating_duration_since(self.last) >= window
    }
}

impl LoginLimiter {
    /// A limiter with `limits` and nothing recorded.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            hasher: RandomState::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// The settings.
    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    /// True if `ip` is banned at `now` (checked when a client connects).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let key = self.address_key(ip);
        self.lock()
            .addresses
            .get(&key)
            .is_some_and(|e| e.blocked(now))
    }

    /// Checks a login attempt before its password is verified.
    pub fn check(&self, ip: IpAddr, user: &str, now: Instant) -> Check {
        let (addr, name) = (self.address_key(ip), self.name_key(user));
        let state = self.lock();
        if state.addresses.get(&addr).is_some_and(|e| e.blocked(now)) {
            Check::Banned
        } else if state.names.get(&name).is_some_and(|e| e.blocked(now)) {
            Check::Locked
        } else {
            Check::Allowed
        }
    }

    /// Records a failed login of `user` from `ip`; logs it, and any ban or lock it starts.
    pub fn record_failure(&self, ip: IpAddr, user: &str, now: Instant) -> Failure {
        let l = &self.limits;
        let (addr, name) = (self.address_key(ip), self.name_key(user));
        let mut state = self.lock();
        let a = bump(&mut state.addresses, addr, now, l);
        let n = bump(&mut state.names, name, now, l);
        warn!(target: TARGET, "login failed: address {addr}, user {user:?}, failures {}", a.failures);
        let banned = l.ban_after > 0 && a.failures >= l.ban_after && a.until.is_none();
        if banned {
            if let Some(e) = state.addresses.get_mut(&addr) {
                e.until = Some(now + l.ban_duration);
            }
            warn!(
                target: TARGET,
                "ban: address {addr} banned for {} s after {} failed logins",
                l.ban_duration.as_secs(),
                a.failures
            );
        }
        if l.lock_user_after > 0 && n.failures >= l.lock_user_after && n.until.is_none() {
            if let Some(e) = state.names.get_mut(&name) {
                e.until = Some(now + l.lock_duration);
            }
            warn!(
                target: TARGET,
                "lock: user {user:?} locked for {} s after {} failed logins",
                l.lock_duration.as_secs(),
                n.failures
            );
        }
        Failure {
            delay: self.delay_for(a.failures.max(n.failures)),
            banned: banned || a.blocked(now),
        }
    }

    /// Records a successful login: the address's and the name's failures are forgotten.
    pub fn record_success(&self, ip: IpAddr, user: &str) {
        let (addr, name) = (self.address_key(ip), self.name_key(user));
        let mut state = self.lock();
        state.addresses.remove(&addr);
        state.names.remove(&name);
    }

    /// The extra delay after the `failures`-th failure.
    fn delay_for(&self, failures: u32) -> Duration {
        let l = &self.limits;
        let Some(past) = failures.checked_sub(l.free_failures).filter(|&p| p > 0) else {
            return Duration::ZERO;
        };
        let exp = (past - 1).min(20);
        l.delay.saturating_mul(1 << exp).min(l.max_delay)
    }

    fn address_key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u32::from(self.limits.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
            v4 => v4,
        }
    }

    fn name_key(&self, user: &str) -> u64 {
        self.hasher.hash_one(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts one failure for `key` and returns the updated entry, making room in `map` if needed.
fn bump<K: Copy + Eq + std::hash::Hash>(
    map: &mut HashMap<K, Entry>,
    key: K,
    now: Instant,
    limits: &LoginLimits,
) -> Entry {
    if !map.contains_key(&key) && map.len() >= limits.max_tracked.max(1) {
        map.retain(|_, e| !e.expired(now, limits.window));
        if map.len() >= limits.max_tracked.max(1) {
            let stalest = map
                .iter()
                .filter(|(_, e)| !e.blocked(now))
                .min_by_key(|(_, e)| e.last)
                .or_else(|| map.iter().min_by_key(|(_, e)| e.last))
                .map(|(k, _)| *k);
            if let Some(k) = stalest {
                map.remove(&k);
            }
        }
    }
    let e = map.entry(key).or_insert(Entry {
        failures: 0,
        last: now,
        until: None,
    });
    if e.until.is_some_and(|u| now >= u) {
        // A ban or lock that ended starts a new count.
        *e = Entry {
            failures: 0,
            last: now,
            until: None,
        };
    } else if !e.blocked(now) && now.saturating_duration_since(e.last) >= limits.window {
        e.failures = 0;
    }
    e.failures = e.failures.saturating_add(1);
    e.last = now;
    *e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn limits() -> LoginLimits {
        LoginLimits {
            free_failures: 2,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            ban_after: 6,
            ban_duration: Duration::from_secs(60),
            lock_user_after: 8,
            lock_duration: Duration::from_secs(30),
            window: Duration::from_secs(100),
            max_tracked: 1000,
            ipv6_prefix: 64,
        }
    }

    #[test]
    fn delays_grow_then_the_address_is_banned() {
        let l = LoginLimiter::new(limits());
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        let delays: Vec<u64> = (0..5)
            .map(|i| {
                assert_eq!(l.check(a, "root", t0), Check::Allowed);
                let f = l.record_failure(a, &format!("user{i}"), t0);
                assert!(!f.banned);
                u64::try_from(f.delay.as_millis()).expect("small")
            })
            .collect();
        assert_eq!(delays, [0, 0, 100, 200, 400]);
        let f = l.record_failure(a, "x", t0);
        assert!(f.banned);
        assert_eq!(f.delay, Duration::from_millis(700));
        assert!(l.is_banned(a, t0));
        assert_eq!(l.check(a, "anyone", t0), Check::Banned);
        // Other addresses are unaffected.
        assert!(!l.is_banned(ip("192.0.2.8"), t0));
        assert_eq!(l.check(ip("192.0.2.8"), "root", t0), Check::Allowed);
        // The ban ends, and the count starts over.
        let later = t0 + Duration::from_secs(61);
        assert!(!l.is_banned(a, later));
        let f = l.record_failure(a, "x", later);
        assert_eq!((f.delay, f.banned), (Duration::ZERO, false));
    }

    #[test]
    fn names_are_counted_across_addresses_and_locked() {
        let l = LoginLimiter::new(limits());
        let t0 = Instant::now();
        for i in 0..7u8 {
            let f = l.record_failure(IpAddr::from([198, 51, 100, i]), "alice", t0);
            assert!(!f.banned);
        }
        // The name's count drives the delay even from a fresh address.
        let f = l.record_failure(ip("198.51.100.200"), "alice", t0);
        assert_eq!(f.delay, Duration::from_millis(700));
        assert_eq!(l.check(ip("203.0.113.1"), "alice", t0), Check::Locked);
        assert_eq!(l.check(ip("203.0.113.1"), "bob", t0), Check::Allowed);
        assert_eq!(
            l.check(ip("203.0.113.1"), "alice", t0 + Duration::from_secs(31)),
            Check::Allowed
        );
    }

    #[test]
    fn success_resets_and_old_failures_are_forgotten() {
        let l = LoginLimiter::new(limits());
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        for _ in 0..4 {
            l.record_failure(a, "bob", t0);
        }
        l.record_success(a, "bob");
        assert_eq!(l.record_failure(a, "bob", t0).delay, Duration::ZERO);
        for _ in 0..4 {
            l.record_failure(a, "carol", t0);
        }
        let later = t0 + Duration::from_secs(101);
        assert_eq!(l.record_failure(a, "dave", later).delay, Duration::ZERO);
    }

    #[test]
    fn ipv6_is_counted_per_prefix_and_mapped_ipv4_as_ipv4() {
        let l = LoginLimiter::new(limits());
        let t0 = Instant::now();
        for i in 0..6u16 {
            l.record_failure(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]), "x", t0);
        }
        assert!(l.is_banned(ip("2001:db8:0:1::ffff"), t0));
        assert!(!l.is_banned(ip("2001:db8:0:2::1"), t0));
        for _ in 0..6 {
            l.record_failure(ip("::ffff:192.0.2.9"), "x", t0);
        }
        assert!(l.is_banned(ip("192.0.2.9"), t0));
    }

    #[test]
    fn off_never_delays_or_bans() {
        let l = LoginLimiter::new(LoginLimits::off());
        let t0 = Instant::now();
        for _ in 0..100 {
            let f = l.record_failure(ip("192.0.2.7"), "root", t0);
            assert_eq!((f.delay, f.banned), (Duration::ZERO, false));
        }
        assert_eq!(l.check(ip("192.0.2.7"), "root", t0), Check::Allowed);
    }

    #[test]
    fn tables_stay_bounded() {
        let l = LoginLimiter::new(LoginLimits {
            max_tracked: 50,
            ..limits()
        });
        let t0 = Instant::now();
        // Six failures ban the first address; a flood of others must not evict the ban.
        for _ in 0..6 {
            l.record_failure(ip("192.0.2.1"), "x", t0);
        }
        for i in 0..1000u32 {
            let t = t0 + Duration::from_millis(u64::from(i));
            l.record_failure(
                IpAddr::from((0x0a00_0000 + i).to_be_bytes()),
                &i.to_string(),
                t,
            );
        }
        let state = l.lock();
        assert!(state.addresses.len() <= 50);
        assert!(state.names.len() <= 50);
        drop(state);
        assert!(l.is_banned(ip("192.0.2.1"), t0 + Duration::from_secs(2)));
    }
}
