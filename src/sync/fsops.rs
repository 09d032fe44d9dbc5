//! File system operations inside one folder, through directory handles that never follow
//! symlinks.
//!
//! Every name here comes from a peer (validated by `protocol::validate_name` first). Each
//! directory along a name is opened relative to its parent with `O_NOFOLLOW |
//! O_DIRECTORY`, so a symlink planted inside the folder can never redirect a write outside
//! it: walking into one fails. Only the folder root itself may be a symlink (the user chose
//! that path).
//!
//! The handle of the last directory walked to is kept (one entry), since a pull works
//! through names in order and touches the same directory several times per file (temp
//! file, mtime, rename, stat): without it, each file cost a dozen extra opens. The entry
//! is dropped whenever this `FolderFs` removes or renames anything, so a directory that
//! our own operations replaced is walked again (with the same `O_NOFOLLOW` checks). A
//! handle stays bound to the directory it opened: if someone else renames that directory
//! meanwhile, later writes follow it to its new place, still inside whatever file system
//! tree it was moved to by that user, never through a symlink.

use crate::protocol::name::TEMP_PREFIX;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A folder root opened once; every operation is relative to it.
pub struct FolderFs {
    root: OwnedFd,
    pub path: PathBuf,
    /// The last directory walked to: its relative name and handle.
    last_dir: Mutex<Option<(String, Arc<OwnedFd>)>>,
}

/// The longest file name most file systems accept.
const NAME_MAX: usize = 255;

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl FolderFs {
    pub fn open(path: &Path) -> io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root,
            path: path.to_path_buf(),
            last_dir: Mutex::new(None),
        })
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<(String, Arc<OwnedFd>)>> {
        self.last_dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the cached directory handle when it is `name` or inside it (`name` is about
    /// to be removed or renamed, or replaced by a rename).
    fn forget_under(&self, name: &str) {
        let mut c = self.cached();
        if let Some((n, _)) = c.as_ref()
            && (n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('/')))
        {
            *c = None;
        }
    }

    /// Opens the directory holding `name` and returns it with the last component.
    /// Fails (ELOOP or ENOTDIR) when any directory on the way is a symlink or a file.
    pub fn parent(&self, name: &str) -> io::Result<(Arc<OwnedFd>, String)> {
        let (dir_name, last) = match name.rsplit_once('/') {
            Some((d, l)) => (d, l),
            None => ("", name),
        };
        if let Some((n, fd)) = self.cached().as_ref()
            && n == dir_name
        {
            return Ok((fd.clone(), last.to_string()));
        }
        let mut dir = rustix::fs::openat(self.root.as_fd(), ".", dir_flags(), Mode::empty())?;
        if !dir_name.is_empty() {
            for p in dir_name.split('/') {
                dir = rustix::fs::openat(dir.as_fd(), p, dir_flags(), Mode::empty())?;
            }
        }
        let dir = Arc::new(dir);
        *self.cached() = Some((dir_name.to_string(), dir.clone()));
        Ok((dir, last.to_string()))
    }

    /// `lstat` of `name`; `None` when it does not exist.
    pub fn lstat(&self, name: &str) -> io::Result<Option<rustix::fs::Stat>> {
        let (dir, base) = match self.parent(name) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(dir.as_fd(), base.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a regular file for reading, refusing symlinks and anything that is not a
    /// regular file. The open itself never waits: a FIFO put where an indexed file was
    /// would otherwise block it until a writer came (the scanner's opens are the same).
    pub fn open_read(&self, name: &str) -> io::Result<File> {
        let (dir, base) = self.parent(name)?;
        let fd = rustix::fs::openat(
            dir.as_fd(),
            base.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: not a regular file"),
            ));
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok(File::from(fd))
    }

    /// The temp name a pull of `name` uses beside it: stable across restarts (so a pull
    /// resumes from what the temp file already holds), hashed when it would be too long.
    pub fn temp_name(name: &str) -> String {
        let base = name.rsplit('/').next().unwrap_or(name);
        let t = format!("{TEMP_PREFIX}{base}");
        let t = if t.len() > NAME_MAX {
            let h = blake3::hash(base.as_bytes());
            format!("{TEMP_PREFIX}{}", &h.to_hex()[..32])
        } else {
            t
        };
        match name.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{t}"),
            None => t,
        }
    }

    /// Opens (creating where missing) the temp file for `name`, read-write, mode 0600
    /// until the final permissions are set.
    pub fn open_temp(&self, name: &str) -> io::Result<(File, String)> {
        let temp = Self::temp_name(name);
        let (dir, base) = self.parent(&temp)?;
        let fd = rustix::fs::openat(
            dir.as_fd(),
            base.as_str(),
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok((File::from(fd), temp))
    }

    /// Renames `from` to `to` (both relative names in this folder), replacing `to`.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (fd_dir, fb) = self.parent(from)?;
        let (td_dir, tb) = self.parent(to)?;
        self.forget_under(from);
        self.forget_under(to);
        rustix::fs::renameat(fd_dir.as_fd(), fb.as_str(), td_dir.as_fd(), tb.as_str())?;
        Ok(())
    }

    /// Renames `from` to `to`, failing with `AlreadyExists` rather than replacing anything
    /// at `to`. Where the file system has no `RENAME_NOREPLACE` (FUSE, some network file
    /// systems), `to` is checked first instead.
    pub fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        let (fd_dir, fb) = self.parent(from)?;
        let (td_dir, tb) = self.parent(to)?;
        match rustix::fs::renameat_with(
            fd_dir.as_fd(),
            fb.as_str(),
            td_dir.as_fd(),
            tb.as_str(),
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                match rustix::fs::statat(td_dir.as_fd(), tb.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(_) => Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the new name exists",
                    )),
                    Err(rustix::io::Errno::NOENT) => {
                        rustix::fs::renameat(
                            fd_dir.as_fd(),
                            fb.as_str(),
                            td_dir.as_fd(),
                            tb.as_str(),
                        )?;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The entries of directory `dir` ("" for the root), without `.` and `..`; names that
    /// are not UTF-8 are left out.
    pub fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let fd = if dir.is_empty() {
            rustix::fs::openat(self.root.as_fd(), ".", dir_flags(), Mode::empty())?
        } else {
            let (parent, base) = self.parent(dir)?;
            rustix::fs::openat(parent.as_fd(), base.as_str(), dir_flags(), Mode::empty())?
        };
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::new(fd)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name != "." && name != ".." {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    pub fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        let (dir, base) = self.parent(name)?;
        match rustix::fs::mkdirat(
            dir.as_fd(),
            base.as_str(),
            Mode::from_raw_mode(mode & 0o777),
        ) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                let st = rustix::fs::statat(dir.as_fd(), base.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory
                {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a file is in the way",
                    ))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a directory's permission bits (never following a symlink). Bits already right
    /// are left alone: a directory someone else owns need not be ours to be fine.
    pub fn chmod_dir(&self, name: &str, mode: u32) -> io::Result<()> {
        let (dir, base) = self.parent(name)?;
        let fd = rustix::fs::openat(dir.as_fd(), base.as_str(), dir_flags(), Mode::empty())?;
        if rustix::fs::fstat(&fd)?.st_mode & 0o777 == mode & 0o777 {
            return Ok(());
        }
        rustix::fs::fchmod(fd.as_fd(), Mode::from_raw_mode(mode & 0o777))?;
        Ok(())
    }

    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        let (dir, base) = self.parent(name)?;
        self.forget_under(name);
        rustix::fs::unlinkat(dir.as_fd(), base.as_str(), AtFlags::empty())?;
        Ok(())
    }

    /// Removes an empty directory; a directory that still holds anything stays.
    pub fn remove_dir(&self, name: &str) -> io::Result<bool> {
        let (dir, base) = self.parent(name)?;
        self.forget_under(name);
        match rustix::fs::unlinkat(dir.as_fd(), base.as_str(), AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOTEMPTY) | Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates `name` as a symlink to `target` (via a temp name and a rename).
    pub fn symlink(&self, name: &str, target: &str) -> io::Result<()> {
        let temp = Self::temp_name(name);
        let (dir, tbase) = self.parent(&temp)?;
        let _ = rustix::fs::unlinkat(dir.as_fd(), tbase.as_str(), AtFlags::empty());
        rustix::fs::symlinkat(target, dir.as_fd(), tbase.as_str())?;
        self.rename(&temp, name)
    }

    /// Sets the modification time of `name` without following a symlink. The access time
    /// is set to the same value (as Syncthing does): file systems built on libfuse 2's
    /// high-level API silently ignore a change of the modification time alone.
    pub fn set_mtime(&self, name: &str, ns: i64) -> io::Result<()> {
        let (dir, base) = self.parent(name)?;
        let t = rustix::fs::Timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000) as _,
        };
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(dir.as_fd(), base.as_str(), &ts, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// The bytes an unprivileged writer may still use on this folder's file system, the
    /// file system's size, and its allocation unit (`statvfs`).
    pub fn space(&self) -> io::Result<(u64, u64, u64)> {
        let s = rustix::fs::fstatvfs(self.root.as_fd())?;
        Ok((
            s.f_bavail.saturating_mul(s.f_frsize),
            s.f_blocks.saturating_mul(s.f_frsize),
            s.f_frsize.max(1),
        ))
    }

    /// Makes everything written in this file system durable (one call for a whole batch
    /// of files instead of an fsync each).
    pub fn syncfs(&self) -> io::Result<()> {
        rustix::fs::syncfs(self.root.as_fd())?;
        Ok(())
    }
}

/// Every `.shoal-tmp-*` file in the folder (relative names), walking without following
/// symlinks. Only temp files exist after an interrupted pull, so this runs rarely: at
/// start and with the periodic full scan.
pub fn find_temp_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if rel.is_empty() && name == crate::config::MARKER_DIR {
                    continue;
                }
                stack.push((e.path(), child));
            } else if name.starts_with(TEMP_PREFIX) {
                out.push(child);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_inside_the_folder_cannot_redirect_a_write() {
        let outside = tempfile::tempdir().expect("tmp");
        let root = tempfile::tempdir().expect("tmp");
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).expect("ln");
        let fs = FolderFs::open(root.path()).expect("open");
        assert!(fs.open_temp("escape/evil").is_err());
        assert!(fs.mkdir("escape/dir", 0o755).is_err());
        assert!(fs.symlink("escape/l", "/etc").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);
        // The symlink itself can be replaced or removed, like any entry.
        fs.remove_file("escape").expect("rm link");
    }

    #[test]
    fn only_regular_files_are_opened_for_reading_and_a_fifo_never_blocks() {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::write(root.path().join("f"), b"data").expect("write");
        std::fs::create_dir(root.path().join("d")).expect("mkdir");
        let ok = std::process::Command::new("mkfifo")
            .arg(root.path().join("p"))
            .status()
            .expect("mkfifo");
        assert!(ok.success());
        let fs = FolderFs::open(root.path()).expect("open");
        let mut s = String::new();
        use std::io::Read;
        fs.open_read("f")
            .expect("regular file")
            .read_to_string(&mut s)
            .expect("read");
        assert_eq!(s, "data");
        // Without O_NONBLOCK this open would wait for a writer forever.
        let e = fs.open_read("p").expect_err("a FIFO");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(fs.open_read("d").is_err());
    }

    #[test]
    fn temp_names_stay_short() {
        let long = "d/".to_string() + &"x".repeat(250);
        let t = FolderFs::temp_name(&long);
        assert!(t.starts_with("d/.shoal-tmp-"));
        assert!(t.rsplit('/').next().expect("base").len() <= NAME_MAX);
        assert_eq!(FolderFs::temp_name("a/b.txt"), "a/.shoal-tmp-b.txt");
    }

    #[test]
    fn a_directory_replaced_through_us_is_walked_again() {
        let root = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        let fs = FolderFs::open(root.path()).expect("open");
        fs.mkdir("d", 0o755).expect("mkdir");
        fs.open_temp("d/x").expect("temp");
        // The cached handle of "d" must not outlive "d" going away through us.
        fs.rename("d", "e").expect("mv");
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).expect("ln");
        assert!(fs.open_temp("d/y").is_err());
        fs.remove_file("d").expect("rm link");
        fs.mkdir("d", 0o755).expect("mkdir");
        fs.open_temp("d/z").expect("temp");
        fs.open_temp("e/w").expect("temp");
        assert!(!fs.remove_dir("e").expect("rmdir"));
        assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);
        assert!(root.path().join("d/.shoal-tmp-z").exists());
        assert!(root.path().join("e/.shoal-tmp-x").exists());
        assert!(root.path().join("e/.shoal-tmp-w").exists());
    }
}
