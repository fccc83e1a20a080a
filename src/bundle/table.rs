//! The table of hashed files: one record (size and SHA-256) per regular
//! file of an archive or folder, by normalised member path. The same
//! layout ([`PathTable`]) keeps a manifest's listed paths that were not
//! hashed yet when it was read (records of nothing).
//!
//! It is the one structure of a pass that grows with the number of entries
//! and lives until the manifests are checked, so it is laid out compactly:
//! every path is appended to one text arena, every record is a fixed-size
//! slot, and the index is an open-addressing table of 4-byte slot numbers
//! (load at most 1/2), keyed by a randomly seeded SipHash so that a hostile
//! archive cannot choose colliding names. About 70 bytes per file plus its
//! path, against about 200 for a `HashMap<String, _>`.
//!
//! Guarantees:
//! - a later insert of the same path replaces the record in place, as a
//!   later tar entry replaces an earlier one on extraction; slot numbers
//!   ([`FileTable::position`]) are stable once given;
//! - iteration is in first-insertion order; callers that print sort.

use std::hash::BuildHasher;

/// What the pass learnt about one regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone)]
struct Slot<R> {
    start: usize,
    len: u32,
    rec: R,
}

const EMPTY: u32 = u32::MAX;

/// Records of type `R` by path, in the compact layout above.
#[derive(Clone)]
pub struct PathTable<R> {
    arena: String,
    slots: Vec<Slot<R>>,
    /// Slot numbers, `EMPTY` for a free place; its length is 0 or a power
    /// of two at least twice the number of slots.
    index: Vec<u32>,
    seed: std::collections::hash_map::RandomState,
}

/// The files of a pass: a record each.
pub type FileTable = PathTable<FileRecord>;

impl<R> Default for PathTable<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: std::fmt::Debug> std::fmt::Debug for PathTable<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<R> PathTable<R> {
    pub fn new() -> Self {
        PathTable {
            arena: String::new(),
            slots: Vec::new(),
            index: Vec::new(),
            seed: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn path_of(&self, slot: &Slot<R>) -> &str {
        &self.arena[slot.start..slot.start + slot.len as usize]
    }

    /// The place of `path` in the index: its slot number, or the free
    /// place where it would go.
    fn probe(&self, path: &str) -> (usize, Option<usize>) {
        let mask = self.index.len() - 1;
        let mut i = self.seed.hash_one(path.as_bytes()) as usize & mask;
        loop {
            match self.index[i] {
                EMPTY => return (i, None),
                n if self.path_of(&self.slots[n as usize]) == path => return (i, Some(n as usize)),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Records `path`, replacing an earlier record of the same path, and
    /// gives its slot number (`None` past four billion slots: refused).
    pub fn insert(&mut self, path: &str, rec: R) -> Option<usize> {
        if !self.index.is_empty() {
            if let (_, Some(n)) = self.probe(path) {
                self.slots[n].rec = rec;
                return Some(n);
            }
        }
        // Slot numbers are u32 and a path's length too: four billion files
        // would need hundreds of GiB here first, and the entry limits stop
        // an archive long before. Refusing the record keeps this total.
        let (Ok(_), Ok(len)) = (
            u32::try_from(self.slots.len() + 1),
            u32::try_from(path.len()),
        ) else {
            return None;
        };
        if (self.slots.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let (place, _) = self.probe(path);
        self.index[place] = self.slots.len() as u32;
        self.slots.push(Slot {
            start: self.arena.len(),
            len,
            rec,
        });
        self.arena.push_str(path);
        Some(self.slots.len() - 1)
    }

    fn grow(&mut self) {
        let size = (self.index.len() * 2).max(16);
        self.index = vec![EMPTY; size];
        let mask = size - 1;
        for (n, slot) in self.slots.iter().enumerate() {
            let path = &self.arena[slot.start..slot.start + slot.len as usize];
            let mut i = self.seed.hash_one(path.as_bytes()) as usize & mask;
            while self.index[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.index[i] = n as u32;
        }
    }

    /// The slot number of `path`, stable for the table's life.
    pub fn position(&self, path: &str) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        self.probe(path).1
    }

    pub fn get(&self, path: &str) -> Option<&R> {
        self.position(path).map(|n| &self.slots[n].rec)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.position(path).is_some()
    }

    /// Path and record of slot `n` (see [`FileTable::position`]).
    pub fn at(&self, n: usize) -> Option<(&str, &R)> {
        self.slots.get(n).map(|s| (self.path_of(s), &s.rec))
    }

    /// Every file, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &R)> {
        self.slots.iter().map(|s| (self.path_of(s), &s.rec))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(p, _)| p)
    }
}

impl<'a, R> FromIterator<(&'a str, R)> for PathTable<R> {
    fn from_iter<I: IntoIterator<Item = (&'a str, R)>>(iter: I) -> Self {
        let mut t = PathTable::new();
        for (p, r) in iter {
            t.insert(p, r);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rec(n: u64) -> FileRecord {
        FileRecord {
            size: n,
            sha256: [n as u8; 32],
        }
    }

    #[test]
    fn behaves_like_a_map_with_last_insert_winning() {
        let mut t = FileTable::new();
        let mut m: HashMap<String, FileRecord> = HashMap::new();
        // Enough to grow the index several times, with repeats and
        // prefixes of one another.
        for i in 0..5000u64 {
            let p = format!("dir/{}/f{}", i % 37, i % 1900);
            t.insert(&p, rec(i));
            m.insert(p, rec(i));
        }
        t.insert("", rec(7));
        m.insert(String::new(), rec(7));
        assert_eq!(t.len(), m.len());
        for (p, r) in &m {
            assert_eq!(t.get(p), Some(r), "{p}");
            let n = t.position(p).unwrap();
            assert_eq!(t.at(n), Some((p.as_str(), r)));
        }
        assert!(t.get("dir/0/f").is_none());
        assert!(!t.contains_key("dir/0/f19000"));
        assert!(t.index.len() >= 2 * t.len() && t.index.len().is_power_of_two());
        let got: HashMap<String, FileRecord> = t.iter().map(|(p, r)| (p.to_string(), *r)).collect();
        assert_eq!(got, m);
    }

    #[test]
    fn order_is_first_insertion_and_positions_are_stable() {
        let mut t: FileTable = [("b", rec(1)), ("a", rec(2))].into_iter().collect();
        let before = t.position("b").unwrap();
        for i in 0..100 {
            t.insert(&format!("x{i}"), rec(i));
        }
        t.insert("b", rec(9));
        assert_eq!(t.position("b"), Some(before));
        assert_eq!(t.keys().take(3).collect::<Vec<_>>(), ["b", "a", "x0"]);
        assert_eq!(t.get("b").unwrap().size, 9);
    }

    #[test]
    fn insert_gives_the_slot_and_a_repeat_keeps_it() {
        let mut t: PathTable<()> = PathTable::new();
        assert_eq!(t.insert("a", ()), Some(0));
        assert_eq!(t.insert("b", ()), Some(1));
        assert_eq!(t.insert("a", ()), Some(0));
        assert_eq!(t.len(), 2);
        assert_eq!(t.at(1), Some(("b", &())));
    }

    #[test]
    fn empty_table_finds_nothing() {
        let t = FileTable::default();
        assert!(t.is_empty());
        assert!(t.get("a").is_none());
        assert!(t.at(0).is_none());
    }
}
