//! Versioning: a file that a peer's change replaces or deletes is moved into
//! `.shoal/versions/` instead of being lost (per folder, off by default).
//!
//! A kept version is `.shoal/versions/DIR/STEM~YYYYMMDD-HHMMSS.EXT` (the time it was
//! replaced, UTC), like Syncthing's. `trash DAYS` removes versions older than DAYS days;
//! `simple KEEP` keeps the newest KEEP versions of each file. Clean-up runs with the
//! folder's periodic full scan. `.shoal/` is never synced, so versions stay on this device.

use super::fsops::FolderFs;
use crate::config::{MARKER_DIR, Versioning};
use std::collections::HashMap;
use std::io;
use std::path::Path;

pub const VERSIONS_DIR: &str = "versions";

/// The name a version of `name` is kept under, relative to the folder root.
pub fn version_name(name: &str, now: time::OffsetDateTime) -> String {
    let (dir, stem, ext) = super::split_name(name);
    let stamp = super::stamp(now);
    let file = format!("{stem}~{stamp}{ext}");
    match dir {
        Some(d) => format!("{MARKER_DIR}/{VERSIONS_DIR}/{d}/{file}"),
        None => format!("{MARKER_DIR}/{VERSIONS_DIR}/{file}"),
    }
}

/// `version_name` with a counter after the time, for a second version in one second.
fn version_name_n(name: &str, now: time::OffsetDateTime, n: u32) -> String {
    let plain = version_name(name, now);
    // The stamp is the 15 characters after the last '~'.
    match plain.rfind('~') {
        Some(i) if plain.len() >= i + 16 => {
            format!("{}-{n}{}", &plain[..i + 16], &plain[i + 16..])
        }
        _ => format!("{plain}-{n}"),
    }
}

/// Moves the file at `name` into the versions directory (when versioning is on).
/// Returns whether it was moved.
pub fn keep(fs: &FolderFs, versioning: Versioning, name: &str) -> io::Result<bool> {
    if versioning == Versioning::Off {
        return Ok(false);
    }
    let Some(st) = fs.lstat(name)? else {
        return Ok(false);
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Ok(false);
    }
    move_to_versions(fs, name).map(|_| true)
}

/// Moves the file or symlink at `name` into the versions directory, whatever the folder's
/// versioning (a reverted local change is kept this way). Returns where it went.
pub fn move_to_versions(fs: &FolderFs, name: &str) -> io::Result<String> {
    let now = time::OffsetDateTime::now_utc();
    let mut target = version_name(name, now);
    // Two replacements within one second: keep both (STEM~STAMP-N.EXT).
    let mut n = 1;
    while fs.lstat(&target)?.is_some() {
        target = version_name_n(name, now, n);
        n += 1;
    }
    let mut dir = String::new();
    let parts: Vec<&str> = target.split('/').collect();
    for p in &parts[..parts.len() - 1] {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(p);
        fs.mkdir(&dir, 0o755)?;
    }
    fs.rename(name, &target)?;
    Ok(target)
}

/// Removes versions past the folder's policy.
pub fn clean(root: &Path, versioning: Versioning) {
    let base = root.join(MARKER_DIR).join(VERSIONS_DIR);
    let mut files = Vec::new();
    collect(&base, &mut files);
    match versioning {
        Versioning::Off => {}
        Versioning::Trash { days } => {
            let limit = std::time::Duration::from_secs(u64::from(days) * 86_400);
            for (path, _, age) in files {
                if age > limit {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Versioning::Simple { keep } => {
            let mut by_original: HashMap<String, Vec<(std::path::PathBuf, std::time::Duration)>> =
                HashMap::new();
            for (path, original, age) in files {
                by_original.entry(original).or_default().push((path, age));
            }
            for (_, mut list) in by_original {
                list.sort_by_key(|(_, age)| *age);
                for (path, _) in list.into_iter().skip(keep as usize) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// (path, original name key, age) of every kept version.
fn collect(dir: &Path, out: &mut Vec<(std::path::PathBuf, String, std::time::Duration)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() {
            collect(&path, out);
        } else if ft.is_file() {
            let name = e.file_name().to_string_lossy().into_owned();
            // STEM~YYYYMMDD-HHMMSS.EXT: the original is STEM.EXT in the same directory.
            let key = match name.rfind('~') {
                Some(i) => {
                    let rest = &name[i + 1..];
                    // After the stamp: an optional "-N", then the extension.
                    let after = rest.get(15..).unwrap_or("");
                    let ext = match after.strip_prefix('-') {
                        Some(r) => r.trim_start_matches(|c: char| c.is_ascii_digit()),
                        None => after,
                    };
                    format!("{}/{}{}", dir.display(), &name[..i], ext)
                }
                None => format!("{}/{name}", dir.display()),
            };
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            out.push((path, key, age));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_keep_directory_and_extension() {
        let t = time::macros::datetime!(2026-11-25 09:08:07 UTC);
        assert_eq!(
            version_name("a/b/report.txt", t),
            ".shoal/versions/a/b/report~20261125-090807.txt"
        );
        assert_eq!(
            version_name("Makefile", t),
            ".shoal/versions/Makefile~20261125-090807"
        );
    }

    #[test]
    fn simple_keeps_the_newest_versions() {
        let dir = tempfile::tempdir().expect("tmp");
        let fs = FolderFs::open(dir.path()).expect("open");
        std::fs::create_dir(dir.path().join(".shoal")).expect("marker");
        for i in 0..4 {
            std::fs::write(dir.path().join("doc.txt"), format!("v{i}")).expect("write");
            assert!(keep(&fs, Versioning::Simple { keep: 2 }, "doc.txt").expect("keep"));
        }
        clean(dir.path(), Versioning::Simple { keep: 2 });
        let mut left = Vec::new();
        collect(&dir.path().join(".shoal/versions"), &mut left);
        assert_eq!(left.len(), 2);
    }
}
