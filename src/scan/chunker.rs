//! Content-defined chunking (FastCDC 2020) and BLAKE3 block hashing, streamed through a
//! reusable buffer.
//!
//! Files are never memory-mapped: a file truncated while mapped would kill the process with
//! SIGBUS. They are read into a buffer that is chunked in place; the last chunk of a
//! buffer is carried over to the next round unless the reader is at its end. FastCDC
//! decides a cut point from the bytes since the chunk's start alone, so the result equals
//! chunking the whole file at once (a test holds us to that).

use crate::protocol::{BlockHash, BlockInfo};
use fastcdc::v2020::FastCDC;
use rayon::prelude::*;
use std::io::{self, Read};

// Block sizes. The wire cost of a local edit is the blocks whose bytes changed plus the
// ones whose boundaries moved:
// - a 1 MiB overwrite in a 256 MiB file re-sends the overwritten range plus about one
//   average block on each side (~2 × AVG = 64 KiB): ≈ 1.06 MiB, within the 1.2 MiB budget;
// - a 1-byte insertion at the start changes at most the block it lands in and, when the
//   insertion moves a cut point, the next one: ≤ 2 × MAX = 256 KiB;
// - smaller blocks would cut those costs further but lengthen every block list (a 256 MiB
//   file is ~8,000 blocks at 32 KiB) and the index with it.
// - the cut search skips the first MIN_BLOCK bytes of every block: at 16 KiB (mean block
//   about 43 KiB on random data) it reads 62 % of the bytes instead of 79 % at 8 KiB
//   (mean 39 KiB), 23 % less time in FastCDC's serial gear hash, which costs more per
//   byte than BLAKE3 on this class of machine. Measured with `bench/scan.py` on a quiet
//   2-core machine: 0.45x `b3sum --num-threads 2` at 8 KiB, 0.51x (twice, 5 repetitions
//   each) at 16 KiB; D1 on the wire 1,131 KiB, D2 30 KiB, within budget.
// FastCDC needs even sizes (it tests candidate cut points in pairs).
/// Smallest block (except a file's last, or a file shorter than this: one block).
pub const MIN_BLOCK: usize = 16 * 1024;
/// The size FastCDC aims for.
pub const AVG_BLOCK: usize = 32 * 1024;
/// Largest block: a cut is forced here when the content offers none.
pub const MAX_BLOCK: usize = 128 * 1024;

/// Bytes read per round (a hasher holds two buffers of this size). Measured on the 2-core
/// reference machine with `benches/chunk.rs`: 1 and 2 MiB hash four 256 MiB files alike
/// (3.2–3.3 GB/s), but one large file at 1.8–2.2 vs 2.3–2.4 GB/s (longer rounds waste less
/// of the pipeline); 4 MiB was no faster and holds twice the memory. Must be at least
/// 2 × MAX_BLOCK so every full buffer yields a block.
pub const READ_BUFFER: usize = 2 << 20;

/// Below this many blocks in a buffer, hashing them on the calling thread is cheaper than
/// handing them to the pool.
const PAR_MIN_BLOCKS: usize = 4;

/// The blocks of a byte slice held whole in memory: the reference the streaming hasher
/// must match, and handy for tests elsewhere.
pub fn blocks_of(data: &[u8]) -> Vec<BlockInfo> {
    FastCDC::new(data, MIN_BLOCK, AVG_BLOCK, MAX_BLOCK)
        .map(|c| block(&data[c.offset..c.offset + c.length]))
        .collect()
}

fn block(bytes: &[u8]) -> BlockInfo {
    BlockInfo {
        hash: BlockHash::of(bytes),
        // A block is at most MAX_BLOCK long, which fits in u32.
        size: bytes.len() as u32,
    }
}

/// Why hashing a stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Io(io::Error),
    /// `should_stop` returned true.
    #[error("stopped before the end")]
    Stopped,
}

/// Reusable read buffers: one hasher per hashing worker, so memory stays bounded by the
/// number of workers (2 × the buffer size each), never by file sizes.
pub struct BlockHasher {
    /// Two buffers: while the blocks of one are hashed, the next is read and cut.
    bufs: [Round; 2],
}

/// One buffer's worth of a stream.
#[derive(Default)]
struct Round {
    data: Vec<u8>,
    filled: usize,
    /// `(offset, length)` of the chunks to hash now: all of them at the end of the stream,
    /// else all but the last, which may be cut short by the buffer's end rather than by
    /// the content and is carried over to the next round.
    cuts: Vec<(usize, usize)>,
    eof: bool,
}

impl Round {
    /// Fills the buffer (after `carry`, the previous round's unfinished chunk) and cuts it.
    fn fill(&mut self, carry: &[u8], reader: &mut impl Read) -> io::Result<()> {
        self.data[..carry.len()].copy_from_slice(carry);
        self.filled = carry.len();
        while self.filled < self.data.len() && !self.eof {
            match reader.read(&mut self.data[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.cuts.clear();
        let data = &self.data[..self.filled];
        self.cuts.extend(
            FastCDC::new(data, MIN_BLOCK, AVG_BLOCK, MAX_BLOCK).map(|c| (c.offset, c.length)),
        );
        // A full buffer is at least 2 × MAX_BLOCK long, so at least one chunk is complete.
        if !self.eof {
            self.cuts.pop();
        }
        Ok(())
    }

    /// Bytes covered by the chunks to hash now.
    fn consumed(&self) -> usize {
        self.cuts.last().map_or(0, |&(o, l)| o + l)
    }

    fn hash(&self) -> Vec<BlockInfo> {
        let one = |&(o, l): &(usize, usize)| block(&self.data[o..o + l]);
        if self.cuts.len() < PAR_MIN_BLOCKS {
            self.cuts.iter().map(one).collect()
        } else {
            self.cuts.par_iter().map(one).collect()
        }
    }
}

impl Default for BlockHasher {
    fn default() -> Self {
        Self::with_buffer(READ_BUFFER)
    }
}

impl BlockHasher {
    /// A hasher reading `size` bytes per round (at least 2 × MAX_BLOCK).
    pub fn with_buffer(size: usize) -> Self {
        let size = size.max(2 * MAX_BLOCK);
        let round = || Round {
            data: vec![0; size],
            ..Round::default()
        };
        Self {
            bufs: [round(), round()],
        }
    }

    /// Reads `reader` to its end and returns its blocks and its length. `on_bytes` is told
    /// how many bytes each round hashed; `should_stop` is asked between rounds.
    ///
    /// FastCDC finds cut points one after the other, so it cannot be split across cores;
    /// instead, the next buffer is read and cut while the blocks of this one are hashed in
    /// parallel.
    pub fn hash_reader(
        &mut self,
        mut reader: impl Read + Send,
        on_bytes: &mut dyn FnMut(u64),
        should_stop: &dyn Fn() -> bool,
    ) -> Result<(Vec<BlockInfo>, u64), HashError> {
        let [cur, next] = &mut self.bufs;
        cur.eof = false;
        next.eof = false;
        cur.fill(&[], &mut reader).map_err(HashError::Io)?;
        let mut blocks = Vec::new();
        let mut total = 0u64;
        loop {
            if should_stop() {
                return Err(HashError::Stopped);
            }
            let consumed = cur.consumed();
            if cur.eof {
                // The last round (the only one of a small file): nothing to overlap.
                blocks.extend(cur.hash());
                on_bytes(consumed as u64);
                return Ok((blocks, total + consumed as u64));
            }
            let (hashed, read) = rayon::join(
                || cur.hash(),
                || next.fill(&cur.data[consumed..cur.filled], &mut reader),
            );
            blocks.extend(hashed);
            total += consumed as u64;
            on_bytes(consumed as u64);
            read.map_err(HashError::Io)?;
            std::mem::swap(cur, next);
        }
    }
}

/// Below this size a changed file is simply cut and hashed again.
pub const INCREMENTAL_MIN: u64 = 8 << 20;

/// Bytes re-cut in a row without meeting a block of the previous version again, after
/// which [`BlockHasher::hash_from_previous`] gives up (the file is read whole instead):
/// bounds the extra work when a file was rewritten rather than edited.
const RECUT_MAX: u64 = 8 << 20;

impl BlockHasher {
    /// The blocks of a file of `len` bytes whose previous version was cut into `prev`,
    /// read with `read_at` (fill the buffer from that offset), or `None` when the previous
    /// blocks are of no use (nothing to do then but [`Self::hash_reader`]).
    ///
    /// The result is exactly the block list FastCDC gives for the whole file, provided
    /// `prev` is FastCDC's cut (with these sizes) of the previous version: the caller only
    /// passes block lists this device's scanner made. The reason: from a cut point `p` of
    /// the new file, FastCDC's next cut depends only on the bytes from `p` up to that cut
    /// and on the window `min(bytes left, MAX_BLOCK)`. So when a block of the previous
    /// version, found at least `MAX_BLOCK` before the previous version's end, holds the
    /// very bytes found at `p` (same BLAKE3 hash) and the new file too has `MAX_BLOCK`
    /// bytes or more from `p` on, the new file's cut after `p` is that block's end. Such
    /// blocks are checked in parallel, a read buffer at a time, at the offsets where they
    /// would be if nothing before them changed; where one does not match, blocks are cut
    /// with FastCDC one at a time until one equals a block of the previous version again
    /// (the content re-synchronised, also after an insertion or a deletion: the offset
    /// shift is learnt from that block), then checking resumes with the blocks that
    /// followed it. The blocks near either end of file are always cut.
    ///
    /// Cost for an edit: one read and a BLAKE3 pass over the file, on every core, instead
    /// of the serial gear hash over most bytes; the changed region is cut as usual.
    pub fn hash_from_previous(
        &mut self,
        read_at: &(dyn Fn(&mut [u8], u64) -> io::Result<()> + Sync),
        len: u64,
        prev: &[BlockInfo],
        on_bytes: &mut dyn FnMut(u64),
        should_stop: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<BlockInfo>>, HashError> {
        let max = MAX_BLOCK as u64;
        let mut at = Vec::with_capacity(prev.len());
        let mut by_hash: std::collections::HashMap<BlockHash, usize> =
            std::collections::HashMap::with_capacity(prev.len());
        let mut old_len = 0u64;
        for (i, b) in prev.iter().enumerate() {
            at.push(old_len);
            by_hash.entry(b.hash).or_insert(i);
            old_len += u64::from(b.size);
        }
        if len < 2 * max || old_len < 2 * max {
            return Ok(None);
        }
        // A list cut with other sizes (an index written by an earlier version) would
        // carry its cut points over: such a list is not used. Its blocks would almost
        // surely break these bounds somewhere.
        let sizes = MIN_BLOCK as u32..=MAX_BLOCK as u32;
        if prev[..prev.len() - 1]
            .iter()
            .any(|b| !sizes.contains(&b.size))
        {
            return Ok(None);
        }
        let [batch, window] = &mut self.bufs;
        let batch = &mut batch.data;
        let window = &mut window.data;
        let mut out: Vec<BlockInfo> = Vec::with_capacity(prev.len() + 8);
        // `p` is always a cut point of the new file; `next` the block of the previous
        // version expected there, if any.
        let (mut p, mut next) = (0u64, Some(0usize));
        let mut recut = 0u64;
        while p < len {
            if should_stop() {
                return Err(HashError::Stopped);
            }
            if let Some(i) = next {
                // The blocks from `i` on at the offsets they would have, as many as the
                // buffer holds; only where both files have a full window after them.
                let mut end = p;
                let mut j = i;
                while let Some(b) = prev.get(j) {
                    let size = u64::from(b.size);
                    if at[j] + max > old_len
                        || end + max > len
                        || end + size - p > batch.len() as u64
                    {
                        break;
                    }
                    end += size;
                    j += 1;
                }
                if j > i {
                    let n = (end - p) as usize;
                    read_at(&mut batch[..n], p).map_err(HashError::Io)?;
                    let data = &batch[..n];
                    let mut offs = Vec::with_capacity(j - i);
                    let mut o = 0usize;
                    for b in &prev[i..j] {
                        offs.push(o);
                        o += b.size as usize;
                    }
                    let same = |(k, b): (usize, &BlockInfo)| {
                        BlockHash::of(&data[offs[k]..offs[k] + b.size as usize]) == b.hash
                    };
                    let ok: Vec<bool> = if j - i < PAR_MIN_BLOCKS {
                        prev[i..j].iter().enumerate().map(same).collect()
                    } else {
                        prev[i..j].par_iter().enumerate().map(same).collect()
                    };
                    let k = ok.iter().take_while(|o| **o).count();
                    let taken: u64 = prev[i..i + k].iter().map(|b| u64::from(b.size)).sum();
                    out.extend_from_slice(&prev[i..i + k]);
                    p += taken;
                    on_bytes(taken);
                    if k > 0 {
                        recut = 0;
                    }
                    if k == j - i {
                        next = Some(j);
                        continue;
                    }
                }
            }
            // Cut one block at `p`, as FastCDC over the whole file would.
            let w = (len - p).min(max) as usize;
            read_at(&mut window[..w], p).map_err(HashError::Io)?;
            let size = FastCDC::new(&window[..w], MIN_BLOCK, AVG_BLOCK, MAX_BLOCK)
                .next()
                .map_or(w, |c| c.length);
            let b = block(&window[..size]);
            out.push(b);
            p += size as u64;
            on_bytes(size as u64);
            next = by_hash.get(&b.hash).map(|k| k + 1);
            recut += size as u64;
            if next.is_none() && recut > RECUT_MAX {
                tracing::debug!(at = p, "no block of the previous version found again");
                return Ok(None);
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// Deterministic pseudo-random bytes (SplitMix64): incompressible test data without a
    /// dependency.
    pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            out.extend_from_slice(&z.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Hands out at most `step` bytes per read, to exercise short reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn stream(data: &[u8], buffer: usize, step: usize) -> (Vec<BlockInfo>, u64) {
        let mut h = BlockHasher::with_buffer(buffer);
        let mut reported = 0;
        let out = h
            .hash_reader(Trickle { data, step }, &mut |n| reported += n, &|| false)
            .expect("reading from memory cannot fail");
        assert_eq!(
            reported,
            data.len() as u64,
            "progress adds up to the length"
        );
        out
    }

    /// Bytes of `new` that sit in blocks `old` does not have: what a peer holding `old`
    /// must fetch.
    fn changed_bytes(old: &[BlockInfo], new: &[BlockInfo]) -> (usize, u64) {
        let known: HashSet<BlockHash> = old.iter().map(|b| b.hash).collect();
        let fresh: Vec<_> = new.iter().filter(|b| !known.contains(&b.hash)).collect();
        (fresh.len(), fresh.iter().map(|b| u64::from(b.size)).sum())
    }

    #[test]
    fn sizes_are_within_bounds_and_cover_the_data() {
        let data = random_bytes(4 << 20, 1);
        let blocks = blocks_of(&data);
        let total: u64 = blocks.iter().map(|b| u64::from(b.size)).sum();
        assert_eq!(total, data.len() as u64);
        for b in &blocks[..blocks.len() - 1] {
            assert!((MIN_BLOCK..=MAX_BLOCK).contains(&(b.size as usize)));
        }
        let avg = data.len() / blocks.len();
        assert!(
            (AVG_BLOCK / 2..=AVG_BLOCK * 2).contains(&avg),
            "average block {avg}"
        );
    }

    #[test]
    fn small_and_empty_inputs() {
        assert!(blocks_of(&[]).is_empty());
        let small = random_bytes(MIN_BLOCK - 1, 2);
        assert_eq!(blocks_of(&small).len(), 1);
        assert_eq!(blocks_of(&small)[0].hash, BlockHash::of(&small));
        assert_eq!(stream(&[], 2 * MAX_BLOCK, 1000), (vec![], 0));
        // Zeros never offer a cut point: blocks are forced at MAX_BLOCK.
        let zeros = vec![0u8; 3 * MAX_BLOCK + 5];
        let sizes: Vec<u32> = blocks_of(&zeros).iter().map(|b| b.size).collect();
        let max = MAX_BLOCK as u32;
        assert_eq!(sizes, vec![max, max, max, 5]);
        assert_eq!(stream(&zeros, 2 * MAX_BLOCK, 7777).0, blocks_of(&zeros));
    }

    #[test]
    fn one_byte_insertion_near_the_start_changes_at_most_two_blocks() {
        let old = random_bytes(4 << 20, 3);
        let mut new = old.clone();
        new.insert(1000, 0x5a);
        let (a, b) = (blocks_of(&old), blocks_of(&new));
        let (count, bytes) = changed_bytes(&a, &b);
        assert!(count <= 2, "{count} blocks changed");
        assert!(bytes <= 2 * MAX_BLOCK as u64, "{bytes} bytes changed");
        // Everything after the changed blocks is the same list.
        assert_eq!(a[a.len() - (b.len() - count)..], b[count..]);
    }

    #[test]
    fn one_mib_overwrite_in_the_middle_costs_little_more_than_one_mib() {
        let old = random_bytes(16 << 20, 4);
        let mut new = old.clone();
        let patch = random_bytes(1 << 20, 5);
        let at = 8 << 20;
        new[at..at + patch.len()].copy_from_slice(&patch);
        let (_, bytes) = changed_bytes(&blocks_of(&old), &blocks_of(&new));
        assert!(bytes >= 1 << 20);
        assert!(bytes <= (1 << 20) + (256 << 10), "{bytes} bytes changed");
    }

    #[test]
    fn streaming_equals_whole_slice_on_large_random_data() {
        let data = random_bytes(24 << 20, 6);
        let (blocks, total) = stream(&data, READ_BUFFER, usize::MAX);
        assert_eq!(total, data.len() as u64);
        assert_eq!(blocks, blocks_of(&data));
    }

    /// `new` cut with the help of `old`'s blocks, read from memory.
    fn from_previous(old: &[u8], new: &[u8]) -> Option<Vec<BlockInfo>> {
        let read_at = |buf: &mut [u8], off: u64| -> io::Result<()> {
            let o = off as usize;
            let src = new
                .get(o..o + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        };
        let mut reported = 0;
        let out = BlockHasher::default()
            .hash_from_previous(
                &read_at,
                new.len() as u64,
                &blocks_of(old),
                &mut |n| reported += n,
                &|| false,
            )
            .expect("reading from memory cannot fail");
        if out.is_some() {
            assert_eq!(reported, new.len() as u64, "progress adds up to the length");
        }
        out
    }

    /// An edit of `data`: (kind, where, how many bytes); kinds 0 overwrite, 1 insert,
    /// 2 delete, 3 append, 4 truncate.
    fn edited(data: &[u8], kind: u8, at: usize, n: usize, seed: u64) -> Vec<u8> {
        let at = at.min(data.len());
        let fresh = random_bytes(n, seed);
        let mut out = data.to_vec();
        match kind {
            0 => {
                let end = (at + n).min(out.len());
                out[at..end].copy_from_slice(&fresh[..end - at]);
            }
            1 => {
                out.splice(at..at, fresh);
            }
            2 => {
                out.drain(at..(at + n).min(data.len()));
            }
            3 => out.extend_from_slice(&fresh),
            _ => out.truncate(data.len().saturating_sub(n)),
        }
        out
    }

    #[test]
    fn previous_blocks_give_the_full_cut_for_the_bench_edits() {
        let old = random_bytes(12 << 20, 21);
        // D1: 1 MiB overwritten in the middle; D2: one byte inserted at the start.
        let d1 = edited(&old, 0, 6 << 20, 1 << 20, 22);
        let d2 = edited(&old, 1, 0, 1, 23);
        for new in [&d1, &d2, &old] {
            let got = from_previous(&old, new).expect("an edit re-synchronises");
            assert_eq!(got, blocks_of(new));
        }
    }

    #[test]
    fn a_list_cut_with_other_sizes_is_not_used() {
        let old = random_bytes(4 << 20, 26);
        let new = edited(&old, 1, 0, 1, 27);
        let eight: Vec<BlockInfo> = FastCDC::new(&old, 8 << 10, AVG_BLOCK, MAX_BLOCK)
            .map(|c| block(&old[c.offset..c.offset + c.length]))
            .collect();
        let read_at = |buf: &mut [u8], off: u64| -> io::Result<()> {
            let o = off as usize;
            buf.copy_from_slice(&new[o..o + buf.len()]);
            Ok(())
        };
        let got = BlockHasher::default()
            .hash_from_previous(&read_at, new.len() as u64, &eight, &mut |_| {}, &|| false)
            .expect("reading from memory cannot fail");
        assert_eq!(got, None);
    }

    #[test]
    fn a_rewritten_file_is_left_to_the_full_cut() {
        let old = random_bytes(24 << 20, 24);
        let new = random_bytes(24 << 20, 25);
        assert_eq!(from_previous(&old, &new), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the edits, cutting with the previous blocks gives exactly the blocks
        /// of a full cut (or declines).
        #[test]
        fn previous_blocks_give_exactly_the_full_cut(
            len in 0usize..(3 << 20),
            edits in proptest::collection::vec(
                (0u8..5, prop_oneof![Just(0.0f64), Just(1.0f64), 0.0f64..1.0],
                 prop_oneof![1usize..64, 1usize..(300 << 10), 1usize..(2 << 20)],
                 any::<u64>()),
                1..4),
            seed in any::<u64>(),
            low_entropy in any::<bool>(),
        ) {
            let mut old = random_bytes(len, seed);
            if low_entropy {
                // Runs without cut points force MAX_BLOCK cuts.
                for (i, b) in old.iter_mut().enumerate() {
                    if (i / 300_000) % 2 == 0 { *b = 0; }
                }
            }
            let mut new = old.clone();
            for (kind, at, n, s) in edits {
                let pos = (at * new.len() as f64) as usize;
                new = edited(&new, kind, pos, n, s);
            }
            let r = from_previous(&old, &new);
            if let Some(got) = r {
                prop_assert_eq!(got, blocks_of(&new));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        // Sizes around multiples of the smallest buffer, and reads of every length, so
        // carried-over tails meet buffer ends at every phase.
        #[test]
        fn streaming_equals_whole_slice(
            rounds in 0usize..5,
            delta in -70_000i64..70_000,
            step in prop_oneof![Just(usize::MAX), 1usize..200_000],
            seed in any::<u64>(),
            low_entropy in any::<bool>(),
        ) {
            let buffer = 2 * MAX_BLOCK;
            let len = (rounds as i64 * buffer as i64 + delta).max(0) as usize;
            let mut data = random_bytes(len, seed);
            if low_entropy {
                // Long runs without cut points force MAX_BLOCK cuts across buffer ends.
                for (i, b) in data.iter_mut().enumerate() {
                    if (i / 100_000) % 2 == 0 { *b = 0; }
                }
            }
            let (blocks, total) = stream(&data, buffer, step);
            prop_assert_eq!(total, data.len() as u64);
            prop_assert_eq!(blocks, blocks_of(&data));
        }
    }
}
