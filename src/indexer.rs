//! Indexing a folder: the glue between the scanner and the block index.
//!
//! Checks the folder's marker first (a folder whose path or `.shoal/` marker is gone is
//! never scanned, so an unmounted disk cannot turn into a mass of deletions), loads what
//! the index last recorded, runs the scanner and streams its batches to the database
//! writer while it keeps hashing.

use crate::config::{FolderConfig, MARKER_DIR};
use crate::db::Db;
use crate::protocol::name::to_nfc;
use crate::scan::{self, Progress, ScanRequest, ScanSummary};
use crate::sync::fsops::FolderFs;
use crate::sync::names::FsCaps;
use std::path::Path;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "folder \"{id}\": its path {path:?} is missing (an unmounted disk or a deleted directory?); Shoal will not recreate it: mount or restore it, or remove the folder with `shoal folder rm {id}`"
    )]
    PathMissing { id: String, path: String },
    #[error(
        "folder \"{id}\": the marker {path:?}/.shoal is missing, so the folder is stopped (no deletion is inferred from a vanished disk); if the folder's content is really there, recreate the marker with `mkdir {path:?}/.shoal`"
    )]
    MarkerMissing { id: String, path: String },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("folder \"{id}\": {source}")]
    Scan {
        id: String,
        source: scan::ScanFailure,
    },
}

/// At most this many changed entries are handed back by one scan (for events).
pub const CHANGED_REPORT_MAX: usize = 256;

/// Whether a folder may be scanned and synced now: its path and marker exist.
pub fn check_marker(folder: &FolderConfig) -> Result<(), IndexError> {
    let path = folder.path.to_string_lossy().into_owned();
    if !folder.path.is_dir() {
        return Err(IndexError::PathMissing {
            id: folder.id.clone(),
            path,
        });
    }
    if !folder.path.join(MARKER_DIR).is_dir() {
        return Err(IndexError::MarkerMissing {
            id: folder.id.clone(),
            path,
        });
    }
    Ok(())
}

/// Scans `folder` (or just `only`, relative paths within it) into the index. `caps` says
/// how its file system compares names (`sync::names::probe`). Names found in NFD on a
/// file system that does not normalise are renamed to NFC (never over an existing name)
/// and scanned under it; one whose NFC spelling exists too is reported in the errors.
pub fn index_folder(
    db: &Db,
    folder: &FolderConfig,
    caps: FsCaps,
    only: Option<&[String]>,
    progress: &(dyn Fn(&Progress) + Sync),
    mut changed: Option<&mut Vec<crate::protocol::FileInfo>>,
) -> Result<ScanSummary, IndexError> {
    let mut summary = scan_into(db, folder, caps, only, progress, changed.as_deref_mut())?;
    if summary.not_nfc.is_empty() {
        return Ok(summary);
    }
    let renamed = rename_to_nfc(folder, &summary.not_nfc, &mut summary.errors);
    if !renamed.is_empty() {
        let again = scan_into(db, folder, caps, Some(&renamed), progress, changed)?;
        summary.files_seen += again.files_seen;
        summary.changed += again.changed;
        summary.deleted += again.deleted;
        summary.bytes_hashed += again.bytes_hashed;
        summary.errors.extend(again.errors);
        summary.retry.extend(again.retry);
        summary.errors.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(summary)
}

/// Renames each of `names` (NFC parents, a last component that is not) to NFC, never over
/// an existing name; returns the new names. What cannot be renamed goes to `errors`.
fn rename_to_nfc(
    folder: &FolderConfig,
    names: &[String],
    errors: &mut Vec<scan::ScanError>,
) -> Vec<String> {
    let fs = match FolderFs::open(&folder.path) {
        Ok(fs) => fs,
        Err(e) => {
            for n in names {
                errors.push(scan::ScanError {
                    path: n.clone(),
                    message: format!("name is not in Unicode NFC form, and cannot be renamed: {e}"),
                });
            }
            return Vec::new();
        }
    };
    let mut renamed = Vec::new();
    for name in names {
        let nfc = to_nfc(name);
        match fs.rename_noreplace(name, &nfc) {
            Ok(()) => {
                info!(folder = %folder.id, from = %name, to = %nfc, "renamed a name to Unicode NFC (names are synced in NFC)");
                renamed.push(nfc);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                warn!(folder = %folder.id, %name, "not synced: the name is not in Unicode NFC form and its NFC spelling exists too; rename or remove one of them");
                errors.push(scan::ScanError {
                    path: name.clone(),
                    message: "name is not in Unicode NFC form, and the same name in NFC exists too: rename or remove one of them".into(),
                });
            }
            Err(e) => errors.push(scan::ScanError {
                path: name.clone(),
                message: format!(
                    "name is not in Unicode NFC form, and cannot be renamed to it: {e}"
                ),
            }),
        }
    }
    renamed
}

/// One scan of `folder` (or `only`) into the index.
fn scan_into(
    db: &Db,
    folder: &FolderConfig,
    caps: FsCaps,
    only: Option<&[String]>,
    progress: &(dyn Fn(&Progress) + Sync),
    mut changed: Option<&mut Vec<crate::protocol::FileInfo>>,
) -> Result<ScanSummary, IndexError> {
    check_marker(folder)?;
    let reader = db.reader()?;
    // A scan of a few names compares with their entries only. Where names fold (case,
    // normalisation) the walk may meet a name in another spelling than asked: it gets the
    // whole folder's state.
    let whole = |names: &[String]| {
        names
            .iter()
            .any(|n| matches!(n.trim_end_matches('/'), "" | "."))
    };
    let prev = match only {
        Some(names) if !caps.folds() && !whole(names) => {
            reader.scan_state_within(&folder.id, names)?
        }
        _ => reader.scan_state(&folder.id)?,
    };
    // The blocks of a changed big file as this device last cut them (see
    // `ScanRequest::previous_blocks`): never a list a peer sent.
    let local = db.local_device().short();
    let reader = std::sync::Mutex::new(reader);
    let previous_blocks = |name: &str| {
        let found = reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_local(&folder.id, name);
        if let Err(e) = &found {
            tracing::debug!(name, error = %e, "cannot look up the previous blocks");
        }
        found.ok().flatten().and_then(|f| {
            (f.modified_by == local && f.file_type == crate::protocol::FileType::File && !f.deleted)
                .then_some(f.blocks)
        })
    };
    let req = ScanRequest {
        root: Path::new(&folder.path),
        prev: &prev,
        only,
        caps,
        ignore_perms: folder.ignore_perms,
        previous_blocks: Some(scan::PreviousBlocks(&previous_blocks)),
    };
    let mut marker_lost = None;
    let mut sink = |batch: Vec<scan::LocalChange>| -> Result<(), IndexError> {
        // A disk unmounted during the scan makes every file after it look deleted: before
        // any deletion is recorded, the marker must still be there.
        if batch.iter().any(|c| c.info.deleted)
            && let Err(e) = check_marker(folder)
        {
            let msg = e.to_string();
            marker_lost = Some(e);
            return Err(IndexError::Scan {
                id: folder.id.clone(),
                source: scan::ScanFailure::Aborted(msg),
            });
        }
        let stored = db.update_local(&folder.id, batch)?;
        if let Some(out) = changed.as_deref_mut() {
            // Bounded: a big scan reports its count, not a million events.
            let room = CHANGED_REPORT_MAX.saturating_sub(out.len());
            out.extend(stored.into_iter().take(room));
        }
        Ok(())
    };
    let result = scan::scan(&req, &mut sink, progress);
    if let Some(e) = marker_lost {
        return Err(e);
    }
    result.map_err(|source| IndexError::Scan {
        id: folder.id.clone(),
        source,
    })
}
