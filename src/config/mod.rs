//! The device's configuration: this device's name and listen addresses, the trusted
//! devices, the folders and whom they are shared with.
//!
//! `config.toml` in the home is the only place it lives. Every load validates the whole
//! file (a hand edit that breaks a rule is reported, not half-applied); every save writes a
//! temp file, fsyncs it, renames it over the old one and fsyncs the directory, so a crash
//! leaves either the old or the new config, never a torn one. The file carries
//! `schema_version` so later releases can migrate it.

pub mod change;
pub mod home;

pub use change::{ConfigChange, MARKER_DIR};

pub use home::{Home, HomeError, HomeLock, LockState};

use crate::identity::DeviceId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The config layout this binary writes and understands.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;
/// Port of the default listen address.
pub const DEFAULT_PORT: u16 = 22100;
/// How often a folder is fully rescanned as a safety net when the watcher misses events.
pub const DEFAULT_RESCAN_INTERVAL_SECS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config at {0:?}: run `shoal init` first (or pass the right --home)")]
    Missing(PathBuf),
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path:?}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path:?} is not a valid config: {message}; fix the file by hand or restore it from {path:?}.bak if present"
    )]
    Parse { path: PathBuf, message: String },
    #[error(
        "{path:?} has schema_version {found}, newer than this shoal understands ({CONFIG_SCHEMA_VERSION}); upgrade shoal"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Whether a folder sends, receives, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FolderMode {
    #[default]
    SendReceive,
    SendOnly,
    ReceiveOnly,
}

impl FolderMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FolderMode::SendReceive => "send-receive",
            FolderMode::SendOnly => "send-only",
            FolderMode::ReceiveOnly => "receive-only",
        }
    }
}

impl fmt::Display for FolderMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FolderMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "send-receive" => Ok(FolderMode::SendReceive),
            "send-only" => Ok(FolderMode::SendOnly),
            "receive-only" => Ok(FolderMode::ReceiveOnly),
            other => Err(format!(
                "unknown folder mode {other:?}: use send-receive, send-only or receive-only"
            )),
        }
    }
}

/// What happens to a file that a peer's change replaces or deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Versioning {
    #[default]
    Off,
    /// Kept in `.shoal/versions/` for this many days.
    Trash { days: u32 },
    /// The last `keep` versions kept in `.shoal/versions/`.
    Simple { keep: u32 },
}

/// This device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDevice {
    pub name: String,
    /// `HOST:PORT` socket addresses to listen on.
    pub listen: Vec<String>,
}

/// A trusted device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: DeviceId,
    #[serde(default)]
    pub name: String,
    /// `HOST:PORT` addresses to dial; empty means "find it by discovery".
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub paused: bool,
}

/// A synced folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    pub id: String,
    #[serde(default)]
    pub label: String,
    /// Absolute path of the folder root.
    pub path: PathBuf,
    #[serde(default)]
    pub mode: FolderMode,
    /// Trusted devices this folder is shared with.
    #[serde(default)]
    pub devices: Vec<DeviceId>,
    #[serde(default)]
    pub paused: bool,
    /// Keep local permission bits as they are (FAT, CIFS): received files get none applied.
    #[serde(default)]
    pub ignore_perms: bool,
    #[serde(default)]
    pub versioning: Versioning,
    #[serde(default = "default_rescan")]
    pub rescan_interval_secs: u64,
}

fn default_rescan() -> u64 {
    DEFAULT_RESCAN_INTERVAL_SECS
}

/// The whole config, as stored in `config.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub schema_version: u32,
    pub device: LocalDevice,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    #[serde(default)]
    pub folders: Vec<FolderConfig>,
}

impl Config {
    /// A new config for this machine, with the default listen address.
    pub fn new(name: String) -> Self {
        Self {
            schema_version: CONFIG_SCHEMA_VERSION,
            device: LocalDevice {
                name,
                listen: vec![format!("0.0.0.0:{DEFAULT_PORT}")],
            },
            devices: Vec::new(),
            folders: Vec::new(),
        }
    }

    pub fn device(&self, id: &DeviceId) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.id == *id)
    }

    pub fn device_mut(&mut self, id: &DeviceId) -> Option<&mut DeviceConfig> {
        self.devices.iter_mut().find(|d| d.id == *id)
    }

    pub fn folder(&self, id: &str) -> Option<&FolderConfig> {
        self.folders.iter().find(|f| f.id == id)
    }

    pub fn folder_mut(&mut self, id: &str) -> Option<&mut FolderConfig> {
        self.folders.iter_mut().find(|f| f.id == id)
    }

    /// The folder `id`, or an error that lists what exists.
    pub fn require_folder(&self, id: &str) -> Result<&FolderConfig, ConfigError> {
        self.folder(id).ok_or_else(|| self.unknown_folder(id))
    }

    pub fn require_folder_mut(&mut self, id: &str) -> Result<&mut FolderConfig, ConfigError> {
        let err = self.unknown_folder(id);
        self.folder_mut(id).ok_or(err)
    }

    fn unknown_folder(&self, id: &str) -> ConfigError {
        let known: Vec<&str> = self.folders.iter().map(|f| f.id.as_str()).collect();
        if known.is_empty() {
            invalid(format!(
                "unknown folder ID \"{id}\": no folder is configured; add one with `shoal folder add PATH`"
            ))
        } else {
            invalid(format!(
                "unknown folder ID \"{id}\"; `shoal folder ls` lists them (known: {})",
                known.join(", ")
            ))
        }
    }

    pub fn require_device(&self, id: &DeviceId) -> Result<&DeviceConfig, ConfigError> {
        self.device(id).ok_or_else(|| unknown_device(id))
    }

    pub fn require_device_mut(&mut self, id: &DeviceId) -> Result<&mut DeviceConfig, ConfigError> {
        self.device_mut(id).ok_or_else(|| unknown_device(id))
    }

    /// Checks every rule a config must hold. `local` is this device's ID; `home_dirs` the
    /// home's directories (no folder may hold them).
    pub fn validate(
        &self,
        local: Option<&DeviceId>,
        home_dirs: &[PathBuf],
    ) -> Result<(), ConfigError> {
        if self.schema_version != CONFIG_SCHEMA_VERSION {
            return Err(invalid(format!(
                "schema_version {} is not supported (expected {CONFIG_SCHEMA_VERSION})",
                self.schema_version
            )));
        }
        for addr in &self.device.listen {
            validate_listen_addr(addr)?;
        }
        for (i, d) in self.devices.iter().enumerate() {
            if Some(&d.id) == local {
                return Err(invalid(format!(
                    "device {} is this device itself; a device does not trust itself",
                    d.id
                )));
            }
            if self.devices[..i].iter().any(|o| o.id == d.id) {
                return Err(invalid(format!("device {} is listed twice", d.id)));
            }
            for a in &d.addresses {
                validate_dial_addr(a)?;
            }
        }
        for (i, f) in self.folders.iter().enumerate() {
            validate_folder_id(&f.id)?;
            if self.folders[..i].iter().any(|o| o.id == f.id) {
                return Err(invalid(format!("folder ID \"{}\" is listed twice", f.id)));
            }
            if !f.path.is_absolute() {
                return Err(invalid(format!(
                    "folder \"{}\" has a relative path {:?}; folder paths must be absolute",
                    f.id, f.path
                )));
            }
            for o in &self.folders[..i] {
                check_not_nested(&f.path, &o.path, &o.id)?;
            }
            for h in home_dirs {
                if h.starts_with(&f.path) {
                    return Err(invalid(format!(
                        "folder \"{}\" at {:?} holds this device's home {:?}; the home must not be inside a synced folder (move the folder, or pass another --home)",
                        f.id, f.path, h
                    )));
                }
            }
            for (j, d) in f.devices.iter().enumerate() {
                if self.device(d).is_none() {
                    return Err(invalid(format!(
                        "folder \"{}\" is shared with {d}, which is not a trusted device; add it with `shoal device add {d}` or remove it from the folder",
                        f.id
                    )));
                }
                if f.devices[..j].contains(d) {
                    return Err(invalid(format!(
                        "folder \"{}\" lists device {d} twice",
                        f.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads and validates `config.toml`.
    pub fn load(home: &Home, local: Option<&DeviceId>) -> Result<Self, ConfigError> {
        let path = home.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing(path));
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config = Self::parse(&text, &path)?;
        config
            .validate(local, &home.dirs_canonical())
            .map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
        Ok(config)
    }

    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: Option<u32>,
        }
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string() + &line_of(text, e.span()),
        };
        // Look at the version first: a newer file deserves "upgrade", not a field error.
        let v: VersionOnly = toml::from_str(text).map_err(parse_err)?;
        match v.schema_version {
            None => {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: "missing schema_version".into(),
                });
            }
            Some(found) if found > CONFIG_SCHEMA_VERSION => {
                return Err(ConfigError::TooNew {
                    path: path.to_path_buf(),
                    found,
                });
            }
            Some(_) => {}
        }
        toml::from_str(text).map_err(parse_err)
    }

    /// Writes `config.toml` atomically: temp file, fsync, rename, fsync of the directory.
    /// The previous file is kept as `config.toml.bak`.
    pub fn save(&self, home: &Home) -> Result<(), ConfigError> {
        let path = home.config_path();
        let err = |source| ConfigError::Write {
            path: path.clone(),
            source,
        };
        let text = toml::to_string_pretty(self)
            .map_err(|e| invalid(format!("cannot encode config: {e}")))?;
        let tmp = path.with_extension("toml.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(b"# Shoal device configuration. Prefer `shoal` commands to hand edits:\n# they validate every change and apply it to a running service.\n")
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        if path.exists() {
            // A hard link keeps the previous version without a second copy of the bytes.
            let bak = path.with_extension("toml.bak");
            let _ = std::fs::remove_file(&bak);
            let _ = std::fs::hard_link(&path, &bak);
        }
        std::fs::rename(&tmp, &path).map_err(err)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) if r.start <= text.len() => {
            let line = text[..r.start].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        _ => String::new(),
    }
}

fn unknown_device(id: &DeviceId) -> ConfigError {
    invalid(format!(
        "unknown device {id}: it is not trusted here; `shoal device ls` lists trusted devices, `shoal device add {id}` trusts it"
    ))
}

fn check_not_nested(a: &Path, b: &Path, b_id: &str) -> Result<(), ConfigError> {
    if a == b {
        return Err(invalid(format!(
            "{a:?} is already the path of folder \"{b_id}\""
        )));
    }
    if a.starts_with(b) {
        return Err(invalid(format!(
            "{a:?} is inside folder \"{b_id}\" at {b:?}; folders may not nest"
        )));
    }
    if b.starts_with(a) {
        return Err(invalid(format!(
            "{a:?} holds folder \"{b_id}\" at {b:?}; folders may not nest"
        )));
    }
    Ok(())
}

/// A listen address: an IP socket address such as `0.0.0.0:22100` or `[::1]:22100`.
pub fn validate_listen_addr(addr: &str) -> Result<std::net::SocketAddr, ConfigError> {
    addr.parse().map_err(|_| {
        invalid(format!(
            "bad listen address \"{addr}\": use IP:PORT, for example 0.0.0.0:{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT}"
        ))
    })
}

/// A dial address: `HOST:PORT` where HOST is an IP (IPv6 in brackets) or a host name.
pub fn validate_dial_addr(addr: &str) -> Result<(), ConfigError> {
    let bad = || {
        invalid(format!(
            "bad device address \"{addr}\": use HOST:PORT, for example 192.0.2.7:{DEFAULT_PORT} or nas.local:{DEFAULT_PORT}"
        ))
    };
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().map(|p| p != 0).unwrap_or(false);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Folder IDs travel to peers and name directories: keep them to a safe alphabet.
pub fn validate_folder_id(id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "bad folder ID \"{id}\": use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

/// A new random folder ID in Syncthing's style: `xxxxx-xxxxx`, lowercase letters and digits.
pub fn random_folder_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    // The system RNG failing is a broken machine; fall back to the clock rather than stop.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (nanos >> (i * 7)) as u8;
        }
    }
    let mut id = String::with_capacity(11);
    for (i, b) in bytes.iter().enumerate() {
        if i == 5 {
            id.push('-');
        }
        id.push(ALPHABET[(*b % 32) as usize] as char);
    }
    id
}

/// The machine's host name, for a device's default name.
pub fn default_device_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_str()
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| "shoal".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 32])
    }

    fn folder(id: &str, path: &str) -> FolderConfig {
        FolderConfig {
            id: id.into(),
            label: String::new(),
            path: path.into(),
            mode: FolderMode::SendReceive,
            devices: vec![],
            paused: false,
            ignore_perms: false,
            versioning: Versioning::Off,
            rescan_interval_secs: DEFAULT_RESCAN_INTERVAL_SECS,
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let mut c = Config::new("laptop".into());
        c.devices.push(DeviceConfig {
            id: dev(1),
            name: "nas".into(),
            addresses: vec!["nas.local:22100".into()],
            paused: false,
        });
        let mut f = folder("abcde-fghij", "/srv/photos");
        f.devices.push(dev(1));
        f.versioning = Versioning::Trash { days: 30 };
        c.folders.push(f);
        c.validate(Some(&dev(9)), &[]).expect("valid");
        let text = toml::to_string_pretty(&c).expect("toml");
        let back = Config::parse(&text, Path::new("x")).expect("parse");
        assert_eq!(back, c);
    }

    #[test]
    fn nested_folders_are_refused() {
        let mut c = Config::new("x".into());
        c.folders.push(folder("a", "/data"));
        c.folders.push(folder("b", "/data/sub"));
        let e = c.validate(None, &[]).expect_err("nested");
        assert!(e.to_string().contains("inside folder"), "{e}");
        c.folders[1].path = "/data2".into();
        c.validate(None, &[])
            .expect("siblings with a common prefix are fine");
    }

    #[test]
    fn home_inside_folder_is_refused() {
        let mut c = Config::new("x".into());
        c.folders.push(folder("a", "/data"));
        let e = c
            .validate(None, &[PathBuf::from("/data/.config/shoal")])
            .expect_err("home inside");
        assert!(e.to_string().contains("home"), "{e}");
    }

    #[test]
    fn unknown_fields_and_newer_schema_are_clear_errors() {
        let e = Config::parse(
            "schema_version = 1\nbogus = 2\n[device]\nname='x'\nlisten=[]\n",
            Path::new("c"),
        )
        .expect_err("unknown field");
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Config::parse("schema_version = 7\n", Path::new("c")).expect_err("newer");
        assert!(e.to_string().contains("upgrade shoal"), "{e}");
        let e = Config::parse("\u{0}\u{1}garbage[[[", Path::new("c")).expect_err("garbage");
        assert!(e.to_string().contains("not a valid config"), "{e}");
    }

    #[test]
    fn addresses_are_checked() {
        assert!(validate_listen_addr("0.0.0.0:22100").is_ok());
        assert!(validate_listen_addr("[::1]:1").is_ok());
        assert!(validate_listen_addr("localhost").is_err());
        assert!(validate_listen_addr("1.2.3.4:99999").is_err());
        assert!(validate_dial_addr("nas.local:22100").is_ok());
        assert!(validate_dial_addr("nas.local").is_err());
        assert!(validate_dial_addr("bad host:1").is_err());
    }

    #[test]
    fn the_packaged_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.example.toml");
        let text = std::fs::read_to_string(&path).expect("example");
        let c = Config::parse(&text, &path).expect("parses");
        c.validate(None, &[]).expect("valid");
        assert_eq!(c.folders[0].versioning, Versioning::Trash { days: 30 });
    }

    #[test]
    fn random_folder_ids_are_valid() {
        let id = random_folder_id();
        assert_eq!(id.len(), 11);
        validate_folder_id(&id).expect("valid");
        assert_ne!(id, random_folder_id());
    }
}
