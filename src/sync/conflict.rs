//! Concurrent changes: which version wins, and the copy that keeps the other.
//!
//! Two versions are concurrent when neither vector dominates. The rule, the same on every
//! device: the older modification time loses; on a tie, the version last modified by the
//! device with the larger ID loses. An edit always beats a deletion (nothing is lost by
//! keeping the edit). Only the device that holds the losing version makes a copy of it,
//! `NAME.sync-conflict-YYYYMMDD-HHMMSS-SHORTID.EXT` beside the file (SHORTID: the device
//! that made the losing version; the time: when the copy was made, UTC), then takes the
//! winner; so one conflict gives exactly one copy, and the copy syncs like any file.

use super::fsops::FolderFs;
use crate::protocol::FileInfo;
use std::io;

/// The marker in a conflict copy's name.
pub const CONFLICT_MARK: &str = ".sync-conflict-";

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ours is a deletion (or loses and there is nothing to keep): take theirs.
    TakeRemote,
    /// Ours wins: the other device keeps its version as a copy and takes ours.
    KeepLocal,
    /// Ours loses: keep it as a conflict copy, then take theirs.
    CopyLocalThenTakeRemote,
}

/// Decides a conflict between our entry and a concurrent remote one.
pub fn resolve(local: &FileInfo, remote: &FileInfo) -> Outcome {
    match (local.deleted, remote.deleted) {
        (true, false) => return Outcome::TakeRemote,
        (false, true) => return Outcome::KeepLocal,
        (true, true) => return Outcome::KeepLocal,
        (false, false) => {}
    }
    if local_loses(local, remote) {
        if local.file_type == crate::protocol::FileType::File {
            Outcome::CopyLocalThenTakeRemote
        } else {
            // A directory or symlink holds no data of its own to keep.
            Outcome::TakeRemote
        }
    } else {
        Outcome::KeepLocal
    }
}

fn local_loses(local: &FileInfo, remote: &FileInfo) -> bool {
    match local.modified_ns.cmp(&remote.modified_ns) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => local.modified_by > remote.modified_by,
    }
}

/// The conflict copy's name for `name`, made now by `short_id`.
pub fn copy_name(name: &str, short_id: &str, now: time::OffsetDateTime) -> String {
    let (dir, stem, ext) = super::split_name(name);
    let stamp = super::stamp(now);
    let file = format!("{stem}{CONFLICT_MARK}{stamp}-{short_id}{ext}");
    match dir {
        Some(d) => format!("{d}/{file}"),
        None => file,
    }
}

/// Parses a conflict copy's name: (original name, short ID, created as RFC 3339).
pub fn parse_copy_name(name: &str) -> Option<(String, String, String)> {
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, name),
    };
    let i = base.find(CONFLICT_MARK)?;
    let stem = &base[..i];
    let rest = &base[i + CONFLICT_MARK.len()..];
    // YYYYMMDD-HHMMSS-SHORTID then the extension.
    if rest.len() < 8 + 1 + 6 + 1 + 7 {
        return None;
    }
    let (date, rest) = rest.split_at(8);
    let rest = rest.strip_prefix('-')?;
    let (clock, rest) = rest.split_at(6);
    let rest = rest.strip_prefix('-')?;
    let (short, ext) = rest.split_at(7);
    if !date
        .bytes()
        .chain(clock.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if !short
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return None;
    }
    if !(ext.is_empty() || ext.starts_with('.')) {
        return None;
    }
    let original_base = format!("{stem}{ext}");
    let original = match dir {
        Some(d) => format!("{d}/{original_base}"),
        None => original_base,
    };
    let created = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[..4],
        &date[4..6],
        &date[6..],
        &clock[..2],
        &clock[2..4],
        &clock[4..]
    );
    Some((original, short.to_string(), created))
}

/// Renames our losing version aside; returns the copy's name.
pub fn make_copy(fs: &FolderFs, local: &FileInfo) -> io::Result<String> {
    let copy = copy_name(
        &local.name,
        &local.modified_by.to_string(),
        time::OffsetDateTime::now_utc(),
    );
    fs.rename(&local.name, &copy)?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ShortId;
    use crate::protocol::{FileType, Vector};

    fn entry(mtime: i64, by: u64, deleted: bool) -> FileInfo {
        FileInfo {
            name: "a.txt".into(),
            file_type: FileType::File,
            size: 1,
            permissions: 0o644,
            modified_ns: mtime,
            modified_by: ShortId(by),
            deleted,
            version: Vector::new(),
            sequence: 1,
            blocks: vec![],
            symlink_target: String::new(),
        }
    }

    #[test]
    fn older_mtime_loses_and_a_tie_is_lost_by_the_larger_id() {
        assert_eq!(
            resolve(&entry(1, 1, false), &entry(2, 2, false)),
            Outcome::CopyLocalThenTakeRemote
        );
        assert_eq!(
            resolve(&entry(3, 1, false), &entry(2, 2, false)),
            Outcome::KeepLocal
        );
        assert_eq!(
            resolve(&entry(2, 9, false), &entry(2, 1, false)),
            Outcome::CopyLocalThenTakeRemote
        );
        assert_eq!(
            resolve(&entry(2, 1, false), &entry(2, 9, false)),
            Outcome::KeepLocal
        );
    }

    #[test]
    fn an_edit_beats_a_deletion() {
        assert_eq!(
            resolve(&entry(9, 1, true), &entry(1, 2, false)),
            Outcome::TakeRemote
        );
        assert_eq!(
            resolve(&entry(1, 1, false), &entry(9, 2, true)),
            Outcome::KeepLocal
        );
    }

    #[test]
    fn copy_names_follow_the_contract_and_parse_back() {
        let t = time::macros::datetime!(2026-11-25 09:08:07 UTC);
        assert_eq!(
            copy_name("d/report.txt", "ABCDEFG", t),
            "d/report.sync-conflict-20261125-090807-ABCDEFG.txt"
        );
        assert_eq!(
            copy_name("Makefile", "ABCDEFG", t),
            "Makefile.sync-conflict-20261125-090807-ABCDEFG"
        );
        assert_eq!(
            copy_name(".bashrc", "ABCDEFG", t),
            ".bashrc.sync-conflict-20261125-090807-ABCDEFG"
        );
        assert_eq!(
            copy_name("a.tar.gz", "ABCDEFG", t),
            "a.tar.sync-conflict-20261125-090807-ABCDEFG.gz"
        );
        let (orig, short, created) =
            parse_copy_name("d/report.sync-conflict-20261125-090807-ABCDEFG.txt").expect("parse");
        assert_eq!(
            (orig.as_str(), short.as_str(), created.as_str()),
            ("d/report.txt", "ABCDEFG", "2026-11-25T09:08:07Z")
        );
        assert_eq!(parse_copy_name("plain.txt"), None);
    }
}
