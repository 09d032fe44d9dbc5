//! A receive-only folder's local changes: listing them, and throwing them away.
//!
//! A receive-only folder takes what peers have and sends nothing of its own: a file added,
//! edited or deleted here is a **local change**. It is a local entry whose version no
//! peer has, the same or newer: `added` when no peer has the name (alive), `changed` when
//! a peer has another version of it, `deleted` when we deleted what a peer still has. A
//! deletion of something no peer has is no change at all.
//!
//! **Revert** (`shoal folder revert`, like Syncthing's "Revert Local Changes") makes the
//! folder what its peers have again, losing nothing: every added or changed file (or
//! symlink) is first moved into `.shoal/versions/` (whatever the folder's versioning;
//! the versions clean-up of `trash`/`simple` then applies, with versioning `off` they stay
//! until removed by hand), and an added directory is removed only when nothing is left in
//! it. Each reverted entry is then recorded with an empty version, which every peer's
//! version dominates, so the puller brings back the peers' version (and a deleted file
//! returns).

use super::fsops::FolderFs;
use crate::config::FolderConfig;
use crate::db::{Db, DbError, LocalChange, Reader};
use crate::identity::ShortId;
use crate::protocol::{FileInfo, FileType, Vector, VectorOrdering};
use serde::Serialize;

/// What kind of local change an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// The local changes of `folder`, in name order.
pub fn list(
    reader: &Reader,
    folder: &FolderConfig,
) -> Result<Vec<(FileInfo, ChangeKind)>, DbError> {
    let mut out = Vec::new();
    for local in reader.local_change_candidates(&folder.id)? {
        let mut remote_alive = false;
        let mut covered = false;
        for d in &folder.devices {
            if let Some(r) = reader.get(&folder.id, *d, &local.name)? {
                remote_alive |= !r.deleted;
                covered |= matches!(
                    r.version.compare(&local.version),
                    VectorOrdering::Greater | VectorOrdering::Equal
                );
            }
        }
        if covered {
            continue;
        }
        let kind = match (local.deleted, remote_alive) {
            (true, false) => continue,
            (true, true) => ChangeKind::Deleted,
            (false, false) => ChangeKind::Added,
            (false, true) => ChangeKind::Changed,
        };
        out.push((local, kind));
    }
    Ok(out)
}

/// How many local changes `folder` has (0 unless it is receive-only).
pub fn count(reader: &Reader, folder: &FolderConfig) -> u64 {
    if folder.mode != crate::config::FolderMode::ReceiveOnly {
        return 0;
    }
    list(reader, folder).map(|l| l.len() as u64).unwrap_or(0)
}

/// A folder that leaves receive-only mode: its local changes, held back so far, take new
/// sequence numbers, so the index exchange sends them now (their versions stay as they
/// are; a peer holding a concurrent version resolves it as any conflict). Returns how many.
pub fn release(db: &Db, folder: &FolderConfig) -> Result<usize, DbError> {
    let names: Vec<String> = list(&db.reader()?, folder)?
        .into_iter()
        .map(|(f, _)| f.name)
        .collect();
    if names.is_empty() {
        return Ok(0);
    }
    db.resequence_local(&folder.id, names)
}

/// What a revert did.
#[derive(Debug, Default, Serialize)]
pub struct RevertReport {
    /// Entries reverted: the peers' version is pulled for each (a deleted one returns).
    pub reverted: Vec<String>,
    /// Files and symlinks moved aside, as (name, where under the folder they went).
    pub kept: Vec<(String, String)>,
    /// Added directories left in place because something is still in them.
    pub left: Vec<String>,
    /// Entries that could not be reverted, with the reason.
    pub failed: Vec<(String, String)>,
}

/// `folder revert --json`'s document.
pub fn report_json(r: &RevertReport) -> serde_json::Value {
    serde_json::json!({
        "reverted": r.reverted,
        "kept": r.kept.iter().map(|(n, to)| serde_json::json!({"name": n, "moved_to": to})).collect::<Vec<_>>(),
        "left": r.left,
        "failed": r.failed.iter().map(|(n, e)| serde_json::json!({"name": n, "error": e})).collect::<Vec<_>>(),
    })
}

/// Throws away the local changes of a receive-only folder, losing nothing (see the module
/// docs). The index must reflect the disk (scan first). Returns the names to pull.
pub fn revert(db: &Db, folder: &FolderConfig, me: ShortId) -> anyhow::Result<RevertReport> {
    if folder.mode != crate::config::FolderMode::ReceiveOnly {
        anyhow::bail!(
            "folder \"{}\" is {}: only a receive-only folder keeps local changes apart",
            folder.id,
            folder.mode.as_str()
        );
    }
    crate::indexer::check_marker(folder)?;
    let changes = list(&db.reader()?, folder)?;
    let fs = FolderFs::open(&folder.path)?;
    let mut report = RevertReport::default();
    let mut records = Vec::new();
    // Children before their directories, so an added directory may be empty by its turn.
    for (local, kind) in changes.into_iter().rev() {
        let name = local.name.clone();
        let tombstone = |local: &FileInfo| FileInfo {
            deleted: true,
            size: 0,
            blocks: Vec::new(),
            symlink_target: String::new(),
            version: Vector::new(),
            modified_by: me,
            ..local.clone()
        };
        let on_disk = match fs.lstat(&name) {
            Ok(st) => st,
            Err(e) => {
                report.failed.push((name, e.to_string()));
                continue;
            }
        };
        let record = match (kind, local.file_type, on_disk) {
            (ChangeKind::Deleted, _, _) | (_, _, None) => LocalChange {
                info: tombstone(&local),
                inode: 0,
                ctime_ns: 0,
            },
            (_, FileType::Dir, Some(st)) => {
                if kind == ChangeKind::Added {
                    match fs.remove_dir(&name) {
                        Ok(true) => LocalChange {
                            info: tombstone(&local),
                            inode: 0,
                            ctime_ns: 0,
                        },
                        Ok(false) => {
                            report.left.push(name);
                            continue;
                        }
                        Err(e) => {
                            report.failed.push((name, e.to_string()));
                            continue;
                        }
                    }
                } else {
                    // The peers' directory metadata comes back over this one.
                    LocalChange {
                        info: FileInfo {
                            version: Vector::new(),
                            modified_by: me,
                            ..local.clone()
                        },
                        inode: st.st_ino,
                        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
                    }
                }
            }
            (_, _, Some(_)) => match super::versions::move_to_versions(&fs, &name) {
                Ok(to) => {
                    report.kept.push((name.clone(), to));
                    LocalChange {
                        info: tombstone(&local),
                        inode: 0,
                        ctime_ns: 0,
                    }
                }
                Err(e) => {
                    report.failed.push((name, e.to_string()));
                    continue;
                }
            },
        };
        report.reverted.push(name);
        records.push(record);
    }
    report.reverted.reverse();
    if !records.is_empty() {
        db.apply_pulled(&folder.id, records)?;
    }
    Ok(report)
}
