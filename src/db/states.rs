//! [`ScanStates`]: what the scanner compares the disk with, for many entries, in little
//! memory.
//!
//! A warm rescan of a folder of a million files needs the previous state of every entry.
//! Held as a `HashMap<String, ScanState>` that cost about 125 B per entry (two heap blocks
//! per name, the map's slack) plus the walk's set of seen names: about 160 MiB at a
//! million. Here every name (and symlink target) lives back to back in one string, and the
//! fixed-size stat fields in one vector sorted by name: 56 B per entry plus the name's
//! bytes, looked up by binary search. The position of an entry in that order is its
//! index, which lets the scanner mark what it saw in a bitset (one bit per entry).

use super::ScanState;
use crate::protocol::FileType;

/// The scan states of a folder's local entries, sorted by name (byte order).
#[derive(Clone, Debug)]
pub struct ScanStates {
    /// Names and symlink targets, back to back: an entry's name, then its target.
    text: String,
    entries: Vec<Entry>,
    /// Whether `entries` is known to be in name order without duplicates.
    sorted: bool,
}

impl Default for ScanStates {
    fn default() -> Self {
        Self::with_capacity(0, 0)
    }
}

#[derive(Clone, Debug)]
struct Entry {
    /// Where the name starts in `text`; the target follows it.
    start: u64,
    name_len: u32,
    target_len: u32,
    size: u64,
    modified_ns: i64,
    inode: u64,
    ctime_ns: i64,
    permissions: u32,
    file_type: FileType,
    deleted: bool,
}

impl ScanStates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `entries` entries whose names and targets add up to about `text` bytes.
    pub fn with_capacity(entries: usize, text: usize) -> Self {
        Self {
            text: String::with_capacity(text),
            entries: Vec::with_capacity(entries),
            sorted: true,
        }
    }

    /// Adds an entry. Call [`ScanStates::finish`] once every entry is in, before looking
    /// anything up. Names or targets longer than 4 GiB (which no file system has) are cut.
    pub fn push(&mut self, name: &str, st: &ScanState) {
        let start = self.text.len() as u64;
        let name = clip(name);
        let target = clip(&st.symlink_target);
        self.text.push_str(name);
        self.text.push_str(target);
        if let Some(last) = self.entries.last()
            && self.sorted
        {
            self.sorted = self.name_of(last) < name;
        }
        self.entries.push(Entry {
            start,
            name_len: name.len() as u32,
            target_len: target.len() as u32,
            size: st.size,
            modified_ns: st.modified_ns,
            inode: st.inode,
            ctime_ns: st.ctime_ns,
            permissions: st.permissions,
            file_type: st.file_type,
            deleted: st.deleted,
        });
    }

    /// Sorts the entries by name; of several with the same name, the last pushed stays.
    pub fn finish(&mut self) {
        if !self.sorted {
            let text = &self.text;
            let name = |e: &Entry| entry_name(text, e);
            // In place (a stable sort would allocate half the entries again, at every
            // warm rescan): equal names are ordered by where they were pushed.
            self.entries
                .sort_unstable_by(|a, b| name(a).cmp(name(b)).then(a.start.cmp(&b.start)));
            // Of equal names the last pushed stays: `dedup_by` drops the later one, so
            // it is swapped into the kept place first.
            self.entries.dedup_by(|later, kept| {
                let same = name(later) == name(kept);
                if same {
                    std::mem::swap(later, kept);
                }
                same
            });
            self.sorted = true;
        }
        self.entries.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position of `name` in name order, if it is there.
    pub fn position(&self, name: &str) -> Option<usize> {
        debug_assert!(self.sorted, "ScanStates looked up before finish()");
        self.entries
            .binary_search_by(|e| self.name_of(e).cmp(name))
            .ok()
    }

    /// The state of `name`.
    pub fn get(&self, name: &str) -> Option<ScanState> {
        self.position(name).map(|i| self.state_at(i))
    }

    /// The name at a position (`< len()`).
    pub fn name_at(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |e| self.name_of(e))
    }

    /// The state at a position (`< len()`); a deleted directory past the end.
    pub fn state_at(&self, i: usize) -> ScanState {
        match self.entries.get(i) {
            Some(e) => ScanState {
                file_type: e.file_type,
                deleted: e.deleted,
                size: e.size,
                permissions: e.permissions,
                modified_ns: e.modified_ns,
                inode: e.inode,
                ctime_ns: e.ctime_ns,
                symlink_target: self.target_of(e).to_string(),
            },
            None => ScanState {
                file_type: FileType::Dir,
                deleted: true,
                size: 0,
                permissions: 0,
                modified_ns: 0,
                inode: 0,
                ctime_ns: 0,
                symlink_target: String::new(),
            },
        }
    }

    /// Whether the entry at a position is a tombstone.
    pub fn deleted_at(&self, i: usize) -> bool {
        self.entries.get(i).is_none_or(|e| e.deleted)
    }

    /// Every entry in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ScanState)> + '_ {
        (0..self.entries.len()).map(|i| (self.name_at(i), self.state_at(i)))
    }

    /// Every name in name order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| self.name_of(e))
    }

    /// Bytes held (for notes and tests).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    fn name_of(&self, e: &Entry) -> &str {
        entry_name(&self.text, e)
    }

    fn target_of(&self, e: &Entry) -> &str {
        let start = e.start as usize + e.name_len as usize;
        self.text
            .get(start..start + e.target_len as usize)
            .unwrap_or("")
    }
}

fn entry_name<'a>(text: &'a str, e: &Entry) -> &'a str {
    let start = e.start as usize;
    text.get(start..start + e.name_len as usize).unwrap_or("")
}

/// `s`, cut to at most `u32::MAX` bytes on a character boundary.
fn clip(s: &str) -> &str {
    let max = u32::MAX as usize;
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<S: AsRef<str>> FromIterator<(S, ScanState)> for ScanStates {
    fn from_iter<I: IntoIterator<Item = (S, ScanState)>>(iter: I) -> Self {
        let mut out = ScanStates::new();
        for (name, st) in iter {
            out.push(name.as_ref(), &st);
        }
        out.finish();
        out
    }
}

impl PartialEq for ScanStates {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(size: u64, target: &str) -> ScanState {
        ScanState {
            file_type: if target.is_empty() {
                FileType::File
            } else {
                FileType::Symlink
            },
            deleted: false,
            size,
            permissions: 0o644,
            modified_ns: 7,
            inode: 8,
            ctime_ns: 9,
            symlink_target: target.to_string(),
        }
    }

    #[test]
    fn entries_are_found_by_name_in_any_push_order() {
        let states: ScanStates = [
            ("b/x", st(1, "")),
            ("a", st(2, "../t")),
            ("b", st(3, "")),
            ("é", st(4, "")),
            ("a", st(5, "later")),
        ]
        .into_iter()
        .collect();
        assert_eq!(states.len(), 4);
        assert_eq!(states.names().collect::<Vec<_>>(), ["a", "b", "b/x", "é"]);
        assert_eq!(states.get("a"), Some(st(5, "later")));
        assert_eq!(states.get("b/x"), Some(st(1, "")));
        assert_eq!(states.get("é"), Some(st(4, "")));
        assert_eq!(states.get("c"), None);
        assert_eq!(states.get(""), None);
        assert_eq!(states.position("b"), Some(1));
        assert!(!states.deleted_at(1));
        assert!(states.deleted_at(4));
    }

    #[test]
    fn an_entry_costs_its_name_and_56_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 56);
        let states: ScanStates = (0..1000)
            .map(|i| (format!("d{:02}/f{i:04}", i / 100), st(i, "")))
            .collect();
        assert!(
            states.heap_bytes() <= 1000 * (56 + 9),
            "{}",
            states.heap_bytes()
        );
    }
}
