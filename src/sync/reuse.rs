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
//!    files and copied with `copy_file_range` (inside the kernel: no copy through our
//!    memory; on file systems with reflinks the kernel may even share the extents), with a
//!    read/write fallback where the call is not supported;
//! 2. then **every copied block is verified in the temp file**: read back in spans of at
//!    most `VERIFY_SPAN` and hashed (in parallel) against the new version's block list.
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

/// Most bytes read back at once to verify copied blocks.
const VERIFY_SPAN: usize = 8 << 20;

/// A run whose source and destination offsets differ within a page (bytes inserted or
/// removed before it) is copied through a buffer instead: the kernel's copy would write
/// every destination page in two pieces, and the bytes hashed in the buffer are the very
/// bytes written, so no read-back is needed.
const PAGE: u64 = 4096;

/// Bytes read, verified and written at once on that path: small enough to stay in the
/// cache between the read, the hash and the write.
const COPY_SPAN: usize = 1 << 20;

/// A range copied from the old file: where from, where to, how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    src: u64,
    dst: u64,
    len: u64,
}

/// Copies into `temp` every block of `todo` (offset in the new version, block) that the
/// previous local version `old` holds, and verifies it there. Returns the blocks still to
/// find elsewhere and the bytes reused. Nothing is copied when `old` is not a live file
/// whose size and mtime on disk are still those of the index entry.
pub fn from_previous(
    fs: &FolderFs,
    old: Option<&FileInfo>,
    temp: &File,
    todo: Vec<(u64, BlockInfo)>,
) -> (Vec<(u64, BlockInfo)>, u64) {
    let Some(old) = old.filter(|o| o.file_type == FileType::File && !o.deleted) else {
        return (todo, 0);
    };
    if old.blocks.is_empty() || todo.is_empty() {
        return (todo, 0);
    }
    let Ok(src) = fs.open_read(&old.name) else {
        return (todo, 0);
    };
    let same = src.metadata().is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_file()
            && m.len() == old.size
            && m.mtime() * 1_000_000_000 + m.mtime_nsec() == old.modified_ns
    });
    if !same {
        return (todo, 0);
    }
    let mut at: HashMap<BlockHash, u64> = HashMap::with_capacity(old.blocks.len());
    let mut offset = 0u64;
    for b in &old.blocks {
        at.entry(b.hash).or_insert(offset);
        offset += u64::from(b.size);
    }
    // Runs with the blocks they hold (offsets in the new version).
    let mut runs: Vec<(Run, Vec<(u64, BlockInfo)>)> = Vec::new();
    let mut rest: Vec<(u64, BlockInfo)> = Vec::new();
    for (dst, b) in todo {
        let Some(&src_off) = at.get(&b.hash) else {
            rest.push((dst, b));
            continue;
        };
        let len = u64::from(b.size);
        match runs.last_mut() {
            Some((r, blocks)) if r.dst + r.len == dst && r.src + r.len == src_off => {
                r.len += len;
                blocks.push((dst, b));
            }
            _ => runs.push((
                Run {
                    src: src_off,
                    dst,
                    len,
                },
                vec![(dst, b)],
            )),
        }
    }
    let mut good = 0u64;
    let mut to_verify: Vec<(u64, BlockInfo)> = Vec::new();
    for (r, blocks) in runs {
        if r.src % PAGE == r.dst % PAGE {
            match copy_run(&src, temp, r) {
                Ok(()) => to_verify.extend(blocks),
                Err(e) => {
                    tracing::debug!(name = %old.name, error = %e, "cannot copy from the previous version");
                    // Looked for elsewhere.
                    rest.extend(blocks);
                }
            }
        } else {
            let (g, bad) = copy_checked(&src, temp, r, blocks);
            good += g;
            rest.extend(bad);
        }
    }
    let (g, bad) = verify(temp, to_verify.into_iter());
    good += g;
    rest.extend(bad);
    rest.sort_by_key(|(o, _)| *o);
    (rest, good)
}

/// Copies the blocks of a run through a buffer, each verified in the buffer before it is
/// written: returns the bytes written and the blocks that did not match or could not be
/// read.
fn copy_checked(
    src: &File,
    dst: &File,
    r: Run,
    blocks: Vec<(u64, BlockInfo)>,
) -> (u64, Vec<(u64, BlockInfo)>) {
    copy_checked_in(src, dst, r, blocks, COPY_SPAN)
}

fn copy_checked_in(
    src: &File,
    dst: &File,
    r: Run,
    blocks: Vec<(u64, BlockInfo)>,
    span_max: usize,
) -> (u64, Vec<(u64, BlockInfo)>) {
    let mut good = 0u64;
    let mut bad = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut span: Vec<(u64, BlockInfo)> = Vec::new();
    let mut flush = |span: &mut Vec<(u64, BlockInfo)>, good: &mut u64, bad: &mut Vec<_>| {
        let Some(&(start, _)) = span.first() else {
            return;
        };
        let len: usize = span.iter().map(|(_, b)| b.size as usize).sum();
        buf.resize(len, 0);
        if src
            .read_exact_at(&mut buf, r.src + (start - r.dst))
            .is_err()
        {
            bad.append(span);
            return;
        }
        let ok: Vec<bool> = span
            .par_iter()
            .map(|(off, b)| {
                let i = (off - start) as usize;
                BlockHash::of(&buf[i..i + b.size as usize]) == b.hash
            })
            .collect();
        if ok.iter().all(|o| *o) {
            if dst.write_all_at(&buf, start).is_ok() {
                *good += len as u64;
            } else {
                bad.append(span);
            }
            span.clear();
            return;
        }
        for ((off, b), ok) in span.drain(..).zip(ok) {
            let i = (off - start) as usize;
            if ok && dst.write_all_at(&buf[i..i + b.size as usize], off).is_ok() {
                *good += u64::from(b.size);
            } else {
                bad.push((off, b));
            }
        }
    };
    let mut len = 0usize;
    for (off, b) in blocks {
        if !span.is_empty() && len + b.size as usize > span_max {
            flush(&mut span, &mut good, &mut bad);
            len = 0;
        }
        len += b.size as usize;
        span.push((off, b));
    }
    flush(&mut span, &mut good, &mut bad);
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

/// Reads the given blocks back from `file` and checks each one's hash: returns the bytes
/// that matched and the blocks that did not.
fn verify(
    file: &File,
    blocks: impl Iterator<Item = (u64, BlockInfo)>,
) -> (u64, Vec<(u64, BlockInfo)>) {
    let mut good = 0u64;
    let mut bad = Vec::new();
    let mut span: Vec<(u64, BlockInfo)> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut check = |span: &mut Vec<(u64, BlockInfo)>, good: &mut u64, bad: &mut Vec<_>| {
        let Some(&(start, _)) = span.first() else {
            return;
        };
        let len: usize = span.iter().map(|(_, b)| b.size as usize).sum();
        buf.resize(len, 0);
        if file.read_exact_at(&mut buf, start).is_err() {
            bad.append(span);
            return;
        }
        let ok: Vec<bool> = span
            .par_iter()
            .map(|(off, b)| {
                let i = (off - start) as usize;
                BlockHash::of(&buf[i..i + b.size as usize]) == b.hash
            })
            .collect();
        for ((off, b), ok) in span.drain(..).zip(ok) {
            if ok {
                *good += u64::from(b.size);
            } else {
                bad.push((off, b));
            }
        }
    };
    for (off, b) in blocks {
        let contiguous = span
            .last()
            .is_some_and(|(o, lb)| o + u64::from(lb.size) == off);
        let len: usize = span.iter().map(|(_, b)| b.size as usize).sum();
        if !span.is_empty() && (!contiguous || len + b.size as usize > VERIFY_SPAN) {
            check(&mut span, &mut good, &mut bad);
        }
        span.push((off, b));
    }
    check(&mut span, &mut good, &mut bad);
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ShortId;
    use crate::protocol::Vector;
    use std::os::unix::fs::MetadataExt;

    fn noise(len: usize, mut x: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

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
        let (rest, reused) = from_previous(&fs, Some(&prev), &temp, todo_of(&blocks));
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
