//! Validation of file names that come from peers (invariant 3 of ARCHITECTURE.md: nothing
//! is written outside a folder's root).
//!
//! A name is checked as text only: this module never looks at a disk. Symlinks along a
//! valid name are the writer's concern (it opens directories without following them).
//!
//! Names travel in Unicode NFC. A peer's name that is not NFC is refused, not normalised:
//! a well-behaved peer normalises before sending (Shoal's scanner does), and normalising on
//! receipt would let two different names from a peer land on one local file, while block
//! requests would still have to use the peer's spelling.
//!
//! Shoal's own names (`.shoal/`, `.shoal-tmp-*`, the root `.shoalignore`) are refused in
//! any letter case and normalisation ([`fold`]): on a case-insensitive file system
//! (macOS, Windows) `.Shoal/x` is the marker directory itself.

use unicode_normalization::{UnicodeNormalization, is_nfc};

/// Longest name, in bytes (Linux `PATH_MAX`).
pub const MAX_NAME_LEN: usize = 4096;
/// Longest component of a name, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;
/// The folder marker directory: never synced.
pub const MARKER_COMPONENT: &str = ".shoal";
/// Temp files being assembled start with this; never synced, never written by a peer.
pub const TEMP_PREFIX: &str = ".shoal-tmp-";
/// The ignore file at a folder's root is each device's own.
pub const IGNORE_FILE: &str = ".shoalignore";

/// Why a name from a peer may not be used. Displays as the problem, to follow
/// `file name "…": `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long, more than {MAX_NAME_LEN}")]
    TooLong(usize),
    #[error("has a component of {0} bytes, more than {MAX_COMPONENT_LEN}")]
    ComponentTooLong(usize),
    #[error("contains a NUL byte")]
    Nul,
    #[error("contains a backslash (names use \"/\" between components)")]
    Backslash,
    #[error("is absolute (starts with \"/\"); names are relative to the folder root")]
    Absolute,
    #[error("has an empty component (a doubled \"//\" or a trailing \"/\")")]
    EmptyComponent,
    #[error("has a {0:?} component")]
    DotComponent(&'static str),
    #[error("is inside the folder marker \".shoal\", which is never synced")]
    Marker,
    #[error("has a component starting with \".shoal-tmp-\", a name reserved for temp files")]
    TempName,
    #[error("is the folder's own \".shoalignore\", which is never synced")]
    IgnoreFile,
    #[error("is not in Unicode NFC (normalise it before sending)")]
    NotNfc,
}

/// Checks a name received from a peer before any use of it: a relative, `/`-separated
/// path of plain components, in NFC, outside Shoal's own files.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    if name.contains('\\') {
        return Err(NameError::Backslash);
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    for (i, component) in name.split('/').enumerate() {
        match component {
            "" => return Err(NameError::EmptyComponent),
            "." => return Err(NameError::DotComponent(".")),
            ".." => return Err(NameError::DotComponent("..")),
            c if c.len() > MAX_COMPONENT_LEN => return Err(NameError::ComponentTooLong(c.len())),
            // Every reserved name starts with a dot, which has no other case or
            // normalisation: only those components need folding.
            c if c.starts_with('.') => {
                let folded = Folded::of(c);
                if i == 0 && folded.is(MARKER_COMPONENT) {
                    return Err(NameError::Marker);
                }
                if folded.starts_with(TEMP_PREFIX) {
                    return Err(NameError::TempName);
                }
                if i == 0 && !name.contains('/') && folded.is(IGNORE_FILE) {
                    return Err(NameError::IgnoreFile);
                }
            }
            _ => {}
        }
    }
    if !is_nfc(name) {
        return Err(NameError::NotNfc);
    }
    Ok(())
}

/// A name's key for comparing names the way a case-insensitive, normalising file system
/// does: NFC, every character upper-cased then lower-cased (so `ß`/`SS`, the Kelvin sign
/// and the long s meet their ASCII forms), NFC again. Two names with the same key are one
/// entry on such a file system. It is deliberately broad: an over-eager match is only
/// reported as a clash, never written over.
pub fn fold(name: &str) -> String {
    name.nfc()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .nfc()
        .collect()
}

/// A component compared with Shoal's own (ASCII, lower-case) names in any case: ASCII
/// components without allocating, others through [`fold`].
enum Folded<'a> {
    Ascii(&'a str),
    Other(String),
}

impl<'a> Folded<'a> {
    fn of(c: &'a str) -> Self {
        if c.is_ascii() {
            Folded::Ascii(c)
        } else {
            Folded::Other(fold(c))
        }
    }

    fn is(&self, reserved: &str) -> bool {
        match self {
            Folded::Ascii(c) => c.eq_ignore_ascii_case(reserved),
            Folded::Other(f) => f == reserved,
        }
    }

    fn starts_with(&self, prefix: &str) -> bool {
        match self {
            Folded::Ascii(c) => c
                .get(..prefix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(prefix)),
            Folded::Other(f) => f.starts_with(prefix),
        }
    }
}

/// `name` in NFC.
pub fn to_nfc(name: &str) -> String {
    name.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_names_pass() {
        for name in [
            "a",
            "a/b/c.txt",
            ".hidden/.x",
            "sub/.shoal",
            "sub/.shoalignore",
            "sub/.SHOAL",
            "sub/.ShoalIgnore",
            ".shoalx",
            "..a/b..",
            "a/...",
            "caf\u{e9}",
            "\u{1F980} crab",
            "line\nbreak",
            &"x".repeat(255),
        ] {
            assert_eq!(validate_name(name), Ok(()), "{name:?}");
        }
        let long = vec!["y".repeat(255); 16].join("/");
        assert_eq!(long.len(), 4095);
        assert_eq!(validate_name(&long), Ok(()));
    }

    #[test]
    fn bad_names_name_the_problem() {
        let too_long = vec!["y".repeat(255); 17].join("/");
        let cases: Vec<(String, NameError)> = vec![
            ("".into(), NameError::Empty),
            (too_long.clone(), NameError::TooLong(too_long.len())),
            ("x".repeat(256), NameError::ComponentTooLong(256)),
            ("a\0b".into(), NameError::Nul),
            ("a\\b".into(), NameError::Backslash),
            ("..\\x".into(), NameError::Backslash),
            ("/etc/passwd".into(), NameError::Absolute),
            ("a//b".into(), NameError::EmptyComponent),
            ("a/".into(), NameError::EmptyComponent),
            (".".into(), NameError::DotComponent(".")),
            ("a/./b".into(), NameError::DotComponent(".")),
            ("..".into(), NameError::DotComponent("..")),
            ("a/../../b".into(), NameError::DotComponent("..")),
            (".shoal".into(), NameError::Marker),
            (".shoal/index".into(), NameError::Marker),
            (".shoal-tmp-123".into(), NameError::TempName),
            ("a/.shoal-tmp-x.part".into(), NameError::TempName),
            (".shoalignore".into(), NameError::IgnoreFile),
            ("cafe\u{301}".into(), NameError::NotNfc),
            // Shoal's own names in another case (the same entry on macOS or Windows).
            (".Shoal/index".into(), NameError::Marker),
            (".SHOAL".into(), NameError::Marker),
            (".\u{17f}hoal/x".into(), NameError::Marker),
            ("a/.Shoal-Tmp-x".into(), NameError::TempName),
            (".ShoalIgnore".into(), NameError::IgnoreFile),
        ];
        for (name, want) in cases {
            let got = validate_name(&name);
            assert_eq!(got, Err(want.clone()), "{name:?}");
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn fold_matches_case_and_normalisation_variants() {
        assert_eq!(fold("README.md"), fold("readme.md"));
        assert_eq!(fold("Caf\u{e9}"), fold("cafe\u{301}"));
        assert_eq!(fold("CAF\u{c9}"), fold("caf\u{e9}"));
        assert_eq!(fold("stra\u{df}e"), fold("STRASSE"));
        assert_eq!(fold("\u{212a}elvin"), fold("kelvin"));
        assert_ne!(fold("a.txt"), fold("b.txt"));
        assert_ne!(fold("caf\u{e9}"), fold("cafe"));
        assert_eq!(to_nfc("cafe\u{301}"), "caf\u{e9}");
        assert!(is_nfc(&fold("CAFE\u{301}")));
    }

    proptest! {
        #[test]
        fn a_valid_name_never_leaves_the_root(name in "[a./\\\\\u{301}\0]{0,12}") {
            if validate_name(&name).is_ok() {
                let path = std::path::Path::new(&name);
                prop_assert!(path.is_relative());
                for c in path.components() {
                    prop_assert!(matches!(c, std::path::Component::Normal(_)), "{name:?}");
                }
                prop_assert!(!name.contains('\0') && !name.contains('\\'));
            }
        }
    }
}
