//! Bounded per-key session counts (per client address, per account), released by guards.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// Open sessions per key; keys with no session are removed, so the map stays as small as the load.
pub(crate) type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// One session's share of its key's count; released on drop.
pub(crate) struct CountGuard<K: Eq + Hash + Clone> {
    map: Counts<K>,
    key: K,
}

impl<K: Eq + Hash + Clone> CountGuard<K> {
    /// Takes a share of `key`'s count, or `None` when it already has `max`.
    pub(crate) fn acquire(map: &Counts<K>, key: &K, max: usize) -> Option<Self> {
        let mut m = map.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.get(key).copied().unwrap_or(0);
        if n >= max {
            return None;
        }
        m.insert(key.clone(), n + 1);
        Some(Self {
            map: Arc::clone(map),
            key: key.clone(),
        })
    }

    /// The key this share counts for.
    pub(crate) fn key(&self) -> &K {
        &self.key
    }
}

impl<K: Eq + Hash + Clone> Drop for CountGuard<K> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_and_released() {
        let map: Counts<&str> = Arc::default();
        let a = CountGuard::acquire(&map, &"a", 2);
        let b = CountGuard::acquire(&map, &"a", 2);
        assert!(a.is_some() && b.is_some());
        assert!(CountGuard::acquire(&map, &"a", 2).is_none());
        assert!(CountGuard::acquire(&map, &"z", 0).is_none());
        drop(a);
        assert!(CountGuard::acquire(&map, &"a", 2).is_some());
        drop(b);
        assert!(map.lock().map(|m| m.is_empty()).unwrap_or(false));
    }
}
