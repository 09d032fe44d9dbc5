//! A device's home: where its config, identity, index and control socket live, and the
//! lock that tells a running service from a stopped one.
//!
//! With `--home DIR` (or `SHOAL_HOME`) everything is under DIR. Without, the platform's
//! directories: on Linux `$XDG_CONFIG_HOME/shoal` for `config.toml`, `cert.pem`, `key.pem`
//! and `$XDG_STATE_HOME/shoal` for the index, the lock, the socket and logs.
//!
//! Sharing a home between a service and commands: the service holds an exclusive
//! `flock` on `shoal.lock` for its whole life (the kernel drops it when the process dies,
//! so a SIGKILL leaves no stale lock). A command that changes things takes the same lock
//! for the moment it works; when it finds the lock held, a service runs there and the
//! command must go through the service's control socket instead of touching the files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("no home directory could be determined; pass --home DIR or set SHOAL_HOME")]
    NoPlatformDirs,
    #[error("cannot create the home directory {path:?}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the lock file {path:?}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?} is not a directory; --home must name a directory")]
    NotADir { path: PathBuf },
}

/// The paths of one device's home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    /// `config.toml`, `cert.pem`, `key.pem`.
    pub config_dir: PathBuf,
    /// The index database, the lock, the socket, logs, pending entries.
    pub state_dir: PathBuf,
}

impl Home {
    /// The home named by `--home`/`SHOAL_HOME`, else the platform's directories.
    /// Nothing is created here: see [`Home::create`].
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, HomeError> {
        if let Some(dir) = explicit {
            let dir = absolute(dir);
            return Ok(Self {
                config_dir: dir.clone(),
                state_dir: dir,
            });
        }
        let dirs =
            directories::ProjectDirs::from("", "", "shoal").ok_or(HomeError::NoPlatformDirs)?;
        let config_dir = dirs.config_dir().to_path_buf();
        let state_dir = dirs
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
        Ok(Self {
            config_dir,
            state_dir,
        })
    }

    /// Creates the directories (mode 0700: the home holds the private key and the socket).
    pub fn create(&self) -> Result<(), HomeError> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in [&self.config_dir, &self.state_dir] {
            if dir.exists() && !dir.is_dir() {
                return Err(HomeError::NotADir { path: dir.clone() });
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| HomeError::Create {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    pub fn exists(&self) -> bool {
        self.config_path().exists()
    }

    pub fn config_path(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("index.db")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.state_dir.join("shoal.lock")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.state_dir.join("shoal.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join("shoal.log")
    }

    /// Both directories, canonical where they exist: used to refuse a folder that holds
    /// the home.
    pub fn dirs_canonical(&self) -> Vec<PathBuf> {
        [&self.config_dir, &self.state_dir]
            .into_iter()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
            .collect()
    }
}

/// `path` made absolute against the current directory, without touching the disk.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Who holds the home's lock, as far as the lock file says.
#[derive(Debug)]
pub enum LockState {
    /// We hold it now.
    Acquired(HomeLock),
    /// Another process holds it; `pid` is what a service wrote into the file, if any.
    Held { pid: Option<u32> },
}

/// The exclusive `flock` on `shoal.lock`; released when dropped or when the process dies.
#[derive(Debug)]
pub struct HomeLock {
    file: File,
}

impl HomeLock {
    /// Tries to take the lock without waiting.
    pub fn try_acquire(home: &Home) -> Result<LockState, HomeError> {
        let path = home.lock_path();
        let err = |source| HomeError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        match file.try_lock() {
            Ok(()) => Ok(LockState::Acquired(HomeLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                Ok(LockState::Held { pid })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(err(e)),
        }
    }

    /// Marks the lock as a service's: writes our PID so others can name it.
    pub fn mark_service(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.sync_data()
    }
}

impl Drop for HomeLock {
    fn drop(&mut self) {
        // Clear the PID so a later reader does not name a process that has gone; the
        // kernel releases the flock itself when the file closes.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path())).expect("home");
        home.create().expect("create");
        let LockState::Acquired(mut first) = HomeLock::try_acquire(&home).expect("lock") else {
            panic!("first lock must succeed");
        };
        first.mark_service().expect("mark");
        match HomeLock::try_acquire(&home).expect("lock") {
            LockState::Held { pid } => assert_eq!(pid, Some(std::process::id())),
            LockState::Acquired(_) => panic!("second lock must fail"),
        }
        drop(first);
        assert!(matches!(
            HomeLock::try_acquire(&home).expect("lock"),
            LockState::Acquired(_)
        ));
    }
}
