//! Watching a folder: inotify events (through `notify`) become the relative names the
//! folder task rescans. Bursts coalesce in the folder task, not here.

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops watching.
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Why a folder is not watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "the inotify watch limit is reached, so changes are found only by periodic scans; raise it with `sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.d/ to keep it)"
    )]
    Limit,
    #[error("cannot watch the folder: {0}")]
    Other(String),
}

/// Starts watching `root`; names of changed entries (relative, `/`-separated) arrive on
/// the returned channel. Our own `.shoal/` and temp files are filtered out.
pub fn watch(root: &Path) -> Result<(FolderWatch, mpsc::UnboundedReceiver<String>), WatchError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let base: PathBuf = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let base2 = base.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else {
            // Lost events (queue overflow): ask for a whole-folder rescan.
            let _ = tx.send(String::new());
            return;
        };
        if ev.need_rescan() {
            let _ = tx.send(String::new());
        }
        // Opening and reading (our own block serving among them) change nothing.
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in ev.paths {
            if let Some(name) = relative(&base2, &p) {
                let _ = tx.send(name);
            }
        }
    })
    .map_err(classify)?;
    watcher
        .watch(&base, RecursiveMode::Recursive)
        .map_err(classify)?;
    Ok((FolderWatch { _watcher: watcher }, rx))
}

fn classify(e: notify::Error) -> WatchError {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => WatchError::Limit,
        notify::ErrorKind::Io(ref io) if io.raw_os_error() == Some(28) => WatchError::Limit,
        _ => WatchError::Other(e.to_string()),
    }
}

/// The folder-relative name of an event path, or None for what we never scan.
fn relative(base: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(base).ok()?;
    let name = rel.to_str()?.to_string();
    if name.is_empty() {
        return None;
    }
    let first = name.split('/').next().unwrap_or("");
    let last = name.rsplit('/').next().unwrap_or("");
    if name == crate::protocol::name::IGNORE_FILE {
        // New ignore rules: the whole folder is rescanned under them.
        return Some(String::new());
    }
    if first == crate::config::MARKER_DIR || last.starts_with(crate::protocol::name::TEMP_PREFIX) {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_files_are_not_reported() {
        let b = Path::new("/f");
        assert_eq!(relative(b, Path::new("/f/a/b.txt")), Some("a/b.txt".into()));
        assert_eq!(relative(b, Path::new("/f/.shoal/x")), None);
        assert_eq!(relative(b, Path::new("/f/a/.shoal-tmp-b.txt")), None);
        assert_eq!(relative(b, Path::new("/f")), None);
    }
}
