//! Indexing a folder: the glue between the scanner and the block index.
//!
//! Checks the folder's marker first (a folder whose path or `.shoal/` marker is gone is
//! never scanned, so an unmounted disk cannot turn into a mass of deletions), loads what
//! the index last recorded, runs the scanner and streams its batches to the database
//! writer while it keeps hashing.

use crate::config::{FolderConfig, MARKER_DIR};
use crate::db::Db;
use crate::scan::{self, Progress, ScanRequest, ScanSummary};
use std::path::Path;

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

/// Scans `folder` (or just `only`, relative paths within it) into the index.
pub fn index_folder(
    db: &Db,
    folder: &FolderConfig,
    only: Option<&[String]>,
    progress: &(dyn Fn(&Progress) + Sync),
    mut changed: Option<&mut Vec<crate::protocol::FileInfo>>,
) -> Result<ScanSummary, IndexError> {
    check_marker(folder)?;
    let prev = db.reader()?.scan_state(&folder.id)?;
    let req = ScanRequest {
        root: Path::new(&folder.path),
        prev: &prev,
        only,
        ignore_perms: folder.ignore_perms,
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
