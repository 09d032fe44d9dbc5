//! Reusing the blocks of a file's previous local version when a new version is pulled,
//! without taking them through user space twice.
//!
//! A changed file mostly holds the blocks it held before (content-defined chunking keeps
//! the unchanged parts' blocks, also when bytes were inserted before them). The puller
//! used to look each block up in the index, open the file holding it, read it, hash it and
//! write it into the temp file: for a 256 MiB file 8,000 queries, opens, reads and writes.
//! Here, for the file's own previous version (the local index entry, which the caller has
//! just compared with the disk):
//! 1. the blocks the new version shares with it are grouped into runs contiguous in both
//!    files, cut into pieces of at most `PIECE` bytes, and the pieces are copied on every
//!    core at once: with `copy_file_range` (inside the kernel: no copy through our memory;
//!    on file systems with reflinks the kernel may even share the extents), with a
//!    read/write fallback where the call is not supported;
//! 2. then **every copied block is verified in the temp file**: each piece is read back
//!    right after its copy and its blocks hashed against the new version's block list.
//!    A block that does not match (the old file was changed by someone meanwhile, or the
//!    index was wrong) is left to be fetched like any other. Verifying the temp file itself,
//!    rather than the source before copying, leaves no window between check and use:
//!    invariant 2 (no block is used without checking its hash) holds for copied blocks as
//!    for received ones.
//!
//! A run shifted within a page (bytes were inserted or removed before it) is instead read
//! into a buffer, each block verified there and the verified bytes written: on a file
//! system without reflinks the kernel's copy would write each destination page in two
//! pieces, and the buffer's bytes are the very bytes written, so no read-back is needed.
//!
//! The cost per reused byte is thus one in-kernel copy plus one read and a BLAKE3 pass (or
//! a read, a BLAKE3 pass and a write), with no per-block query or open as before.

use super::fsops::FolderFs;
use crate::protocol::{BlockHash, BlockInfo, FileInfo, FileType};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A run whose source and destination offsets differ within a page (bytes inserted or
/// removed before it) is copied through a buffer instead: the kernel's copy would write
/// every destination page in two pieces, and the bytes hashed in the buffer are the very
/// bytes written, so no read-back is needed.
const PAGE: u64 = 4096;

/// Runs are cut into pieces of at most this many bytes (at block boundaries), and the
/// pieces are copied and verified on every core at once: each is copied (in the kernel,
/// or read into a buffer when shifted) and verified while the others are being copied.
/// Small enough for a piece to stay in the cache between the copy (or read), the hash and
/// the write; measured on a 256 MiB file shifted by one byte (bench/notes.md §14, 11.3):
/// 1 MiB spans beat 256 KiB and 8 MiB ones.
const PIECE: u64 = 1 << 20;

/// Files at least this large keep their previous version's descriptor until after the
/// rename (see [`Reused::old`]).
const KEEP_OLD_MIN: u64 = 16 << 20;

/// A range copied from the old file: where from, where to, how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    src: u64,
    dst: u64,
    len: u64,
}

/// What [`from_previous`] did.
#[derive(Debug, Default)]
pub struct Reused {
    /// The blocks still to find elsewhere (offset in the new version, block), in order.
    pub rest: Vec<(u64, BlockInfo)>,
    /// Bytes copied from the previous version and verified in the temp file.
    pub bytes: u64,
    /// The previous version, open, when it is big: whoever renames the new version over
    /// it keeps this descriptor until the rename is done and closes it afterwards, off the
    /// critical path. The kernel frees a replaced file's blocks when its last link and
    /// descriptor go, so with the descriptor open the rename does not wait for a large
    /// file's blocks to be freed (28 ms for 256 MiB on ext4).
    pub old: Option<File>,
}

/// Copies into `temp` every block of `todo` (offset in the new version, block) that the
/// previous local version `old` holds, and verifies it there. Nothing is copied when `old`
/// is not a live file whose size and mtime on disk are still those of the index entry.
pub fn from_previous(
    fs: &FolderFs,
    old: Option<&FileInfo>,
    temp: &File,
    todo: Vec<(u64, BlockInfo)>,
) -> Reused {
    let nothing = |rest| Reused {
        rest,
        ..Reused::default()
    };
    let Some(old) = old.filter(|o| o.file_type == FileType::File && !o.deleted) else {
        return nothing(todo);
    };
    if old.blocks.is_empty() || todo.is_empty() {
        return nothing(todo);
    }
    let Ok(src) = fs.open_read(&old.name) else {
        return nothing(todo);
    };
    let same = src.metadata().is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_file()
            && m.len() == old.size
            && m.mtime() * 1_000_000_000 + m.mtime_nsec() == old.modified_ns
    });
    if !same {
        return nothing(todo);
    }
    let mut at: HashMap<BlockHash, u64> = HashMap::with_capacity(old.blocks.len());
    let mut offset = 0u64;
    for b in &old.blocks {
        at.entry(b.hash).or_insert(offset);
        offset += u64::from(b.size);
    }
    // Pieces of runs contiguous in both files, with the blocks they hold (offsets in the
    // new version).
    let mut pieces: Vec<(Run, Vec<(u64, BlockInfo)>)> = Vec::new();
    let mut rest: Vec<(u64, BlockInfo)> = Vec::new();
    for (dst, b) in todo {
        let Some(&src_off) = at.get(&b.hash) else {
            rest.push((dst, b));
            continue;
        };
        let len = u64::from(b.size);
        match pieces.last_mut() {
            Some((r, blocks))
                if r.dst + r.len == dst && r.src + r.len == src_off && r.len + len <= PIECE =>
            {
                r.len += len;
                blocks.push((dst, b));
            }
            _ => pieces.push((
                Run {
                    src: src_off,
                    dst,
                    len,
                },
                vec![(dst, b)],
            )),
        }
    }
    let t0 = std::time::Instant::now();
    let done: Vec<(u64, Vec<(u64, BlockInfo)>)> = pieces
        .into_par_iter()
        .map_init(Vec::new, |buf, (r, blocks)| {
            let done = copy_piece(&src, temp, r, blocks, buf);
            start_writeback(temp, r);
            done
        })
        .collect();
    let mut good = 0u64;
    for (g, bad) in done {
        good += g;
        rest.extend(bad);
    }
    rest.sort_by_key(|(o, _)| *o);
    tracing::debug!(
        name = %old.name,
        reused = good,
        left = rest.len(),
        took = ?t0.elapsed(),
        "copied from the previous version"
    );
    Reused {
        rest,
        bytes: good,
        old: (old.size >= KEEP_OLD_MIN).then_some(src),
    }
}

/// Starts writing the pages of a finished piece to the disk, so that the `fdatasync` the
/// caller must do before the rename (invariant 1) finds less left to write. Only a hint
/// (`POSIX_FADV_DONTNEED` starts the writeback of the range's dirty pages; pages under
/// writeback are not dropped). Only the pages that no other piece writes: the page a piece
/// shares with its neighbour is left to the final sync, as a write to a page under
/// writeback may have to wait for it to complete.
fn start_writeback(temp: &File, r: Run) {
    let start = r.dst.div_ceil(PAGE) * PAGE;
    let end = (r.dst + r.len) / PAGE * PAGE;
    if let Some(len) = end.checked_sub(start).and_then(std::num::NonZeroU64::new) {
        let _ = rustix::fs::fadvise(temp, start, Some(len), rustix::fs::Advice::DontNeed);
    }
}

/// Copies one piece of a run and verifies its blocks where they landed: returns the bytes
/// verified and the blocks that did not match or could not be copied.
///
/// At the same offset within a page, the piece is copied in the kernel and read back into
/// `buf` to be checked, so what is checked is what the temp file holds. Shifted within a
/// page, it is read into `buf`, checked there and the checked bytes written.
fn copy_piece(
    src: &File,
    dst: &File,
    r: Run,
    blocks: Vec<(u64, BlockInfo)>,
    buf: &mut Vec<u8>,
) -> (u64, Vec<(u64, BlockInfo)>) {
    let Ok(len) = usize::try_from(r.len) else {
        return (0, blocks);
    };
    buf.resize(len, 0);
    let shifted = r.src % PAGE != r.dst % PAGE;
    let read = if shifted {
        src.read_exact_at(buf, r.src)
    } else {
        copy_run(src, dst, r).and_then(|()| dst.read_exact_at(buf, r.dst))
    };
    if let Err(e) = read {
        tracing::debug!(error = %e, "cannot copy from the previous version");
        // Looked for elsewhere.
        return (0, blocks);
    }
    let block_at = |off: u64, b: &BlockInfo| {
        let i = (off - r.dst) as usize;
        &buf[i..i + b.size as usize]
    };
    let ok: Vec<bool> = blocks
        .iter()
        .map(|(off, b)| BlockHash::of(block_at(*off, b)) == b.hash)
        .collect();
    if shifted && ok.iter().all(|o| *o) {
        return if dst.write_all_at(buf, r.dst).is_ok() {
            (r.len, Vec::new())
        } else {
            (0, blocks)
        };
    }
    let mut good = 0u64;
    let mut bad = Vec::new();
    for ((off, b), ok) in blocks.into_iter().zip(ok) {
        // A shifted block that matched still has to be written.
        if ok && (!shifted || dst.write_all_at(block_at(off, &b), off).is_ok()) {
            good += u64::from(b.size);
        } else {
            bad.push((off, b));
        }
    }
    (good, bad)
}

/// Copies one run, in the kernel where it can, else through a buffer.
fn copy_run(src: &File, dst: &File, r: Run) -> io::Result<()> {
    let (mut off_in, mut off_out, mut left) = (r.src, r.dst, r.len);
    while left > 0 {
        let n = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), n) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the previous version is shorter than its index entry",
                ));
            }
            Ok(done) => left -= done as u64,
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP,
            ) => {
                return copy_by_buffer(src, dst, off_in, off_out, left);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_by_buffer(
    src: &File,
    dst: &File,
    mut off_in: u64,
    mut off_out: u64,
    mut left: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; (1usize << 20).min(usize::try_from(left).unwrap_or(1 << 20))];
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        src.read_exact_at(&mut buf[..n], off_in)?;
        dst.write_all_at(&buf[..n], off_out)?;
        (off_in, off_out, left) = (off_in + n as u64, off_out + n as u64, left - n as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ShortId;
    use crate::protocol::Vector;
    use crate::scan::random_bytes as noise;
    use std::os::unix::fs::MetadataExt;

    fn entry(root: &std::path::Path, name: &str, data: &[u8]) -> FileInfo {
        let md = std::fs::metadata(root.join(name)).expect("stat");
        FileInfo {
            name: name.into(),
            file_type: FileType::File,
            size: data.len() as u64,
            permissions: 0o644,
            modified_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            modified_by: ShortId(1),
            deleted: false,
            version: Vector::new(),
            sequence: 1,
            blocks: crate::scan::blocks_of(data),
            symlink_target: String::new(),
        }
    }

    fn todo_of(blocks: &[BlockInfo]) -> Vec<(u64, BlockInfo)> {
        let mut off = 0;
        blocks
            .iter()
            .map(|b| {
                let here = off;
                off += u64::from(b.size);
                (here, *b)
            })
            .collect()
    }

    /// Old version on disk, new version's block list: what the temp file gets.
    fn run(old: &[u8], new: &[u8], tamper: bool) -> (Vec<u8>, Vec<(u64, BlockInfo)>, u64) {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("f"), old).expect("write");
        let prev = entry(dir.path(), "f", old);
        if tamper {
            // Changed behind the index's back, size and mtime kept: nothing may be trusted.
            let mut t = old.to_vec();
            t[old.len() / 2] ^= 1;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join("f"))
                .expect("open");
            f.write_all_at(&t[old.len() / 2..old.len() / 2 + 1], (old.len() / 2) as u64)
                .expect("write");
            let ts = std::fs::FileTimes::new().set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_nanos(prev.modified_ns as u64),
            );
            f.set_times(ts).expect("utimes");
        }
        let fs = FolderFs::open(dir.path()).expect("open");
        let (temp, _) = fs.open_temp("f").expect("temp");
        let blocks = crate::scan::blocks_of(new);
        let Reused {
            rest,
            bytes: reused,
            ..
        } = from_previous(&fs, Some(&prev), &temp, todo_of(&blocks));
        temp.set_len(new.len() as u64).expect("len");
        let mut got = vec![0u8; new.len()];
        temp.read_exact_at(&mut got, 0).expect("read");
        (got, rest, reused)
    }

    /// `got` holds `new`'s bytes everywhere but in the blocks `rest` left to fetch (zeros).
    #[track_caller]
    fn assert_new_outside(got: &[u8], new: &[u8], rest: &[(u64, BlockInfo)]) {
        let mut expect = new.to_vec();
        for (off, b) in rest {
            let o = *off as usize;
            expect[o..o + b.size as usize].fill(0);
        }
        assert!(got == expect, "copied bytes differ from the new version");
    }

    #[test]
    fn shared_blocks_are_copied_and_verified_the_rest_left_to_fetch() {
        let old = noise(3 << 20, 7);
        // 64 KiB overwritten in the middle, one byte inserted at the start.
        let mut new = old.clone();
        new[1 << 20..(1 << 20) + (64 << 10)].copy_from_slice(&noise(64 << 10, 9));
        new.insert(0, b'x');
        let (got, rest, reused) = run(&old, &new, false);
        assert!(!rest.is_empty() && rest.len() < 10, "left: {}", rest.len());
        let left: u64 = rest.iter().map(|(_, b)| u64::from(b.size)).sum();
        assert_eq!(reused + left, new.len() as u64);
        // Every byte outside the blocks left to fetch is the new version's.
        assert_new_outside(&got, &new, &rest);
    }

    #[test]
    fn a_shifted_previous_version_changed_behind_the_index_is_not_trusted() {
        let old = noise(2 << 20, 5);
        let mut new = old.clone();
        new.insert(0, b'y');
        let (got, rest, reused) = run(&old, &new, true);
        let left: u64 = rest.iter().map(|(_, b)| u64::from(b.size)).sum();
        assert_eq!(reused + left, new.len() as u64);
        let mid = (old.len() / 2 + 1) as u64;
        assert!(
            rest.iter()
                .any(|(o, b)| *o <= mid && mid < o + u64::from(b.size)),
            "a tampered block was kept"
        );
        // What was written is the new version's bytes.
        assert_new_outside(&got, &new, &rest);
    }

    #[test]
    fn a_previous_version_changed_behind_the_index_is_not_trusted() {
        let old = noise(2 << 20, 3);
        let mut new = old.clone();
        new[0] ^= 0xff;
        let (_, rest, reused) = run(&old, &new, true);
        let left: u64 = rest.iter().map(|(_, b)| u64::from(b.size)).sum();
        assert_eq!(reused + left, new.len() as u64);
        // The block holding the tampered byte is among those left to fetch.
        let mid = (old.len() / 2) as u64;
        assert!(
            rest.iter()
                .any(|(o, b)| *o <= mid && mid < o + u64::from(b.size)),
            "a tampered block was kept"
        );
    }
}
