//! The table of hashed files: one record (size and SHA-256) per regular
//! file of an archive or folder, by normalised member path. A manifest
//! read before the files it lists reserves their places
//! ([`PathTable::reserve`]), so that each path is stored once, whether it
//! is listed first or hashed first (a `SHA256SUMS` at the top of a release
//! lists every file before any is hashed).
//!
//! It is the one structure of a pass that grows with the number of entries
//! and lives until the manifests are checked, so it is laid out compactly:
//! every path is appended to one text arena, every record is a fixed-size
//! slot (48 bytes for a file), and the index is an open-addressing table
//! of 4-byte slot numbers (load at most 1/2), keyed by a randomly seeded
//! SipHash so that a hostile archive cannot choose colliding names. About
//! 60 bytes per file plus its path, against about 200 for a
//! `HashMap<String, _>`.
//!
//! Guarantees:
//! - a later insert of the same path replaces the record in place, as a
//!   later tar entry replaces an earlier one on extraction; slot numbers
//!   ([`PathTable::position`], [`PathTable::place`]) are stable once given,
//!   and a reserved place keeps its number when its file is recorded;
//! - a reserved place is not a file: `len`, `iter`, `get`, `position` and
//!   `at` see only recorded ones;
//! - iteration is in the order places were first given; callers that
//!   print sort;
//! - past four billion places, or 4 GiB of path text, nothing more is
//!   recorded (`None`): the entry limits stop an archive long before.

use std::hash::BuildHasher;

/// What the pass learnt about one regular file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone)]
struct Slot<R> {
    /// Where its path starts in the arena.
    start: u32,
    /// Its path's length, with [`RESERVED`] while nothing is recorded.
    len: u32,
    rec: R,
}

/// The bit of [`Slot::len`] that marks a place reserved, not recorded.
const RESERVED: u32 = 1 << 31;

const EMPTY: u32 = u32::MAX;

/// Records of type `R` by path, in the compact layout above.
#[derive(Clone)]
pub struct PathTable<R> {
    arena: String,
    slots: Vec<Slot<R>>,
    /// Slot numbers, `EMPTY` for a free place; its length is 0 or a power
    /// of two at least twice the number of slots.
    index: Vec<u32>,
    /// How many slots are reserved places.
    reserved: usize,
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
            reserved: 0,
            seed: Default::default(),
        }
    }

    /// How many records (reserved places are not counted).
    pub fn len(&self) -> usize {
        self.slots.len() - self.reserved
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many places, reserved or not: every slot number is below it.
    pub fn places(&self) -> usize {
        self.slots.len()
    }

    fn path_of(&self, slot: &Slot<R>) -> &str {
        let start = slot.start as usize;
        &self.arena[start..start + (slot.len & !RESERVED) as usize]
    }

    fn recorded(&self, n: usize) -> Option<&Slot<R>> {
        self.slots.get(n).filter(|s| s.len & RESERVED == 0)
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

    /// Records `path`, replacing an earlier record of the same path or
    /// filling its reserved place, and gives its slot number (`None` when
    /// refused: see the module's guarantees).
    pub fn insert(&mut self, path: &str, rec: R) -> Option<usize> {
        if let Some(n) = self.place(path) {
            let slot = &mut self.slots[n];
            if slot.len & RESERVED != 0 {
                slot.len &= !RESERVED;
                self.reserved -= 1;
            }
            slot.rec = rec;
            return Some(n);
        }
        self.push(path, rec, 0)
    }

    /// The slot number of `path`, recorded or not: a new place, reserved,
    /// when it has none yet (`None` when refused).
    pub fn reserve(&mut self, path: &str) -> Option<usize>
    where
        R: Default,
    {
        if let Some(n) = self.place(path) {
            return Some(n);
        }
        let n = self.push(path, R::default(), RESERVED)?;
        self.reserved += 1;
        Some(n)
    }

    fn push(&mut self, path: &str, rec: R, flag: u32) -> Option<usize> {
        let len = u32::try_from(path.len())
            .ok()
            .filter(|l| l & RESERVED == 0)?;
        let start = u32::try_from(self.arena.len()).ok()?;
        u32::try_from(self.arena.len() + path.len()).ok()?;
        // EMPTY is never a slot number.
        u32::try_from(self.slots.len() + 1)
            .ok()
            .filter(|&n| n != EMPTY)?;
        if (self.slots.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let (place, _) = self.probe(path);
        self.index[place] = self.slots.len() as u32;
        self.slots.push(Slot {
            start,
            len: len | flag,
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
            let path = self.path_of(slot);
            let mut i = self.seed.hash_one(path.as_bytes()) as usize & mask;
            while self.index[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.index[i] = n as u32;
        }
    }

    /// The slot number of `path`, reserved or recorded.
    pub fn place(&self, path: &str) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        self.probe(path).1
    }

    /// The slot number of the record of `path`, stable for the table's
    /// life.
    pub fn position(&self, path: &str) -> Option<usize> {
        self.place(path).filter(|&n| self.recorded(n).is_some())
    }

    pub fn get(&self, path: &str) -> Option<&R> {
        self.position(path).map(|n| &self.slots[n].rec)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.position(path).is_some()
    }

    /// Path and record of slot `n` (see [`PathTable::position`]); `None`
    /// for a reserved place.
    pub fn at(&self, n: usize) -> Option<(&str, &R)> {
        self.recorded(n).map(|s| (self.path_of(s), &s.rec))
    }

    /// The path of slot `n`, reserved or recorded.
    pub fn path_at(&self, n: usize) -> Option<&str> {
        self.slots.get(n).map(|s| self.path_of(s))
    }

    /// Every record with its slot number, in the order places were given.
    pub fn numbered(&self) -> impl Iterator<Item = (usize, &str, &R)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len & RESERVED == 0)
            .map(|(n, s)| (n, self.path_of(s), &s.rec))
    }

    /// Every record, in the order places were given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &R)> {
        self.numbered().map(|(_, p, r)| (p, r))
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

    /// Reserved places against a model: a map of records and a list of
    /// every path in the order it was first given a place.
    #[test]
    fn reserved_places_are_not_files_until_recorded() {
        let mut t = FileTable::new();
        let mut records: HashMap<String, FileRecord> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for i in 0..6000u64 {
            let p = format!("d{}/f{}", i % 13, i % 2500);
            let n = if i % 3 == 0 {
                records.insert(p.clone(), rec(i));
                t.insert(&p, rec(i))
            } else {
                t.reserve(&p)
            }
            .unwrap();
            if !order.contains(&p) {
                order.push(p.clone());
            }
            assert_eq!(order[n], p, "a path keeps its place");
        }
        assert_eq!((t.len(), t.places()), (records.len(), order.len()));
        assert!(t.places() > t.len(), "some places stayed reserved");
        for (n, p) in order.iter().enumerate() {
            assert_eq!(t.path_at(n), Some(p.as_str()));
            assert_eq!(t.place(p), Some(n));
            let r = records.get(p);
            assert_eq!(t.get(p), r, "{p}");
            assert_eq!(t.contains_key(p), r.is_some());
            assert_eq!(t.position(p), r.map(|_| n));
            assert_eq!(t.at(n), r.map(|r| (p.as_str(), r)));
        }
        let listed: Vec<(usize, &str)> = t.numbered().map(|(n, p, _)| (n, p)).collect();
        let want: Vec<(usize, &str)> = order
            .iter()
            .enumerate()
            .filter(|(_, p)| records.contains_key(*p))
            .map(|(n, p)| (n, p.as_str()))
            .collect();
        assert_eq!(listed, want, "records in the order places were given");
        assert_eq!(t.iter().count(), t.len());
        // Reserving a recorded path changes nothing.
        let (p, r) = records.iter().next().unwrap();
        let n = t.position(p).unwrap();
        assert_eq!(t.reserve(p), Some(n));
        assert_eq!(t.get(p), Some(r));
        assert!(t.path_at(t.places()).is_none());
    }

    #[test]
    fn empty_table_finds_nothing() {
        let t = FileTable::default();
        assert!(t.is_empty());
        assert!(t.get("a").is_none());
        assert!(t.at(0).is_none());
    }
}
