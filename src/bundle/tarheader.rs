//! The tar header format as the real extractors read it: header blocks,
//! checksums, numeric fields, PAX records, GNU long names and sparse maps,
//! and the name each of GNU tar 1.34, bsdtar 3.6 (libarchive) and Python
//! 3.11's `tarfile` gives an entry.
//!
//! Guarantees:
//! - pure functions over bytes already read: nothing here does I/O, so the
//!   walk ([`super::tarstream`]) decides what is read and when;
//! - a malformed record is an error naming its offset, never skipped: the
//!   extractors disagree on what to do with one (GNU tar and bsdtar refuse
//!   it, Python applies what it could parse), so no reading of it is safe;
//! - every name source a reader may use is kept, so that the safety rules
//!   judge each reading ([`Readings`]), not one guess.
//!
//! How each reader names an entry (checked against the real tools by
//! `scripts/tardiff.py`):
//! - **GNU tar** reads the last GNU long name (`L`) and long link (`K`) or
//!   else the ustar fields (with the `prefix` field only under the POSIX
//!   magic `ustar\0`), then applies PAX global (`g`) records, then the
//!   records of the *last* local PAX header (`x`, Solaris `X`; an earlier
//!   one is replaced whole): a PAX `path` always wins over a long name;
//! - **bsdtar 3.6** does the same, but ignores global headers, takes the
//!   `prefix` field under any `ustar` magic but GNU's, and lets
//!   `GNU.sparse.name` win over `path`;
//! - **Python's tarfile** reads each extension header, then the rest of the
//!   chain, then patches the entry that came back: the *first* extension
//!   header in the stream has the last word. It merges every global header
//!   into one table applied to every entry (GNU tar keeps only the last
//!   global header), keeps a NUL inside a PAX value, and reads the `prefix`
//!   field whatever the magic.
//!
//! Every reader cuts long names, long links and PAX values at a NUL byte
//! except Python for PAX values; a cut name is reported as malformed.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// A header block.
pub type Header = [u8; BLOCK];

/// Whether the block is all zeros (an end-of-archive marker).
pub fn is_zero(h: &[u8]) -> bool {
    h.iter().all(|&b| b == 0)
}

/// The header's stored checksum field, read as GNU tar and Python read it:
/// leading spaces, octal digits, then a space, a NUL or the field's end.
fn stored_checksum(h: &[u8]) -> Option<u32> {
    let f = &h[148..156];
    let f = &f[f.iter().take_while(|&&b| b == b' ').count()..];
    let digits = f.iter().take_while(|b| (b'0'..=b'7').contains(b)).count();
    if digits == 0 || f[digits..].iter().any(|&b| b != b' ' && b != 0) {
        return None;
    }
    f[..digits].iter().try_fold(0u32, |a, &b| {
        a.checked_mul(8)?.checked_add((b - b'0') as u32)
    })
}

/// Whether the header's checksum holds, as POSIX allows it: the unsigned
/// sum of the bytes with the checksum field counted as spaces, or the signed
/// sum some old writers (Sun tar) used; the field space- or NUL-terminated,
/// space-padded in front or not (v7 writers).
pub fn checksum_ok(h: &[u8]) -> bool {
    let Some(stored) = stored_checksum(h) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in h[..BLOCK].iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += b as u32;
        signed += b as i8 as i32;
    }
    stored == unsigned || stored as i32 == signed
}

/// A numeric field: octal digits between optional spaces and NULs, or
/// base-256 (first byte 0x80 for positive values). `None` when it is
/// neither, or negative, or over 64 bits.
pub fn numeric(f: &[u8]) -> Option<u64> {
    if f.first() == Some(&0x80) {
        // Base-256, positive: big-endian in the remaining bytes.
        return f[1..].iter().try_fold(0u64, |a, &b| {
            if a >> 56 != 0 {
                None
            } else {
                Some((a << 8) | b as u64)
            }
        });
    }
    if f.first().is_some_and(|&b| b & 0x80 != 0) {
        return None;
    }
    let f = &f[f.iter().take_while(|&&b| b == b' ').count()..];
    let digits = f.iter().take_while(|b| (b'0'..=b'7').contains(b)).count();
    if f[digits..].iter().any(|&b| b != b' ' && b != 0) {
        return None;
    }
    f[..digits].iter().try_fold(0u64, |a, &b| {
        a.checked_mul(8)?.checked_add((b - b'0') as u64)
    })
}

/// The bytes up to the first NUL (C's view of a string).
pub fn nul_cut(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// The magic the header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// `ustar\0` `00`: POSIX ustar or PAX.
    Posix,
    /// `ustar  \0`: GNU and old GNU.
    Gnu,
    /// `ustar` followed by anything else (libarchive still takes it as ustar).
    OtherUstar,
    /// No magic: v7.
    V7,
}

pub fn magic(h: &[u8]) -> Magic {
    if &h[257..265] == b"ustar  \0" {
        Magic::Gnu
    } else if &h[257..263] == b"ustar\0" {
        Magic::Posix
    } else if &h[257..262] == b"ustar" {
        Magic::OtherUstar
    } else {
        Magic::V7
    }
}

/// One `key=value` record of a PAX header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxRecord {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A PAX record that breaks the format (POSIX.1-2008 `pax`, "extended
/// header"): `at` is its offset inside the header's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaxError {
    pub at: usize,
    pub why: String,
    /// The records before the bad one, which GNU tar and bsdtar still apply.
    pub parsed: Vec<PaxRecord>,
}

/// Keys whose value is a name, which POSIX requires in UTF-8 unless a
/// `hdrcharset=BINARY` record says otherwise, and which no reader can hold
/// with a NUL inside.
fn is_name_key(key: &[u8]) -> bool {
    matches!(key, b"path" | b"linkpath" | b"uname" | b"gname") || key == b"GNU.sparse.name"
}

/// Whether a record whose key POSIX gives a numeric value holds one: sizes
/// and ids are decimal integers, times decimal with an optional sign and
/// fraction. GNU tar and Go refuse anything else; what Python makes of it
/// differs, so a malformed number is malformed metadata.
fn numeric_value_ok(key: &[u8], value: &[u8]) -> bool {
    let digits = |v: &[u8]| !v.is_empty() && v.iter().all(u8::is_ascii_digit);
    match key {
        b"size" | b"uid" | b"gid" => digits(value),
        b"mtime" | b"atime" | b"ctime" => {
            let v = value.strip_prefix(b"-").unwrap_or(value);
            match v.iter().position(|&b| b == b'.') {
                Some(dot) => digits(&v[..dot]) && v[dot + 1..].iter().all(u8::is_ascii_digit),
                None => digits(v),
            }
        }
        _ => true,
    }
}

/// Parses the records of a PAX header strictly: `LEN KEY=VALUE\n`, the
/// length in decimal counting the whole record, a non-empty key with no NUL
/// and no `=`. NUL bytes after the last record (block padding some writers
/// count in the size) are accepted; anything else is an error. A NUL inside
/// a name value, or a name that is not UTF-8 without `hdrcharset=BINARY`,
/// is an error too: readers cut or reject such names differently.
pub fn parse_pax(data: &[u8]) -> Result<Vec<PaxRecord>, PaxError> {
    let mut out = Vec::new();
    let mut soft: Option<(usize, String)> = None;
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if is_zero(rest) {
            break;
        }
        let err = |why: String| PaxError {
            at: pos,
            why,
            parsed: out.clone(),
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err("a record does not start with its length".into()));
        }
        if digits > 12 {
            return Err(err("a record's length has more than 12 digits".into()));
        }
        let len: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("unreadable record length".into()))?;
        if rest.get(digits) != Some(&b' ') {
            return Err(err("no space after the record's length".into()));
        }
        if len < digits + 4 || len > rest.len() {
            return Err(err(format!(
                "record length {len} does not fit the {} bytes left",
                rest.len()
            )));
        }
        let record = &rest[digits + 1..len];
        if record.last() != Some(&b'\n') {
            return Err(err(format!(
                "the record of length {len} does not end with a newline"
            )));
        }
        let record = &record[..record.len() - 1];
        let Some(eq) = record.iter().position(|&b| b == b'=') else {
            return Err(err("a record has no `=`".into()));
        };
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() {
            return Err(err("a record has an empty key".into()));
        }
        if key.contains(&0) {
            return Err(err(format!(
                "the key {:?} holds a NUL byte",
                String::from_utf8_lossy(nul_cut(key))
            )));
        }
        // A bad value breaks only its own record: the readers go on with
        // the next ones (GNU tar and bsdtar cut a name at its NUL), so the
        // walk keeps them all and reports the first such record.
        if soft.is_none() && is_name_key(key) && value.contains(&0) {
            soft = Some((
                pos,
                format!(
                    "the {} value holds a NUL byte at position {}: GNU tar and bsdtar cut the name there, Python keeps it whole",
                    String::from_utf8_lossy(key),
                    value.iter().position(|&b| b == 0).unwrap_or(0)
                ),
            ));
        }
        if soft.is_none() && !numeric_value_ok(key, value) {
            soft = Some((
                pos,
                format!(
                    "the {} value {:?} is not a number",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                ),
            ));
        }
        out.push(PaxRecord {
            key: key.to_vec(),
            value: value.to_vec(),
        });
        pos += len;
    }
    if let Some((at, why)) = soft {
        return Err(PaxError {
            at,
            why,
            parsed: out,
        });
    }
    let binary = out
        .iter()
        .any(|r| r.key == b"hdrcharset" && r.value == b"BINARY");
    if !binary {
        if let Some(r) = out
            .iter()
            .find(|r| is_name_key(&r.key) && std::str::from_utf8(&r.value).is_err())
        {
            return Err(PaxError {
                at: 0,
                why: format!(
                    "the {} value is not UTF-8, which POSIX requires without hdrcharset=BINARY",
                    String::from_utf8_lossy(&r.key)
                ),
                parsed: out.clone(),
            });
        }
    }
    Ok(out)
}

/// The records Python's tarfile takes from a PAX header [`parse_pax`]
/// refuses: it matches `LEN KEY=` from the start and takes the value up to
/// the record's declared end, stopping at the first record that does not
/// match. The walk judges these names too, so that a malformed header
/// cannot hide a name from the safety rules.
pub fn parse_pax_lenient(data: &[u8]) -> Vec<PaxRecord> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 12 || rest.get(digits) != Some(&b' ') {
            break;
        }
        let Some(eq) = rest[digits + 1..].iter().position(|&b| b == b'=') else {
            break;
        };
        if eq == 0 {
            break;
        }
        let len: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if len == 0 {
            break;
        }
        let key_end = digits + 1 + eq;
        let value_end = (len - 1).min(rest.len()).max(key_end + 1);
        out.push(PaxRecord {
            key: rest[digits + 1..key_end].to_vec(),
            value: rest[(key_end + 1).min(value_end)..value_end].to_vec(),
        });
        pos += len;
    }
    out
}

/// The last value of `key` among the records.
pub fn pax_get<'a>(records: &'a [PaxRecord], key: &str) -> Option<&'a [u8]> {
    records
        .iter()
        .rev()
        .find(|r| r.key == key.as_bytes())
        .map(|r| r.value.as_slice())
}

/// The PAX global records in force, as each reader keeps them: GNU tar
/// keeps only the last global header, and of a key written twice in it the
/// first value; Python merges every global header into one table, a later
/// value replacing an earlier one; bsdtar ignores them.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub gnu: Vec<PaxRecord>,
    pub python: Vec<PaxRecord>,
}

impl Globals {
    /// Takes in the records of one more global header.
    pub fn add(&mut self, records: &[PaxRecord]) {
        self.gnu.clear();
        for r in records {
            if !self.gnu.iter().any(|g| g.key == r.key) {
                self.gnu.push(r.clone());
            }
            match self.python.iter_mut().find(|g| g.key == r.key) {
                Some(g) => g.value = r.value.clone(),
                None => self.python.push(r.clone()),
            }
        }
    }
}

/// An extension header that applies to the entry after it.
#[derive(Debug, Clone)]
pub enum Extension {
    /// PAX local header (`x`), or Solaris/star (`X`), which every reader
    /// treats the same way.
    Pax(Vec<PaxRecord>),
    /// GNU long name (`L`): the raw data, NUL-cut by every reader.
    LongName(Vec<u8>),
    /// GNU long link name (`K`).
    LongLink(Vec<u8>),
}

/// Who reads a name this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    GnuTar,
    Bsdtar,
    Python,
}

impl Reader {
    pub const ALL: [Reader; 3] = [Reader::GnuTar, Reader::Bsdtar, Reader::Python];

    pub fn key(self) -> &'static str {
        match self {
            Reader::GnuTar => "gnu_tar",
            Reader::Bsdtar => "bsdtar",
            Reader::Python => "python_tarfile",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Reader::GnuTar => "GNU tar",
            Reader::Bsdtar => "bsdtar",
            Reader::Python => "Python's tarfile",
        }
    }
}

/// An entry's path and link name as one reader gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
}

/// The ustar name of a header, with the prefix field when the reader takes
/// it. Python joins with `/` whatever the prefix ends with; the others too,
/// up to a doubled slash, which normalisation removes.
fn ustar_name(h: &Header, with_prefix: bool) -> Vec<u8> {
    let name = nul_cut(&h[..100]);
    let prefix = nul_cut(&h[345..500]);
    if with_prefix && !prefix.is_empty() {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(name);
        p
    } else {
        name.to_vec()
    }
}

fn is_gnu_type(t: u8) -> bool {
    matches!(t, b'L' | b'K' | b'S')
}

/// Applies one PAX header's records to a reading, in the order they come
/// (a later record of the same key wins). `GNU.sparse.name` names the
/// entry as `path` does; `cut` says whether values are cut at a NUL.
fn apply_pax(r: &mut Reading, records: &[PaxRecord], cut: bool) {
    let v = |value: &[u8]| {
        if cut {
            nul_cut(value).to_vec()
        } else {
            value.to_vec()
        }
    };
    for rec in records {
        match rec.key.as_slice() {
            b"path" | b"GNU.sparse.name" => r.path = v(&rec.value),
            b"linkpath" => r.link = v(&rec.value),
            _ => {}
        }
    }
}

/// libarchive applies a header's `GNU.sparse.name` after its `path`,
/// whatever their order.
fn apply_pax_libarchive(r: &mut Reading, records: &[PaxRecord]) {
    if let Some(p) = pax_get(records, "path") {
        r.path = nul_cut(p).to_vec();
    }
    if let Some(p) = pax_get(records, "GNU.sparse.name") {
        r.path = nul_cut(p).to_vec();
    }
    if let Some(l) = pax_get(records, "linkpath") {
        r.link = nul_cut(l).to_vec();
    }
}

/// The reading of one reader, from the entry's header, the extension
/// headers before it (in stream order) and the global PAX records in force.
pub fn read_as(reader: Reader, h: &Header, exts: &[Extension], globals: &Globals) -> Reading {
    let t = h[156];
    let m = magic(h);
    let link = nul_cut(&h[157..257]).to_vec();
    match reader {
        // GNU tar and bsdtar: the last long name and long link replace the
        // header's; only the last local PAX header counts (an earlier one is
        // replaced whole) and its records are applied last, so a PAX `path`
        // wins over any long name. GNU tar applies the global records before
        // the local ones; bsdtar ignores them.
        Reader::GnuTar | Reader::Bsdtar => {
            let prefix = match reader {
                Reader::GnuTar => m == Magic::Posix,
                _ => matches!(m, Magic::Posix | Magic::OtherUstar),
            };
            let mut r = Reading {
                path: ustar_name(h, prefix),
                link,
            };
            let mut last_pax = None;
            for e in exts {
                match e {
                    Extension::LongName(n) => r.path = nul_cut(n).to_vec(),
                    Extension::LongLink(n) => r.link = nul_cut(n).to_vec(),
                    Extension::Pax(recs) => last_pax = Some(recs),
                }
            }
            if reader == Reader::GnuTar {
                let globals = &globals.gnu[..];
                apply_pax(&mut r, globals, true);
                if let Some(recs) = last_pax {
                    apply_pax(&mut r, recs, true);
                }
                // GNU tar keeps `GNU.sparse.name` apart and names the entry
                // by it last, from the local header or else a global one.
                let local = last_pax.and_then(|recs| pax_get(recs, "GNU.sparse.name"));
                if let Some(n) = local.or_else(|| pax_get(globals, "GNU.sparse.name")) {
                    r.path = nul_cut(n).to_vec();
                }
            } else if let Some(recs) = last_pax {
                apply_pax_libarchive(&mut r, recs);
            }
            r
        }
        // Python reads each extension header, then the rest of the chain,
        // then patches what came back: the first header in the stream has
        // the last word. Global records apply to every entry, under the
        // chain; a local header's records apply in their own order.
        Reader::Python => {
            let globals = &globals.python[..];
            let mut r = Reading {
                path: ustar_name(h, !is_gnu_type(t)),
                link,
            };
            apply_pax(&mut r, globals, false);
            for e in exts.iter().rev() {
                match e {
                    Extension::LongName(n) => r.path = nul_cut(n).to_vec(),
                    Extension::LongLink(n) => r.link = nul_cut(n).to_vec(),
                    Extension::Pax(recs) => apply_pax(&mut r, recs, false),
                }
            }
            r
        }
    }
}

/// Every reader's reading of one entry.
#[derive(Debug, Clone)]
pub struct Readings {
    /// In the order of [`Reader::ALL`].
    pub by: [Reading; 3],
}

impl Readings {
    pub fn of(h: &Header, exts: &[Extension], globals: &Globals) -> Readings {
        Readings {
            by: Reader::ALL.map(|r| read_as(r, h, exts, globals)),
        }
    }

    /// Forgets the link names: an entry that is not a link has none to
    /// extract, whatever its header's field holds.
    pub fn without_links(mut self) -> Readings {
        for r in &mut self.by {
            r.link.clear();
        }
        self
    }

    /// GNU tar's reading: the name the entry is recorded under.
    pub fn primary(&self) -> &Reading {
        &self.by[0]
    }

    /// Whether every reader gives the same path and link name.
    pub fn agree(&self) -> bool {
        self.by.iter().all(|r| r == &self.by[0])
    }

    /// The readings that differ from the primary one, each with the readers
    /// that use it.
    pub fn others(&self) -> Vec<(Vec<Reader>, &Reading)> {
        let mut out: Vec<(Vec<Reader>, &Reading)> = Vec::new();
        for (i, r) in self.by.iter().enumerate().skip(1) {
            if r == self.primary() {
                continue;
            }
            match out.iter_mut().find(|(_, o)| *o == r) {
                Some((who, _)) => who.push(Reader::ALL[i]),
                None => out.push((vec![Reader::ALL[i]], r)),
            }
        }
        out
    }
}

/// One data segment of a sparse file: `len` bytes at logical `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
}

/// A sparse file's map: its data segments in order and its logical size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseMap {
    pub segments: Vec<Segment>,
    pub real_size: u64,
}

impl SparseMap {
    /// Checks the map against the bytes stored: segments in increasing,
    /// non-overlapping order inside the logical size, and their lengths
    /// adding up to the stored data.
    pub fn validate(&self, stored: u64) -> Result<(), String> {
        let mut end = 0u64;
        let mut total = 0u64;
        for s in &self.segments {
            if s.offset < end {
                return Err(format!(
                    "sparse segment at offset {} overlaps or precedes the one before it (ending at {end})",
                    s.offset
                ));
            }
            end = s
                .offset
                .checked_add(s.len)
                .ok_or_else(|| "a sparse segment ends past 2^64".to_string())?;
            total = total.saturating_add(s.len);
        }
        if end > self.real_size {
            return Err(format!(
                "sparse segments reach offset {end}, past the file's size {}",
                self.real_size
            ));
        }
        if total != stored {
            return Err(format!(
                "the sparse map lists {total} bytes of data but the entry stores {stored}"
            ));
        }
        Ok(())
    }
}

/// Reads old-GNU sparse entries (`offset`, `numbytes` pairs of 12-byte
/// numeric fields) from a header area, stopping at the first empty one.
pub fn gnu_sparse_entries(area: &[u8], out: &mut Vec<Segment>) -> Result<(), String> {
    for pair in area.chunks_exact(24) {
        if pair[0] == 0 {
            break;
        }
        let offset = numeric(&pair[..12]).ok_or("unreadable sparse offset")?;
        let len = numeric(&pair[12..]).ok_or("unreadable sparse length")?;
        out.push(Segment { offset, len });
    }
    Ok(())
}

fn decimal(v: &[u8], what: &str) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "{what} {:?} is not a decimal number",
                String::from_utf8_lossy(v)
            )
        })
}

/// Which PAX sparse format a set of local records announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaxSparse {
    /// 0.0: `GNU.sparse.offset`/`numbytes` record pairs.
    V00,
    /// 0.1: one `GNU.sparse.map` record.
    V01,
    /// 1.0: the map is at the start of the entry's data.
    V10,
}

/// Reads the sparse format and map (for 0.0 and 0.1) of a PAX header.
/// `Ok(None)` when the records say nothing about sparseness; an error when
/// they are contradictory (two formats, a map that does not parse).
pub fn pax_sparse(records: &[PaxRecord]) -> Result<Option<(PaxSparse, Option<SparseMap>)>, String> {
    let has = |k: &str| records.iter().any(|r| r.key == k.as_bytes());
    let v00 = has("GNU.sparse.offset") || has("GNU.sparse.numbytes");
    let v01 = has("GNU.sparse.map");
    let v10 = pax_get(records, "GNU.sparse.major").is_some();
    let formats = [v00, v01, v10].iter().filter(|&&b| b).count();
    if formats == 0 {
        if has("GNU.sparse.size") || has("GNU.sparse.realsize") || has("GNU.sparse.numblocks") {
            return Err("GNU.sparse size records without a sparse map".into());
        }
        return Ok(None);
    }
    if formats > 1 {
        return Err("the PAX header mixes GNU sparse formats 0.0, 0.1 and 1.0".into());
    }
    if v10 {
        let major = pax_get(records, "GNU.sparse.major").unwrap_or_default();
        let minor = pax_get(records, "GNU.sparse.minor").unwrap_or(b"0");
        if major != b"1" || minor != b"0" {
            return Err(format!(
                "unknown GNU sparse format {}.{}",
                String::from_utf8_lossy(major),
                String::from_utf8_lossy(minor)
            ));
        }
        return Ok(Some((PaxSparse::V10, None)));
    }
    let real_size = pax_get(records, "GNU.sparse.realsize")
        .or_else(|| pax_get(records, "GNU.sparse.size"))
        .ok_or_else(|| "a GNU sparse map without GNU.sparse.size".to_string())
        .and_then(|v| decimal(v, "GNU.sparse.size"))?;
    let mut segments = Vec::new();
    if v01 {
        let map = pax_get(records, "GNU.sparse.map").unwrap_or_default();
        let numbers: Vec<u64> = if map.is_empty() {
            Vec::new()
        } else {
            map.split(|&b| b == b',')
                .map(|n| decimal(n, "a GNU.sparse.map number"))
                .collect::<Result<_, _>>()?
        };
        if numbers.len() % 2 != 0 {
            return Err("GNU.sparse.map has an odd count of numbers".into());
        }
        for p in numbers.chunks_exact(2) {
            segments.push(Segment {
                offset: p[0],
                len: p[1],
            });
        }
    } else {
        let mut offset = None;
        for r in records {
            match r.key.as_slice() {
                b"GNU.sparse.offset" => {
                    if offset.is_some() {
                        return Err("two GNU.sparse.offset records in a row".into());
                    }
                    offset = Some(decimal(&r.value, "GNU.sparse.offset")?);
                }
                b"GNU.sparse.numbytes" => {
                    let o = offset
                        .take()
                        .ok_or("GNU.sparse.numbytes without a GNU.sparse.offset before it")?;
                    segments.push(Segment {
                        offset: o,
                        len: decimal(&r.value, "GNU.sparse.numbytes")?,
                    });
                }
                _ => {}
            }
        }
        if offset.is_some() {
            return Err("a GNU.sparse.offset without its numbytes".into());
        }
    }
    if let Some(n) = pax_get(records, "GNU.sparse.numblocks") {
        let n = decimal(n, "GNU.sparse.numblocks")?;
        if n != segments.len() as u64 {
            return Err(format!(
                "GNU.sparse.numblocks says {n} but the map has {} segments",
                segments.len()
            ));
        }
    }
    let format = if v01 { PaxSparse::V01 } else { PaxSparse::V00 };
    Ok(Some((
        format,
        Some(SparseMap {
            segments,
            real_size,
        }),
    )))
}

/// Parses the sparse map at the start of a 1.0 sparse entry's data: the
/// segment count, then offset and length, each a decimal number on its own
/// line, padded with anything up to the next block boundary. `Ok(None)`
/// while `data` does not hold the whole map yet.
pub fn sparse_10_map(data: &[u8], real_size: u64) -> Result<Option<(SparseMap, usize)>, String> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut want = None;
    while want.is_none_or(|w| lines.len() < w) {
        let Some(nl) = data[start..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let n = decimal(&data[start..start + nl], "a GNU sparse 1.0 map number")?;
        start += nl + 1;
        if want.is_none() {
            if n > (super::tarstream::MAX_EXTENSION_BYTES / 4) {
                return Err(format!("a GNU sparse 1.0 map of {n} segments"));
            }
            want = Some(2 * n as usize);
        } else {
            lines.push(n);
        }
    }
    let segments = lines
        .chunks_exact(2)
        .map(|p| Segment {
            offset: p[0],
            len: p[1],
        })
        .collect();
    let used = start.div_ceil(BLOCK) * BLOCK;
    Ok(Some((
        SparseMap {
            segments,
            real_size,
        },
        used,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &[u8], t: u8, magic: &[u8]) -> Header {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        h[156] = t;
        h[257..257 + magic.len()].copy_from_slice(magic);
        h
    }

    fn set_checksum(h: &mut Header, field: &[u8; 8], signed: bool) {
        h[148..156].copy_from_slice(b"        ");
        let sum: i64 = if signed {
            h.iter().map(|&b| b as i8 as i64).sum()
        } else {
            h.iter().map(|&b| b as i64).sum()
        };
        let text = format!("{:o}", sum);
        let mut f = *field;
        // The template says where the digits go: '#' marks them.
        let slots: Vec<usize> = (0..8).filter(|&i| f[i] == b'#').collect();
        let text = format!("{:0>width$}", text, width = slots.len());
        for (slot, d) in slots.iter().zip(text.bytes()) {
            f[*slot] = d;
        }
        h[148..156].copy_from_slice(&f);
    }

    #[test]
    fn checksum_forms_posix_and_old_writers_use() {
        for (field, signed) in [
            (b"######\0 ", false), // GNU tar
            (b"####### ", false),  // no NUL
            (b"  ####\0 ", false), // v7, space-padded in front
            (b"#######\0", false),
            (b"######\0 ", true), // signed sum, high bytes in the name
        ] {
            let mut h = header("caf\u{e9}-\u{1f600}".as_bytes(), b'0', b"ustar\x0000");
            set_checksum(&mut h, field, signed);
            assert!(
                checksum_ok(&h),
                "{:?} signed={signed}",
                String::from_utf8_lossy(field)
            );
            h[0] ^= 1;
            assert!(!checksum_ok(&h));
        }
        let mut h = header(b"a", b'0', b"");
        h[148..156].copy_from_slice(b"12x4\0   ");
        assert!(!checksum_ok(&h));
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(b"   644 \0"), Some(0o644));
        assert_eq!(numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(numeric(&[0xff; 12]), None);
        assert_eq!(numeric(b"12a\0"), None);
        assert_eq!(numeric(b"9\0"), None);
    }

    #[test]
    fn pax_records_are_parsed_strictly() {
        let ok = parse_pax(b"12 path=a/b\n13 mtime=1.5\n").unwrap();
        assert_eq!(pax_get(&ok, "path"), Some(&b"a/b"[..]));
        assert_eq!(parse_pax(b"12 path=a/b\n\0\0\0").unwrap().len(), 1);
        for (bad, why) in [
            (&b"14 path=a/b\n"[..], "does not fit"),
            (b"11 path=a/b\n", "newline"),
            (b"x path=a\n", "length"),
            (b"9 =value\n", "empty key"),
            (b"11 path-ab\n", "no `=`"),
            (b"17 SCHILY.x\0yz=1\n", "NUL"),
            (b"17 linkpath=..\0x\n", "NUL byte at position 2"),
            (b"10 path=\xff\n", "UTF-8"),
            (b"3 a=\n", "does not fit"),
            (b"12 mtime=1a\n", "not a number"),
            (b"8 size=\n", "not a number"),
        ] {
            let e = parse_pax(bad).unwrap_err();
            assert!(
                e.why.contains(why),
                "{:?}: {}",
                String::from_utf8_lossy(bad),
                e.why
            );
        }
        assert!(parse_pax(b"21 hdrcharset=BINARY\n10 path=\xff\n").is_ok());
    }

    #[test]
    fn readers_disagree_where_the_real_tools_do() {
        let h = header(b"safe", b'0', b"ustar\x0000");
        let pax = |p: &[u8]| {
            Extension::Pax(vec![PaxRecord {
                key: b"path".to_vec(),
                value: p.to_vec(),
            }])
        };
        // PAX path then a GNU long name: every reader takes the PAX path.
        let none = Globals::default();
        let r = Readings::of(
            &h,
            &[pax(b"../x"), Extension::LongName(b"ln\0".to_vec())],
            &none,
        );
        assert!(r.agree(), "{r:?}");
        assert_eq!(r.primary().path, b"../x");
        // The other way round, Python takes the long name.
        let r = Readings::of(
            &h,
            &[Extension::LongName(b"ln".to_vec()), pax(b"../x")],
            &none,
        );
        assert_eq!(r.primary().path, b"../x");
        assert_eq!(r.by[1].path, b"../x");
        assert_eq!(r.by[2].path, b"ln");
        // Two PAX headers: GNU tar and bsdtar keep the last, Python the first.
        let r = Readings::of(&h, &[pax(b"one"), pax(b"two")], &none);
        let paths: Vec<&[u8]> = r.by.iter().map(|r| r.path.as_slice()).collect();
        assert_eq!(paths, [&b"two"[..], b"two", b"one"]);
        // Global paths: GNU tar keeps the last global header and the first
        // value of a key in it, Python merges them all, bsdtar ignores them.
        let path = |v: &[u8]| PaxRecord {
            key: b"path".to_vec(),
            value: v.to_vec(),
        };
        let mut g = Globals::default();
        g.add(&[path(b"/etc/x"), path(b"/etc/y")]);
        let r = Readings::of(&h, &[], &g);
        let paths: Vec<&[u8]> = r.by.iter().map(|r| r.path.as_slice()).collect();
        assert_eq!(paths, [&b"/etc/x"[..], b"safe", b"/etc/y"]);
        g.add(&[PaxRecord {
            key: b"comment".to_vec(),
            value: b"c".to_vec(),
        }]);
        let r = Readings::of(&h, &[], &g);
        let paths: Vec<&[u8]> = r.by.iter().map(|r| r.path.as_slice()).collect();
        assert_eq!(paths, [&b"safe"[..], b"safe", b"/etc/y"]);
        // The prefix field: GNU tar only under the POSIX magic, Python always.
        let mut gnu = header(b"n", b'0', b"ustar  \0");
        gnu[345..349].copy_from_slice(b"/etc");
        let r = Readings::of(&gnu, &[], &none);
        assert_eq!(r.primary().path, b"n");
        assert_eq!(r.by[2].path, b"/etc/n");
    }

    #[test]
    fn sparse_maps() {
        let recs = parse_pax(b"23 GNU.sparse.size=100\n28 GNU.sparse.map=0,10,50,5\n").unwrap();
        let (f, map) = pax_sparse(&recs).unwrap().unwrap();
        assert_eq!(f, PaxSparse::V01);
        let map = map.unwrap();
        assert_eq!(map.segments.len(), 2);
        map.validate(15).unwrap();
        assert!(map.validate(16).unwrap_err().contains("stores 16"));
        let recs = parse_pax(
            b"23 GNU.sparse.size=100\n23 GNU.sparse.offset=0\n26 GNU.sparse.numbytes=10\n",
        )
        .unwrap();
        let (f, map) = pax_sparse(&recs).unwrap().unwrap();
        assert_eq!((f, map.unwrap().segments.len()), (PaxSparse::V00, 1));
        let overlap = SparseMap {
            segments: vec![
                Segment { offset: 0, len: 10 },
                Segment { offset: 5, len: 1 },
            ],
            real_size: 20,
        };
        assert!(overlap.validate(11).unwrap_err().contains("overlaps"));
        let mut data = b"2\n0\n10\n50\n5\n".to_vec();
        assert_eq!(sparse_10_map(&data[..5], 100).unwrap(), None);
        data.resize(600, 0);
        let (map, used) = sparse_10_map(&data, 100).unwrap().unwrap();
        assert_eq!((map.segments.len(), used), (2, 512));
        assert!(pax_sparse(&parse_pax(b"23 GNU.sparse.size=100\n").unwrap()).is_err());
    }
}
