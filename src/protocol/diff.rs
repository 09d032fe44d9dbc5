//! Block list deltas: how a new version of a big file's block list is expressed as a few
//! edits of a list the receiver already holds (see "Delta block lists" in the module docs).
//!
//! [`diff_blocks`] is deterministic and its cost is bounded: common prefix and suffix are
//! cut off, then blocks that occur exactly once on each side anchor the match (the longest
//! increasing run of such pairs, as in patience diff), and the gaps between anchors are
//! diffed the same way. When the work done passes a budget proportional to the input, what
//! is left is sent as plain replacements: always correct, only larger. [`apply_edits`]
//! trusts nothing: the edits come from a peer.

use super::{MAX_BLOCKS_PER_FILE, ProtocolError};
use crate::protocol::file::BlockInfo;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;

/// One change to a base block list: remove `remove` blocks at index `at` of the base, and
/// put `insert` in their place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEdit {
    /// Index in the base list (not in the list being built).
    pub at: u32,
    pub remove: u32,
    pub insert: Vec<BlockInfo>,
}

/// Work units (elements looked at) allowed per element of input before the rest is sent as
/// replacements. Typical changes need 2 to 3; only adversarial shapes (a reversed list)
/// reach it.
const WORK_PER_ELEMENT: usize = 8;

/// The edits that turn `old` into `new`: in base order, non-overlapping, none empty.
/// `apply_edits(old, &diff_blocks(old, new)) == Ok(new)` for every pair of lists (within
/// [`MAX_BLOCKS_PER_FILE`]).
pub fn diff_blocks(old: &[BlockInfo], new: &[BlockInfo]) -> Vec<BlockEdit> {
    let mut edits = Vec::new();
    let mut budget = WORK_PER_ELEMENT
        .saturating_mul(old.len().saturating_add(new.len()))
        .saturating_add(1024);
    // Ranges still to diff, the next one on top, so edits come out in base order.
    let mut stack = vec![(0..old.len(), 0..new.len())];
    while let Some((mut o, mut n)) = stack.pop() {
        // Common prefix and suffix.
        while !o.is_empty() && !n.is_empty() && old[o.start] == new[n.start] {
            o.start += 1;
            n.start += 1;
        }
        while !o.is_empty() && !n.is_empty() && old[o.end - 1] == new[n.end - 1] {
            o.end -= 1;
            n.end -= 1;
        }
        if o.is_empty() && n.is_empty() {
            continue;
        }
        let cost = o.len() + n.len();
        let anchors = if o.is_empty() || n.is_empty() || cost > budget {
            Vec::new()
        } else {
            budget -= cost;
            unique_anchors(old, new, o.clone(), n.clone())
        };
        if anchors.is_empty() {
            edits.push(replace(new, o, n));
            continue;
        }
        // The gaps between anchors, pushed last-first.
        let mut gaps = Vec::with_capacity(anchors.len() + 1);
        let (mut os, mut ns) = (o.start, n.start);
        for &(i, j) in &anchors {
            gaps.push((os..i, ns..j));
            os = i + 1;
            ns = j + 1;
        }
        gaps.push((os..o.end, ns..n.end));
        stack.extend(gaps.into_iter().rev());
    }
    edits
}

fn replace(new: &[BlockInfo], o: Range<usize>, n: Range<usize>) -> BlockEdit {
    // Both lists are within MAX_BLOCKS_PER_FILE (< 2^32) wherever a diff is worth sending;
    // a longer one saturates, which `apply_edits` and the encoder then refuse.
    BlockEdit {
        at: u32::try_from(o.start).unwrap_or(u32::MAX),
        remove: u32::try_from(o.len()).unwrap_or(u32::MAX),
        insert: new[n].to_vec(),
    }
}

/// Pairs `(i, j)` with `old[i] == new[j]`, each value occurring exactly once in both
/// ranges, forming the longest run increasing in both `i` and `j`.
fn unique_anchors(
    old: &[BlockInfo],
    new: &[BlockInfo],
    o: Range<usize>,
    n: Range<usize>,
) -> Vec<(usize, usize)> {
    // value -> (occurrences in old, index in old, occurrences in new, index in new)
    let mut seen: HashMap<&BlockInfo, (u32, usize, u32, usize)> =
        HashMap::with_capacity(o.len().min(n.len()));
    for i in o {
        let e = seen.entry(&old[i]).or_insert((0, i, 0, 0));
        e.0 += 1;
    }
    for j in n.clone() {
        if let Entry::Occupied(mut e) = seen.entry(&new[j]) {
            let v = e.get_mut();
            v.2 += 1;
            v.3 = j;
        }
    }
    // Candidates in `new` order, so the longest run increasing in `old` index is the answer.
    let pairs: Vec<(usize, usize)> = n
        .filter_map(|j| match seen.get(&new[j]) {
            Some(&(1, i, 1, jj)) if jj == j => Some((i, j)),
            _ => None,
        })
        .collect();
    longest_increasing(&pairs)
}

/// The longest subsequence of `pairs` (sorted by `.1`) whose `.0` strictly increases.
fn longest_increasing(pairs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    // tails[k]: index into `pairs` of the smallest tail of an increasing run of length k+1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; pairs.len()];
    for (p, &(i, _)) in pairs.iter().enumerate() {
        let k = tails.partition_point(|&t| pairs[t].0 < i);
        if k > 0 {
            prev[p] = Some(tails[k - 1]);
        }
        if k == tails.len() {
            tails.push(p);
        } else {
            tails[k] = p;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied();
    while let Some(p) = cur {
        out.push(pairs[p]);
        cur = prev[p];
    }
    out.reverse();
    out
}

/// Builds the list that `edits` make of `base`. Edits must be in base order and must not
/// overlap (`at` of one ≥ `at + remove` of the one before), stay within the base, each
/// remove or insert something, and the result may hold at most [`MAX_BLOCKS_PER_FILE`]
/// blocks. The result's length is computed before anything is allocated.
pub fn apply_edits(
    base: &[BlockInfo],
    edits: &[BlockEdit],
) -> Result<Vec<BlockInfo>, ProtocolError> {
    let bad = |i: usize, why: String| ProtocolError::BadEdits(format!("edit {i}: {why}"));
    let mut cursor: u64 = 0;
    let mut len: u64 = base.len() as u64;
    for (i, e) in edits.iter().enumerate() {
        let (at, remove) = (u64::from(e.at), u64::from(e.remove));
        if at < cursor {
            return Err(bad(
                i,
                format!(
                    "starts at block {at}, inside or before the edit before it (which ends at {cursor})"
                ),
            ));
        }
        if at + remove > base.len() as u64 {
            return Err(bad(
                i,
                format!(
                    "removes blocks {at}..{}, past the end of the base list of {} blocks",
                    at + remove,
                    base.len()
                ),
            ));
        }
        if remove == 0 && e.insert.is_empty() {
            return Err(bad(i, "neither removes nor inserts anything".into()));
        }
        cursor = at + remove;
        len = len - remove + e.insert.len() as u64;
    }
    if len > MAX_BLOCKS_PER_FILE as u64 {
        return Err(ProtocolError::BadEdits(format!(
            "the result would hold {len} blocks, more than the limit of {MAX_BLOCKS_PER_FILE}"
        )));
    }
    let mut out = Vec::with_capacity(len as usize);
    let mut pos = 0usize;
    for e in edits {
        let at = e.at as usize;
        out.extend_from_slice(&base[pos..at]);
        out.extend_from_slice(&e.insert);
        pos = at + e.remove as usize;
    }
    out.extend_from_slice(&base[pos..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::file::BlockHash;
    use crate::protocol::testing::{block, distinct_blocks};
    use proptest::prelude::*;

    fn inserted(edits: &[BlockEdit]) -> usize {
        edits.iter().map(|e| e.insert.len()).sum()
    }

    #[test]
    fn one_changed_region_is_one_edit() {
        let old = distinct_blocks(0, 8192);
        let mut new = old.clone();
        new.splice(4000..4032, distinct_blocks(100_000, 32));
        let edits = diff_blocks(&old, &new);
        assert_eq!(
            edits,
            vec![BlockEdit {
                at: 4000,
                remove: 32,
                insert: new[4000..4032].to_vec()
            }]
        );
        assert_eq!(apply_edits(&old, &edits), Ok(new));
    }

    #[test]
    fn a_block_inserted_or_removed_near_the_start_is_one_small_edit() {
        let old = distinct_blocks(0, 8192);
        let mut new = old.clone();
        new.insert(1, block(99_999));
        let edits = diff_blocks(&old, &new);
        assert_eq!(edits.len(), 1);
        assert_eq!((edits[0].at, edits[0].remove, inserted(&edits)), (1, 0, 1));
        assert_eq!(apply_edits(&old, &edits), Ok(new));

        let mut new = old.clone();
        new.remove(0);
        let edits = diff_blocks(&old, &new);
        assert_eq!(
            edits,
            vec![BlockEdit {
                at: 0,
                remove: 1,
                insert: vec![]
            }]
        );
        assert_eq!(apply_edits(&old, &edits), Ok(new));

        // A content-defined chunker turns an insertion into one or two changed chunks.
        let mut new = old.clone();
        new.splice(0..2, distinct_blocks(50_000, 2));
        let edits = diff_blocks(&old, &new);
        assert_eq!((edits.len(), inserted(&edits)), (1, 2));
    }

    #[test]
    fn separate_regions_are_separate_edits() {
        let old = distinct_blocks(0, 8192);
        let mut new = old.clone();
        // From the back so the indexes stay those of the base.
        new.splice(7000..7001, distinct_blocks(300_000, 3));
        new.splice(5000..5010, []);
        new.splice(100..110, distinct_blocks(200_000, 10));
        new.insert(10, block(100_000));
        let edits = diff_blocks(&old, &new);
        let shape: Vec<_> = edits
            .iter()
            .map(|e| (e.at, e.remove, e.insert.len()))
            .collect();
        assert_eq!(
            shape,
            vec![(10, 0, 1), (100, 10, 10), (5000, 10, 0), (7000, 1, 3)]
        );
        assert_eq!(apply_edits(&old, &edits), Ok(new));
    }

    #[test]
    fn repeated_blocks_and_adversarial_orders_stay_correct_and_bounded() {
        // A zero-filled disk image: the same block thousands of times.
        let zero = block(0);
        let old = vec![zero; 8192];
        let mut new = old.clone();
        new[4096] = block(1);
        let edits = diff_blocks(&old, &new);
        assert_eq!(inserted(&edits), 1);
        assert_eq!(apply_edits(&old, &edits), Ok(new));

        // Reversed: every block still there, none in order. Correct, cost bounded.
        let old = distinct_blocks(0, 8192);
        let new: Vec<_> = old.iter().rev().copied().collect();
        let start = std::time::Instant::now();
        let edits = diff_blocks(&old, &new);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(apply_edits(&old, &edits), Ok(new));

        // Nothing in common.
        let new = distinct_blocks(10_000, 100);
        let edits = diff_blocks(&old, &new);
        assert_eq!(edits.len(), 1);
        assert_eq!(apply_edits(&old, &edits), Ok(new));
        assert_eq!(diff_blocks(&old, &old), vec![]);
        assert_eq!(diff_blocks(&[], &[]), vec![]);
    }

    #[test]
    fn bad_edits_are_refused_with_a_reason() {
        let base = distinct_blocks(0, 10);
        let e = |at, remove, n: usize| BlockEdit {
            at,
            remove,
            insert: distinct_blocks(1000 + u64::from(at), n),
        };
        let cases: Vec<(Vec<BlockEdit>, &str)> = vec![
            (vec![e(5, 1, 1), e(2, 1, 1)], "before the edit before it"),
            (vec![e(2, 3, 1), e(4, 1, 1)], "before the edit before it"),
            (vec![e(8, 3, 0)], "past the end"),
            (vec![e(11, 0, 1)], "past the end"),
            (vec![e(u32::MAX, u32::MAX, 1)], "past the end"),
            (vec![e(3, 0, 0)], "neither removes nor inserts"),
        ];
        for (edits, want) in cases {
            match apply_edits(&base, &edits) {
                Err(ProtocolError::BadEdits(msg)) => assert!(msg.contains(want), "{msg}"),
                other => panic!("{edits:?}: {other:?}"),
            }
        }
        // Adjacent edits and an insertion at the very end are fine.
        let ok = vec![e(2, 1, 1), e(3, 1, 0), e(10, 0, 2)];
        assert_eq!(apply_edits(&base, &ok).map(|v| v.len()), Ok(11));
    }

    #[test]
    fn a_result_longer_than_the_limit_is_refused_before_allocating() {
        let base = distinct_blocks(0, 2);
        let big = BlockEdit {
            at: 0,
            remove: 0,
            insert: vec![block(7); 1000],
        };
        // Many edits each inserting 1000 blocks, adding up past the limit.
        let edits: Vec<_> = (0..=MAX_BLOCKS_PER_FILE / 1000)
            .map(|_| big.clone())
            .collect();
        match apply_edits(&base, &edits) {
            Err(ProtocolError::BadEdits(msg)) => assert!(msg.contains("limit"), "{msg}"),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    /// A list from a small alphabet (to make repeats common) or from a large one.
    fn list(alphabet: u64) -> impl Strategy<Value = Vec<BlockInfo>> {
        proptest::collection::vec(0..alphabet, 0..200)
            .prop_map(|v| v.into_iter().map(block).collect())
    }

    /// A random edit script applied to `base`: (position fraction, remove, insert ids).
    fn mutated(
        alphabet: u64,
    ) -> impl Strategy<Value = (Vec<BlockInfo>, Vec<BlockInfo>, usize, usize)> {
        (
            list(alphabet),
            proptest::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    0usize..6,
                    proptest::collection::vec(0..alphabet, 0..6),
                ),
                0..6,
            ),
        )
            .prop_map(|(base, script)| {
                let mut new = base.clone();
                let (mut removed, mut added) = (0, 0);
                for (pos, remove, insert) in script {
                    let at = if new.is_empty() {
                        0
                    } else {
                        pos.index(new.len())
                    };
                    let remove = remove.min(new.len() - at);
                    removed += remove;
                    added += insert.len();
                    new.splice(at..at + remove, insert.into_iter().map(block));
                }
                (base, new, removed, added)
            })
    }

    proptest! {
        #[test]
        fn diff_then_apply_rebuilds_any_list(old in list(8), new in list(8)) {
            let edits = diff_blocks(&old, &new);
            prop_assert_eq!(apply_edits(&old, &edits)?, new);
        }

        #[test]
        fn diff_then_apply_rebuilds_edited_lists((old, new, _, _) in mutated(6)) {
            let edits = diff_blocks(&old, &new);
            prop_assert_eq!(apply_edits(&old, &edits)?, new);
        }

        #[test]
        fn diffs_of_distinct_blocks_are_no_larger_than_the_edits_made(
            (old, new, _removed, added) in mutated(1 << 40)
        ) {
            // With no repeats the anchors find a longest common subsequence, so the diff
            // never sends more blocks than the edit script inserted.
            let distinct = |l: &[BlockInfo]| {
                let mut v: Vec<BlockHash> = l.iter().map(|b| b.hash).collect();
                v.sort();
                v.dedup();
                v.len() == l.len()
            };
            prop_assume!(distinct(&old) && distinct(&new));
            let edits = diff_blocks(&old, &new);
            prop_assert!(inserted(&edits) <= added, "{} > {added}", inserted(&edits));
            prop_assert_eq!(apply_edits(&old, &edits)?, new);
        }
    }
}
