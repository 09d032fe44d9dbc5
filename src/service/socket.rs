//! The control socket's address and the blocking client the CLI uses.
//!
//! The socket lives in the home (mode 0600 inside a 0700 directory; the server also checks
//! the peer's uid). A Unix socket address holds at most 107 bytes of path; for a longer
//! home the path is reached through `/proc/self/fd/N/`, where N is an open descriptor of
//! the home directory, so any home path works.

use super::api::{Answer, Request};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest path used directly as a socket address (the kernel's limit is 107 + NUL).
const MAX_DIRECT_PATH: usize = 100;

/// A path to bind or connect to, and the directory handle that keeps a `/proc` path valid.
pub struct SocketPath {
    pub path: PathBuf,
    _dir: Option<File>,
}

impl SocketPath {
    pub fn new(path: &Path) -> std::io::Result<Self> {
        if path.as_os_str().len() <= MAX_DIRECT_PATH {
            return Ok(Self {
                path: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(std::io::Error::other("socket path has no parent directory"));
        };
        let dir = File::open(parent)?;
        let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
        Ok(Self {
            path: short,
            _dir: Some(dir),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the service's control socket {path:?}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the service closed the control connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the service sent an answer that is not valid: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("{0}")]
    Refused(String),
}

/// A blocking connection to a running service.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Self, ClientError> {
        let err = |source| ClientError::Connect {
            path: socket.to_path_buf(),
            source,
        };
        let addr = SocketPath::new(socket).map_err(err)?;
        let stream = UnixStream::connect(&addr.path).map_err(err)?;
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(err)?;
        let writer = stream.try_clone().map_err(err)?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one request and waits for its answer (a rescan may take long: no timeout).
    pub fn call(&mut self, req: &Request) -> Result<serde_json::Value, ClientError> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let answer: Answer = serde_json::from_str(&self.read_line()?)?;
        if answer.ok {
            Ok(answer.result.unwrap_or(serde_json::Value::Null))
        } else {
            Err(ClientError::Refused(
                answer.error.unwrap_or_else(|| "the service refused".into()),
            ))
        }
    }

    /// Reads one line (an answer, or an event after `subscribe`).
    pub fn read_line(&mut self) -> Result<String, ClientError> {
        let mut s = String::new();
        if self.reader.read_line(&mut s)? == 0 {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            )));
        }
        Ok(s)
    }
}
