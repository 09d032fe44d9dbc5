//! Which names a folder never syncs: Shoal's own files, and the patterns of the folder's
//! root `.shoalignore`.
//!
//! Only the `.shoalignore` at the folder root counts (like Syncthing's `.stignore`): one
//! file to read, to explain and to check, and the sync engine can answer "is this name
//! ignored?" for a name that does not exist locally yet. A `.shoalignore` further down is
//! an ordinary file and is synced. The root one is not synced: each device keeps its own.
//!
//! The syntax is gitignore's (`ignore::gitignore`): `#` comments, `!` negation, a trailing
//! `/` for directories only, a leading `/` or a middle `/` to anchor at the root, `**`.
//! As in git, a name inside an ignored directory stays ignored even if a later `!` pattern
//! matches it: the scanner never descends into an ignored directory, and `is_ignored`
//! answers the same way.

use crate::protocol::name::{IGNORE_FILE, MARKER_COMPONENT, TEMP_PREFIX};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::io;
use std::path::{Path, PathBuf};
use unicode_normalization::UnicodeNormalization;

/// Why the ignore file could not be used. The scan stops on it: guessing could sync a file
/// the user meant to keep private.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("cannot read {path:?}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path:?} is not valid UTF-8 text")]
    NotUtf8 { path: PathBuf },
    #[error("{path:?} line {line}: {message}; fix or remove the pattern")]
    Pattern {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// True for the names Shoal keeps for itself and never indexes nor syncs, the same ones
/// `protocol::name::validate_name` refuses from peers: the root `.shoalignore`, the root
/// `.shoal` marker directory and everything in it, and the sync engine's `.shoal-tmp-*`
/// files at any depth. (A `.shoal` further down is an ordinary directory.)
pub fn is_internal(name: &str) -> bool {
    name == IGNORE_FILE
        || name.split('/').next() == Some(MARKER_COMPONENT)
        || name.split('/').any(|c| c.starts_with(TEMP_PREFIX))
}

/// A folder's ignore rules.
#[derive(Clone, Debug)]
pub struct Ignores {
    rules: Gitignore,
}

impl Ignores {
    /// No patterns: only the internal names are ignored.
    pub fn empty() -> Self {
        Self {
            rules: Gitignore::empty(),
        }
    }

    /// Reads `root/.shoalignore`; a missing file means no patterns.
    pub fn load(root: &Path) -> Result<Self, IgnoreError> {
        let path = root.join(IGNORE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| IgnoreError::NotUtf8 { path: path.clone() })?;
                Self::parse(&text, &path)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::empty()),
            Err(source) => Err(IgnoreError::Read { path, source }),
        }
    }

    /// Parses the text of an ignore file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, IgnoreError> {
        // Patterns are matched against relative names, never absolute paths: "." as the
        // root makes the matcher use them as they are.
        let mut builder = GitignoreBuilder::new(".");
        for (i, line) in text.lines().enumerate() {
            // Names are NFC (see the module docs of `scan`): so must the patterns be, or a
            // pattern typed on a system that writes NFD would never match.
            let line: String = line.nfc().collect();
            builder
                .add_line(None, &line)
                .map_err(|e| IgnoreError::Pattern {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })?;
        }
        let rules = builder.build().map_err(|e| IgnoreError::Pattern {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
        Ok(Self { rules })
    }

    /// Whether a relative, `/`-separated name is never synced: an internal name, or one
    /// that a pattern ignores, itself or through a parent directory.
    pub fn is_ignored(&self, name: &str, is_dir: bool) -> bool {
        if is_internal(name) {
            return true;
        }
        let mut end = 0;
        while let Some(i) = name[end..].find('/') {
            end += i;
            if self.matches(&name[..end], true) {
                return true;
            }
            end += 1;
        }
        self.matches(name, is_dir)
    }

    /// The entry alone, its parents assumed not ignored: what the walker asks, having
    /// already passed the parents on its way down.
    pub(crate) fn is_ignored_entry(&self, name: &str, is_dir: bool) -> bool {
        is_internal(name) || self.matches(name, is_dir)
    }

    fn matches(&self, name: &str, is_dir: bool) -> bool {
        self.rules.matched(name, is_dir).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Ignores {
        Ignores::parse(text, Path::new(IGNORE_FILE)).expect("valid patterns")
    }

    #[test]
    fn internal_names() {
        for name in [
            ".shoalignore",
            ".shoal",
            ".shoal/state",
            ".shoal-tmp-1",
            "a/b/.shoal-tmp-xyz",
            "a/.shoal-tmp-dir/x",
        ] {
            assert!(is_internal(name), "{name}");
            assert!(
                crate::protocol::name::validate_name(name).is_err(),
                "{name}"
            );
            assert!(Ignores::empty().is_ignored(name, false), "{name}");
        }
        for name in [
            "a/.shoalignore",
            "a/.shoal",
            "a/.shoal/x",
            ".shoalx",
            "x.shoal",
            ".shoal-tmp",
            "a/shoal-tmp-1",
            ".hidden",
        ] {
            assert!(!is_internal(name), "{name}");
            assert_eq!(crate::protocol::name::validate_name(name), Ok(()), "{name}");
            assert!(!Ignores::empty().is_ignored(name, false), "{name}");
        }
    }

    #[test]
    fn gitignore_syntax_with_negation_and_directory_patterns() {
        let ig = rules("# comment\n*.log\n!keep.log\nbuild/\n/top.txt\ndocs/*.pdf\n");
        assert!(ig.is_ignored("a.log", false));
        assert!(ig.is_ignored("deep/er/a.log", false));
        assert!(!ig.is_ignored("keep.log", false));
        assert!(!ig.is_ignored("sub/keep.log", false));
        assert!(ig.is_ignored("build", true));
        assert!(
            !ig.is_ignored("build", false),
            "build/ matches directories only"
        );
        assert!(
            ig.is_ignored("build/out.o", false),
            "inside an ignored directory"
        );
        assert!(ig.is_ignored("x/build/y/z", false));
        assert!(ig.is_ignored("top.txt", false));
        assert!(!ig.is_ignored("sub/top.txt", false), "anchored at the root");
        assert!(ig.is_ignored("docs/a.pdf", false));
        assert!(!ig.is_ignored("docs/sub/a.pdf", false));
        assert!(!ig.is_ignored("# comment", false));
    }

    #[test]
    fn negation_cannot_reinclude_inside_an_ignored_directory() {
        let ig = rules("cache/\n!cache/keep\n");
        assert!(ig.is_ignored("cache/keep", false));
        // The entry test alone (what the walker asks once past the parents) would say no.
        assert!(!ig.is_ignored_entry("cache/keep", false));
    }

    #[test]
    fn nfd_patterns_match_nfc_names() {
        let ig = rules("cafe\u{301}.txt\n");
        assert!(ig.is_ignored("caf\u{e9}.txt", false));
    }

    #[test]
    fn bad_pattern_is_an_error_naming_the_line() {
        let err =
            Ignores::parse("ok\n[z-a]\n", Path::new("x/.shoalignore")).expect_err("invalid range");
        let text = err.to_string();
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn load_reads_the_root_file_and_tolerates_its_absence() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            !Ignores::load(dir.path())
                .expect("no file")
                .is_ignored("x.log", false)
        );
        std::fs::write(dir.path().join(IGNORE_FILE), "*.log\n").expect("write");
        assert!(
            Ignores::load(dir.path())
                .expect("file")
                .is_ignored("x.log", false)
        );
        std::fs::write(dir.path().join(IGNORE_FILE), [0xff, 0xfe]).expect("write");
        assert!(matches!(
            Ignores::load(dir.path()),
            Err(IgnoreError::NotUtf8 { .. })
        ));
    }
}
