//! Who a device is: its certificate and key, and the device ID derived from them.
//!
//! The device ID is the SHA-256 of the certificate's DER bytes, written in Syncthing's text
//! form (base32, a Luhn mod 32 check character per run of 13, groups of 7 joined by `-`),
//! so IDs read the same as Syncthing's. This module owns that text form and the identity
//! files in a home; it never talks to the network.

mod cert;

pub use cert::{Identity, IdentityError};

use data_encoding::BASE32_NOPAD;
use std::fmt;
use std::str::FromStr;

/// The RFC 4648 base32 alphabet, which is also the alphabet of the check characters.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A device: SHA-256 of its certificate's DER.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; 32]);

/// The first 8 bytes of a device ID, as used in version vectors (as Syncthing does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShortId(pub u64);

/// Why a text is not a device ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("device ID is empty")]
    Empty,
    #[error(
        "device ID has {0} characters without dashes, expected 56 (8 groups of 7, like XXXXXXX-XXXXXXX-…)"
    )]
    Length(usize),
    #[error("device ID contains {0:?}, which is not in the base32 alphabet A-Z, 2-7")]
    BadCharacter(char),
    #[error("device ID has a wrong check character in group {0} of 4 (a typo in that part?)")]
    BadCheck(usize),
}

impl DeviceId {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The ID of a certificate: SHA-256 of its DER bytes.
    pub fn from_cert_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut b = [0u8; 32];
        b.copy_from_slice(digest.as_ref());
        Self(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn short(&self) -> ShortId {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        ShortId(u64::from_be_bytes(b))
    }

    /// The first 7 characters of the text form, as CLI.md's short ID.
    pub fn short_str(&self) -> String {
        self.to_string()[..7].to_string()
    }
}

/// Syncthing's Luhn mod 32 over base32 characters: the factor starts at 1 on the first
/// character and alternates 1, 2; each addend is folded as `addend / 32 + addend % 32`.
fn luhn32(s: &[u8]) -> Result<u8, IdError> {
    let mut factor = 1;
    let mut sum = 0u32;
    for &c in s {
        let cp = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(IdError::BadCharacter(c as char))? as u32;
        let addend = factor * cp;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / 32 + addend % 32;
    }
    let check = (32 - sum % 32) % 32;
    Ok(ALPHABET[check as usize])
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b32 = BASE32_NOPAD.encode(&self.0);
        let mut with_checks = Vec::with_capacity(56);
        for run in b32.as_bytes().chunks(13) {
            with_checks.extend_from_slice(run);
            // The runs come from our own encoder, so every character is in the alphabet.
            with_checks.push(luhn32(run).map_err(|_| fmt::Error)?);
        }
        for (i, group) in with_checks.chunks(7).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.short_str())
    }
}

impl fmt::Display for ShortId {
    /// The first 7 characters of the device ID's text form (the first run needs no check
    /// character, so they follow from the first bytes alone).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = BASE32_NOPAD.encode(&self.0.to_be_bytes());
        f.write_str(&text[..7])
    }
}

impl FromStr for DeviceId {
    type Err = IdError;

    /// Accepts any letter case, with or without dashes or spaces.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let cleaned: Vec<u8> = s
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .map(|c| {
                if c.is_ascii() {
                    Ok(c as u8)
                } else {
                    Err(IdError::BadCharacter(c))
                }
            })
            .collect::<Result<_, _>>()?;
        if cleaned.is_empty() {
            return Err(IdError::Empty);
        }
        if let Some(&bad) = cleaned.iter().find(|c| !ALPHABET.contains(c)) {
            return Err(IdError::BadCharacter(bad as char));
        }
        if cleaned.len() != 56 {
            return Err(IdError::Length(cleaned.len()));
        }
        let mut b32 = Vec::with_capacity(52);
        for (i, run) in cleaned.chunks(14).enumerate() {
            let (data, check) = run.split_at(13);
            if luhn32(data)? != check[0] {
                return Err(IdError::BadCheck(i + 1));
            }
            b32.extend_from_slice(data);
        }
        let bytes = BASE32_NOPAD
            .decode(&b32)
            // 52 base32 characters whose last one carries unused bits that are not zero.
            .map_err(|_| IdError::BadCharacter(b32[51] as char))?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(Self(out))
    }
}

impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn testdata() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/device-id")
    }

    #[test]
    fn ids_of_real_certificates_match_syncthing() {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let tsv = std::fs::read_to_string(testdata().join("ids.tsv")).expect("ids.tsv");
        let mut checked = 0;
        for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (file, want) = line.split_once('\t').expect("tab");
            let der = CertificateDer::from_pem_file(testdata().join(file)).expect("pem");
            let id = DeviceId::from_cert_der(&der);
            assert_eq!(id.to_string(), want, "{file}");
            assert_eq!(want.parse::<DeviceId>(), Ok(id));
            assert_eq!(
                want.to_lowercase().replace('-', "").parse::<DeviceId>(),
                Ok(id)
            );
            checked += 1;
        }
        assert_eq!(checked, 5);
    }

    #[test]
    fn invalid_ids_are_refused_with_a_reason() {
        let txt = std::fs::read_to_string(testdata().join("invalid.txt")).expect("invalid.txt");
        let mut checked = 0;
        for line in txt.lines().filter(|l| !l.starts_with('#')) {
            let (id, why) = line.split_once('\t').unwrap_or((line, ""));
            let err = id.parse::<DeviceId>().expect_err(id);
            let msg = err.to_string();
            if why.contains("check character") {
                assert!(matches!(err, IdError::BadCheck(_)), "{id}: {msg}");
                assert!(msg.contains("check character"), "{msg}");
            }
            if why.contains("first run") {
                assert_eq!(err, IdError::BadCheck(1));
            }
            if why.contains("last run") {
                assert_eq!(err, IdError::BadCheck(4));
            }
            if why.contains("alphabet") {
                assert_eq!(err, IdError::BadCharacter('1'));
            }
            if why.contains("short") || why.contains("too many") {
                assert!(matches!(err, IdError::Length(_)), "{id}: {msg}");
            }
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn short_id_text_is_the_id_prefix() {
        let id = DeviceId::from_bytes([0xa5; 32]);
        assert_eq!(id.short().to_string(), id.short_str());
    }

    proptest! {
        #[test]
        fn text_form_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let id = DeviceId::from_bytes(bytes);
            let s = id.to_string();
            prop_assert_eq!(s.len(), 63);
            prop_assert_eq!(s.parse::<DeviceId>(), Ok(id));
            prop_assert_eq!(s.to_lowercase().parse::<DeviceId>(), Ok(id));
            prop_assert_eq!(s.replace('-', " ").parse::<DeviceId>(), Ok(id));
        }

        #[test]
        fn any_single_character_change_is_caught(bytes in proptest::array::uniform32(any::<u8>()),
                                                 pos in 0usize..56, delta in 1u8..32) {
            let id = DeviceId::from_bytes(bytes);
            let mut chars: Vec<u8> = id.to_string().replace('-', "").into_bytes();
            let cur = ALPHABET.iter().position(|&a| a == chars[pos]).expect("alphabet");
            chars[pos] = ALPHABET[(cur + delta as usize) % 32];
            let s = String::from_utf8(chars).expect("ascii");
            // Either refused, or (a change in the padding bits of the last data character)
            // decodes to a different-looking but refused form; it never yields the same ID.
            prop_assert_ne!(s.parse::<DeviceId>().ok(), Some(id));
        }
    }
}
