//! The device's certificate and private key: made once by `init`, kept in the home as
//! `cert.pem` and `key.pem` (mode 0600).

use super::DeviceId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
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
        "{path:?} holds no valid PEM {what}; restore it from a backup, or move the home aside and run `shoal init` for a new identity"
    )]
    BadPem { path: PathBuf, what: &'static str },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("no identity in {0:?}: run `shoal init` first")]
    Missing(PathBuf),
}

/// A device's certificate and key, and the ID they give it.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub id: DeviceId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256) with common name `shoal`.
    pub fn generate() -> Result<Self, IdentityError> {
        let certified = rcgen::generate_simple_self_signed(vec!["shoal".to_string()])?;
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let id = DeviceId::from_cert_der(&cert);
        Ok(Self { cert, key, id })
    }

    /// Loads `cert.pem` and `key.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        if !cert_path.exists() {
            return Err(IdentityError::Missing(dir.to_path_buf()));
        }
        let cert_pem = std::fs::read(&cert_path).map_err(|source| IdentityError::Read {
            path: cert_path.clone(),
            source,
        })?;
        let key_pem = std::fs::read(&key_path).map_err(|source| IdentityError::Read {
            path: key_path.clone(),
            source,
        })?;
        let cert =
            CertificateDer::from_pem_slice(&cert_pem).map_err(|_| IdentityError::BadPem {
                path: cert_path,
                what: "certificate",
            })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| IdentityError::BadPem {
            path: key_path,
            what: "private key",
        })?;
        let id = DeviceId::from_cert_der(&cert);
        Ok(Self { cert, key, id })
    }

    /// Loads the identity in `dir`, making one first when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        if dir.join("cert.pem").exists() {
            return Self::load(dir);
        }
        let identity = Self::generate()?;
        identity.save(dir)?;
        Ok(identity)
    }

    /// Writes the key first (created 0600, never readable by others even for a moment),
    /// then the certificate, each durably.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let key_pem = pem_block("PRIVATE KEY", self.key.secret_der());
        let cert_pem = pem_block("CERTIFICATE", &self.cert);
        write_private(&dir.join("key.pem"), key_pem.as_bytes(), 0o600)?;
        write_private(&dir.join("cert.pem"), cert_pem.as_bytes(), 0o644)?;
        Ok(())
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_private(path: &Path, data: &[u8], mode: u32) -> Result<(), IdentityError> {
    let err = |source| IdentityError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    // A file left from an earlier run keeps its old mode: set it explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_identity_loads_with_same_id_and_private_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Identity::load_or_create(dir.path()).expect("create");
        let b = Identity::load_or_create(dir.path()).expect("load");
        assert_eq!(a.id, b.id);
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cert.pem"), "not a cert").expect("write");
        std::fs::write(dir.path().join("key.pem"), "not a key").expect("write");
        let err = Identity::load(dir.path()).expect_err("garbage");
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }
}
