//! Version vectors: which device changed a file how many times.
//!
//! A vector is a list of `(short device ID, counter)` pairs sorted by short ID. A device
//! that changes a file bumps its own counter to `max(old + 1, unix seconds now)`, so that a
//! device whose database was reset (counter back at zero) still produces versions newer than
//! the ones its peers remember.

use crate::identity::ShortId;
use std::cmp::Ordering as CmpOrdering;

/// One device's entry in a version vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Counter {
    pub id: ShortId,
    pub value: u64,
}

/// A version vector, kept sorted by short ID with no zero counters and no duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Vector {
    counters: Vec<Counter>,
}

/// How two vectors relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    Equal,
    /// Self dominates the other: every counter is >= and at least one is >.
    Greater,
    /// The other dominates self.
    Lesser,
    /// Neither dominates: concurrent changes, a conflict.
    Concurrent,
}

impl Vector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from any list of counters: sorts, drops zeros, keeps the highest
    /// counter of a device listed twice (input from a peer need not be tidy).
    pub fn from_counters(mut counters: Vec<Counter>) -> Self {
        counters.retain(|c| c.value != 0);
        counters.sort_by(|a, b| a.id.cmp(&b.id).then(b.value.cmp(&a.value)));
        counters.dedup_by(|later, earlier| later.id == earlier.id);
        Self { counters }
    }

    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The counter of one device, 0 when absent.
    pub fn get(&self, id: ShortId) -> u64 {
        self.counters
            .binary_search_by(|c| c.id.cmp(&id))
            .map(|i| self.counters[i].value)
            .unwrap_or(0)
    }

    /// A new vector with `id`'s counter bumped to `max(old + 1, now_secs)`.
    #[must_use]
    pub fn updated(&self, id: ShortId, now_secs: u64) -> Self {
        let mut counters = self.counters.clone();
        match counters.binary_search_by(|c| c.id.cmp(&id)) {
            Ok(i) => {
                let old = counters[i].value;
                counters[i].value = old.saturating_add(1).max(now_secs);
            }
            Err(i) => counters.insert(
                i,
                Counter {
                    id,
                    value: now_secs.max(1),
                },
            ),
        }
        Self { counters }
    }

    /// The element-wise maximum: a version that includes both histories.
    #[must_use]
    pub fn merged(&self, other: &Vector) -> Self {
        let mut all = self.counters.clone();
        all.extend_from_slice(&other.counters);
        Self::from_counters(all)
    }

    /// Compares two vectors as partial orders compare.
    pub fn compare(&self, other: &Vector) -> Ordering {
        let (mut greater, mut lesser) = (false, false);
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.counters, &other.counters);
        while i < a.len() || j < b.len() {
            let (va, vb) = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => match x.id.cmp(&y.id) {
                    CmpOrdering::Equal => {
                        i += 1;
                        j += 1;
                        (x.value, y.value)
                    }
                    CmpOrdering::Less => {
                        i += 1;
                        (x.value, 0)
                    }
                    CmpOrdering::Greater => {
                        j += 1;
                        (0, y.value)
                    }
                },
                (Some(x), None) => {
                    i += 1;
                    (x.value, 0)
                }
                (None, Some(y)) => {
                    j += 1;
                    (0, y.value)
                }
                (None, None) => break,
            };
            match va.cmp(&vb) {
                CmpOrdering::Greater => greater = true,
                CmpOrdering::Less => lesser = true,
                CmpOrdering::Equal => {}
            }
        }
        match (greater, lesser) {
            (false, false) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Lesser,
            (true, true) => Ordering::Concurrent,
        }
    }

    /// The device whose counter is highest: the one that made the latest change.
    pub fn last_modified_by(&self) -> Option<ShortId> {
        self.counters.iter().max_by_key(|c| c.value).map(|c| c.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> ShortId {
        ShortId(n)
    }

    #[test]
    fn update_uses_wall_clock_floor() {
        let v = Vector::new().updated(id(1), 1000);
        assert_eq!(v.get(id(1)), 1000);
        let v2 = v.updated(id(1), 10);
        assert_eq!(v2.get(id(1)), 1001);
        assert_eq!(v2.compare(&v), Ordering::Greater);
        assert_eq!(v.compare(&v2), Ordering::Lesser);
    }

    #[test]
    fn concurrent_edits_are_detected() {
        let base = Vector::new().updated(id(1), 5);
        let a = base.updated(id(1), 6);
        let b = base.updated(id(2), 6);
        assert_eq!(a.compare(&b), Ordering::Concurrent);
        let m = a.merged(&b);
        assert_eq!(m.compare(&a), Ordering::Greater);
        assert_eq!(m.compare(&b), Ordering::Greater);
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric(xs in proptest::collection::vec((0u64..5, 0u64..4), 0..6),
                                    ys in proptest::collection::vec((0u64..5, 0u64..4), 0..6)) {
            let mk = |v: Vec<(u64, u64)>| Vector::from_counters(
                v.into_iter().map(|(i, value)| Counter { id: id(i), value }).collect());
            let (a, b) = (mk(xs), mk(ys));
            let expected = match a.compare(&b) {
                Ordering::Equal => Ordering::Equal,
                Ordering::Greater => Ordering::Lesser,
                Ordering::Lesser => Ordering::Greater,
                Ordering::Concurrent => Ordering::Concurrent,
            };
            prop_assert_eq!(b.compare(&a), expected);
            prop_assert_eq!(a.compare(&a), Ordering::Equal);
        }
    }
}
