//! The external-reference scan, for security reviewers: which container
//! images and URLs in the release's text files point outside the perimeter.
//!
//! Guarantees:
//! - text files are scanned as they stream past (release members and
//!   members of nested charts and content bundles); no file is held whole,
//!   and a line is cut at `MAX_LINE` bytes;
//! - the scan runs over whole buffers as they come: a SIMD substring search
//!   (memchr's `memmem`, built once) for each of `://`, `image` and
//!   `repository`, and only the lines where one occurs are looked at line
//!   by line, the lines between them only counted (bytecount's SIMD
//!   count); `scripts/bench-refscan.sh` measures it; the references found
//!   are exactly those of [`scan_line`] applied to every line (the old
//!   per-line scan, kept in the tests, is the oracle);
//! - a line costs no allocation of its own; a reference is classified as
//!   it is found ([`Perimeter::is_internal`] allocates nothing), and only
//!   the external ones the report can still keep are stored, one record
//!   and their bytes in an arena ([`External`]): a file's scan holds at
//!   most a few thousand references, however many it finds, and its
//!   findings are those that keeping them all would have given;
//! - the release's text is scanned on a thread of its own (`walk`'s
//!   `ScanThread`), off the tar reader's thread;
//! - `--no-content` does not scan (see `walk`): the scan reads what the text
//!   says, which is content, not integrity;
//! - every reference is classified from data alone, never by resolving a
//!   name: nothing here touches the network;
//! - a reference inside a template expression (`{{ ... }}`) is skipped: it is
//!   not a host until rendered.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use crossbeam_channel::Sender;
use memchr::memmem;

use crate::finding::{Code, Finding, Status, MAX_FINDINGS_PER_CODE};

/// Longest line examined; the rest of a longer line is skipped.
pub const MAX_LINE: usize = 64 << 10;

/// Which hosts are inside the perimeter.
#[derive(Debug, Clone, Default)]
pub struct Perimeter {
    /// Exact host names (`--allow-host`).
    pub hosts: Vec<String>,
    /// Domains, matching themselves and every sub-domain (`--allow-domain`).
    pub domains: Vec<String>,
    /// `--deny-external`: external references fail instead of warn.
    pub deny_external: bool,
}

/// Names that never reach the internet: reserved or cluster-internal, by
/// their last label (`.cluster.local` is under `.local`); `.home.arpa` is
/// the one of two labels.
fn internal_name(host: &str, last_dot: Option<usize>) -> bool {
    let last = match last_dot {
        Some(i) => &host[i + 1..],
        None => host,
    };
    match last {
        "svc" | "local" | "internal" | "localhost" | "test" | "invalid" | "example" | "lan" => true,
        "arpa" => host.ends_with(".home.arpa"),
        _ => false,
    }
}

impl Perimeter {
    /// Whether `host` (lower case, no port) is inside the perimeter.
    ///
    /// Called for every reference as it is found, so it allocates nothing
    /// and parses as an address only what can be one.
    pub fn is_internal(&self, host: &str) -> bool {
        // ASCII bytes trimmed: the cuts are character boundaries.
        let host = &host[..host.len() - trailing(host.as_bytes(), |c| c == b'.')];
        let bare = &host[leading(host.as_bytes(), |c| c == b'[')..];
        let bare = &bare[..bare.len() - trailing(bare.as_bytes(), |c| c == b']')];
        // The last `.` serves both tests below (a name without one is a
        // single label; the last label is the one that may be reserved).
        let colon = memchr::memchr(b':', bare.as_bytes()).is_some();
        let last_dot = memchr::memrchr(b'.', host.as_bytes());
        let dot = last_dot.is_some();
        // An IPv4 address starts with a digit and an IPv6 one holds a `:`;
        // a name has neither, and parsing it would only fail.
        if bare.as_bytes().first().is_some_and(u8::is_ascii_digit) || colon {
            if let Ok(ip) = bare.parse::<IpAddr>() {
                return is_private(ip);
            }
        }
        if !dot || host == "localhost" {
            return true; // a single label resolves only inside
        }
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return true;
        }
        if self
            .domains
            .iter()
            .any(|d| in_domain(host, d.trim_start_matches('.')))
        {
            return true;
        }
        internal_name(host, last_dot)
    }
}

/// Whether `host` is `domain` or one of its sub-domains, ASCII case aside
/// (as bytes: a name with other characters matches only byte for byte).
fn in_domain(host: &str, domain: &str) -> bool {
    let (h, d) = (host.as_bytes(), domain.as_bytes());
    let Some(cut) = h.len().checked_sub(d.len()) else {
        return false;
    };
    h[cut..].eq_ignore_ascii_case(d) && (cut == 0 || h[cut - 1] == b'.')
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
                // 100.64.0.0/10, carrier-grade NAT, is used inside perimeters too.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Files worth scanning, by name.
pub fn is_text_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    const EXT: &[&str] = &[
        ".yaml",
        ".yml",
        ".json",
        ".sh",
        ".bash",
        ".env",
        ".txt",
        ".conf",
        ".cfg",
        ".ini",
        ".toml",
        ".properties",
        ".tpl",
        ".j2",
        ".py",
        ".md",
        ".xml",
    ];
    EXT.iter().any(|e| name.ends_with(e))
        || name == ".env"
        || name == "dockerfile"
        || name == "containerfile"
        || name == "latest"
}

/// One reference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: &'static str, // "image" or "url"
    pub host: String,
    pub text: String,
}

/// Registry host of an image reference, applying Docker's rule: the first
/// component is a registry only if it has a `.` or `:` or is `localhost`;
/// otherwise the image is on Docker Hub.
pub fn image_host(reference: &str) -> Option<String> {
    image_host_as_written(reference).map(str::to_ascii_lowercase)
}

/// [`image_host`] as the reference spells it (not yet in lower case).
fn image_host_as_written(reference: &str) -> Option<&str> {
    let r = trim_quotes(trim(reference));
    let b = r.as_bytes();
    // Bytes: a non-ASCII character's bytes are all non-ASCII, refused as
    // the character would be; so are a template's `{{`, a space and a
    // `$` variable.
    const fn table() -> [bool; 256] {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = (c as u8).is_ascii_alphanumeric();
            c += 1;
        }
        let extra = b"._-/:@";
        let mut i = 0;
        while i < extra.len() {
            t[extra[i] as usize] = true;
            i += 1;
        }
        t
    }
    const ALLOWED: [bool; 256] = table();
    // Every byte tested, without a branch a byte: a reference is short,
    // and almost every one passes.
    let allowed = b.iter().fold(true, |ok, &c| ok & ALLOWED[c as usize]);
    if !allowed || b.is_empty() || b[0] == b'/' || b[b.len() - 1] == b':' {
        return None;
    }
    // The first component (before a `/`) is a registry if it has a `.`
    // or a `:`, or is `localhost`; its host ends at the first `:`.
    let Some(slash) = memchr::memchr(b'/', b) else {
        return Some("docker.io");
    };
    let first = &b[..slash];
    let colon = first.iter().position(|&c| c == b':');
    if colon.is_some() || first.contains(&b'.') || first == b"localhost" {
        // ASCII throughout: any index is a character boundary.
        Some(&r[..colon.unwrap_or(slash)])
    } else {
        Some("docker.io")
    }
}

/// `s` up to the first byte `stop` accepts, all of it if none does (an
/// ASCII byte: a character boundary).
fn until(s: &str, stop: impl Fn(u8) -> bool) -> &str {
    &s[..s.bytes().position(stop).unwrap_or(s.len())]
}

/// What a line must hold to carry a reference: a scheme's `://`, or an
/// `image`/`repository` key. Each searcher is built once and runs over
/// whole buffers (SIMD, several GB/s); YAML's `:` on every line would
/// defeat a search keyed on single bytes.
static TRIGGERS: LazyLock<[memmem::Finder<'static>; 3]> = LazyLock::new(|| {
    [
        memmem::Finder::new("://"),
        memmem::Finder::new("image"),
        memmem::Finder::new("repository"),
    ]
});

/// URL schemes reported, in the order their references are listed.
const SCHEMES: [&str; 7] = ["https", "http", "oci", "git", "ssh", "s3", "ftp"];

/// Where a URL ends: at the first whitespace character or one of
/// ``"'<>`),;]}``; and whether it holds a `{` before that (a template's
/// `{{` is only possible then). Byte by byte, with a table; a non-ASCII
/// character is decoded and tested as `char::is_whitespace` does.
fn url_end(after: &str) -> (usize, bool) {
    const GO: u8 = 0;
    const STOP: u8 = 1;
    const BRACE: u8 = 2;
    const OTHER: u8 = 3;
    const fn table() -> [u8; 256] {
        let mut t = [GO; 256];
        let stops = b"\"'<>`),;]} \t\n\x0b\x0c\r";
        let mut i = 0;
        while i < stops.len() {
            t[stops[i] as usize] = STOP;
            i += 1;
        }
        t[b'{' as usize] = BRACE;
        let mut c = 0x80;
        while c < 256 {
            t[c] = OTHER;
            c += 1;
        }
        t
    }
    const CLASS: [u8; 256] = table();
    let bytes = after.as_bytes();
    let mut brace = false;
    let mut i = 0;
    while i < bytes.len() {
        match CLASS[bytes[i] as usize] {
            GO => i += 1,
            STOP => return (i, brace),
            BRACE => {
                brace = true;
                i += 1;
            }
            _ => {
                // `i` is a character boundary: ASCII bytes precede it one
                // by one.
                let c = after[i..].chars().next().unwrap_or(' ');
                if c.is_whitespace() {
                    return (i, brace);
                }
                i += c.len_utf8();
            }
        }
    }
    (bytes.len(), brace)
}

/// How many bytes at the start of `b` pass `f`.
fn leading(b: &[u8], f: impl Fn(u8) -> bool) -> usize {
    b.iter().position(|&c| !f(c)).unwrap_or(b.len())
}

/// How many bytes at the end of `b` pass `f`.
fn trailing(b: &[u8], f: impl Fn(u8) -> bool) -> usize {
    b.iter().rev().position(|&c| !f(c)).unwrap_or(b.len())
}

/// Whitespace among ASCII bytes, as `char::is_whitespace` has it.
fn ascii_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `s` without the quotes (`"`, `'`) at either end, as
/// `trim_matches(|c| c == '"' || c == '\'')` gives it.
fn trim_quotes(s: &str) -> &str {
    let quote = |c| c == b'"' || c == b'\'';
    let s = &s[leading(s.as_bytes(), quote)..];
    &s[..s.len() - trailing(s.as_bytes(), quote)]
}

/// `s` without whitespace at either end, as `str::trim` gives it.
fn trim(s: &str) -> &str {
    let s = trim_start(s);
    let n = s.len() - trailing(s.as_bytes(), ascii_space);
    // `n` is a character boundary: only ASCII bytes were cut.
    if n > 0 && s.as_bytes()[n - 1] >= 0x80 {
        s[..n].trim_end()
    } else {
        &s[..n]
    }
}

/// `s` without its leading whitespace, as `str::trim_start` gives it:
/// ASCII whitespace skipped byte by byte, the rest left to `trim_start`
/// (a YAML line starts with spaces, and decoding a character for each
/// costs more than the rest of the line's scan).
fn trim_start(s: &str) -> &str {
    let b = s.as_bytes();
    let i = leading(b, ascii_space);
    // `i` is a character boundary: only ASCII bytes were skipped.
    if b.get(i).is_some_and(|&c| c >= 0x80) {
        s[i..].trim_start()
    } else {
        &s[i..]
    }
}

/// Which of [`SCHEMES`] ends `line` just before `p` (a `://`), if one
/// does: the byte before tells which one it can be.
fn scheme_of(line: &[u8], p: usize) -> Option<usize> {
    let before = &line[..p];
    let i = match before.last()? {
        b's' => 0,
        b'p' if before.ends_with(b"http") => 1,
        b'p' => 6,
        b'i' => 2,
        b't' => 3,
        b'h' => 4,
        b'3' => 5,
        _ => return None,
    };
    before.ends_with(SCHEMES[i].as_bytes()).then_some(i)
}

/// Whether `b` holds `c` twice in a row (`{{`: a template expression).
fn has_pair(b: &[u8], c: u8) -> bool {
    b.windows(2).any(|w| w[0] == c && w[1] == c)
}

/// Finds references on one line.
pub fn scan_line(line: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    scan_line_with(line, &mut Vec::new(), &mut |kind, host, text| {
        out.push(Reference {
            kind,
            host: host.to_ascii_lowercase(),
            text: text.concat(),
        })
    });
    out
}

/// [`scan_line`], handing each reference to `push` as its kind, its host
/// as written and its text in pieces, so that the caller decides what to
/// allocate; `seps` is scratch space the caller keeps.
fn scan_line_with(
    line: &str,
    seps: &mut Vec<usize>,
    push: &mut impl FnMut(&'static str, &str, [&str; 3]),
) {
    seps.clear();
    if line.len() >= 3 {
        seps.extend(TRIGGERS[0].find_iter(line.as_bytes()));
    }
    scan_line_at(line, seps, push);
}

/// [`scan_line_with`], given where each `://` of the line is (in order:
/// the buffer-wide search found them already).
fn scan_line_at(line: &str, seps: &[usize], push: &mut impl FnMut(&'static str, &str, [&str; 3])) {
    let bytes = line.as_bytes();
    // Each `://` once; then, per scheme in order, its occurrences left to
    // right, each search resuming after the URL before (as `str::find` of
    // `scheme://` from there would). A `://` has at most one scheme (none
    // ends another), and only the schemes the line has are gone through.
    let present = seps
        .iter()
        .fold(0u8, |m, &p| m | scheme_of(bytes, p).map_or(0, |i| 1 << i));
    for (i, scheme) in SCHEMES.into_iter().enumerate() {
        if present >> i == 0 {
            break; // no scheme left on the line
        }
        if present & (1 << i) == 0 {
            continue;
        }
        let mut resume = 0;
        for &p in seps.iter() {
            if scheme_of(bytes, p) != Some(i) || p - scheme.len() < resume {
                continue;
            }
            // `p + 3` follows the ASCII `://`: a character boundary.
            let after = &line[p + 3..];
            let (end, brace) = url_end(after);
            let url = &after[..end];
            let authority = until(url, |b| matches!(b, b'/' | b'?' | b'#'));
            let hostport = match memchr::memrchr(b'@', authority.as_bytes()) {
                Some(i) => &authority[i + 1..],
                None => authority,
            };
            let host = if hostport.starts_with('[') {
                until(hostport, |b| b == b']').trim_start_matches('[')
            } else {
                until(hostport, |b| b == b':')
            };
            // A `{{` (a template) is only possible where a `{` was seen.
            let template = brace && has_pair(url.as_bytes(), b'{');
            if !host.is_empty() && !template && !host.contains('$') {
                push("url", host, [scheme, "://", url]);
            }
            resume = p + 3 + end;
        }
    }
    // `image: ref` and `repository: ref` (YAML, Helm values), also JSON.
    let mut trimmed = trim_start(line);
    while let Some(rest) = trimmed.strip_prefix("- ") {
        trimmed = rest;
    }
    for (key, quoted) in [("image", "\"image\""), ("repository", "\"repository\"")] {
        let value = trimmed
            .strip_prefix(key)
            .or_else(|| trimmed.strip_prefix(quoted))
            .and_then(|v| trim_start(v).strip_prefix(':'))
            .map(|v| trim(trim(v).trim_end_matches(',')));
        if let Some(v) = value {
            // Up to a ` #` comment (ASCII: a character boundary).
            let v = match v.as_bytes().windows(2).position(|w| w == b" #") {
                Some(i) => &v[..i],
                None => v,
            };
            let v = trim(v);
            // A `://` in the value: the line's are in `seps` (`v` is a
            // part of `line`, so its offset is where it starts in it).
            let from = v.as_ptr() as usize - bytes.as_ptr() as usize;
            if v.is_empty()
                || v.starts_with('{')
                || v.starts_with('[')
                || seps.iter().any(|&p| p >= from && p + 3 <= from + v.len())
            {
                continue;
            }
            if let Some(host) = image_host_as_written(v) {
                push("image", host, [trim_quotes(v), "", ""]);
            }
        }
    }
}

/// The newlines in `b`: bytecount compares whole vectors and adds them
/// up (memchr's count stops at every match, and a YAML line is short).
fn count_lines(b: &[u8]) -> usize {
    bytecount::count(b, b'\n')
}

/// Where the last line of `b` starts: after its last newline, or at 0. The
/// part of a line before its first trigger is short: a few bytes looked
/// at one by one cost less than setting up a vector search.
fn line_start(b: &[u8]) -> usize {
    const NEAR: usize = 64;
    let near = b.len().saturating_sub(NEAR);
    match b[near..].iter().rposition(|&c| c == b'\n') {
        Some(i) => near + i + 1,
        None => memchr::memrchr(b'\n', &b[..near]).map_or(0, |i| i + 1),
    }
}

/// What a [`LineScanner`] does with each reference it finds.
pub trait Keep {
    /// A reference on line `line` (from 1): `"url"` or `"image"`, its
    /// host as the text writes it, and its text in pieces (so that nothing
    /// is put together for a reference that is not kept).
    fn keep(&mut self, line: usize, kind: &'static str, host: &str, text: [&str; 3]);
}

/// Scans one file's bytes as they stream past, handing each reference to
/// its [`Keep`]: in the pass, [`External`].
pub struct LineScanner<K = External> {
    line: Vec<u8>,
    line_no: usize,
    skipping: bool,
    /// Scratch for [`scan_line_with`].
    seps: Vec<usize>,
    keep: K,
}

impl LineScanner<External> {
    /// The pass's scan of the file at `location`: external references
    /// become findings at [`LineScanner::finish`].
    pub fn new(location: String, perimeter: Arc<Perimeter>) -> Self {
        LineScanner::with(External::new(location, perimeter))
    }

    /// Ends the file and sends one finding per external reference (within
    /// the report's cap; see [`External`]).
    pub fn finish(self, findings: &Sender<Finding>) -> ScanStats {
        self.end().finish(findings)
    }
}

impl<K: Keep> LineScanner<K> {
    pub fn with(keep: K) -> Self {
        LineScanner {
            line: Vec::new(),
            line_no: 1,
            skipping: false,
            seps: Vec::new(),
            keep,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        let Some(first_nl) = memchr::memchr(b'\n', bytes) else {
            self.push(bytes);
            return;
        };
        // The line begun in an earlier buffer ends here; without one, the
        // buffer starts on a line of its own.
        let whole_from = if self.line.is_empty() {
            0
        } else {
            self.push(&bytes[..first_nl]);
            self.end_line();
            first_nl + 1
        };
        let last_nl = memchr::memrchr(b'\n', bytes).unwrap_or(first_nl);
        if whole_from <= last_nl {
            self.scan_lines(&bytes[whole_from..=last_nl]);
        }
        self.push(&bytes[last_nl + 1..]);
    }

    /// Ends the file (a last line without a newline is scanned) and gives
    /// back what was kept.
    pub fn end(mut self) -> K {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.keep
    }

    /// Scans whole lines, each ending with `\n`: each trigger searched
    /// over the buffer, then [`scan_line_at`] on each line holding one.
    fn scan_lines(&mut self, region: &[u8]) {
        let find = |i: usize, from: usize| {
            TRIGGERS[i]
                .find(&region[from..])
                .map_or(usize::MAX, |k| from + k)
        };
        // The next occurrence of each trigger at or after `pos`.
        let mut next = [find(0, 0), find(1, 0), find(2, 0)];
        // Lines before `counted` are counted in `line_no`.
        let mut counted = 0;
        loop {
            let at = next[0].min(next[1]).min(next[2]);
            if at == usize::MAX {
                break;
            }
            // The lines scanned end before `at`, and `counted` is the
            // start of the last one.
            let start = line_start(&region[counted..at]) + counted;
            let end = memchr::memchr(b'\n', &region[at..]).map_or(region.len(), |i| at + i);
            self.line_no += count_lines(&region[counted..start]);
            counted = start;
            // Cut as a streamed line is (`push`).
            let cut = end.min(start + MAX_LINE);
            // The line's `://`s, from the search over the buffer, which
            // goes on past them (a `://` holds no newline and cannot
            // overlap another).
            self.seps.clear();
            while next[0] < end {
                if next[0] + 3 <= cut {
                    self.seps.push(next[0] - start);
                }
                next[0] = find(0, next[0] + 3);
            }
            if let Ok(text) = std::str::from_utf8(&region[start..cut]) {
                let (keep, line) = (&mut self.keep, self.line_no);
                scan_line_at(text, &self.seps, &mut |kind, host, text| {
                    keep.keep(line, kind, host, text)
                });
            }
            let pos = end + 1;
            if pos >= region.len() {
                break;
            }
            for (i, n) in next.iter_mut().enumerate() {
                if *n < pos {
                    *n = find(i, pos);
                }
            }
        }
        self.line_no += count_lines(&region[counted..]);
    }

    fn push(&mut self, b: &[u8]) {
        if self.skipping {
            return;
        }
        let room = MAX_LINE.saturating_sub(self.line.len());
        if b.len() > room {
            self.line.extend_from_slice(&b[..room]);
            self.skipping = true;
        } else {
            self.line.extend_from_slice(b);
        }
    }

    fn end_line(&mut self) {
        if let Ok(text) = std::str::from_utf8(&self.line) {
            let (keep, line) = (&mut self.keep, self.line_no);
            scan_line_with(text, &mut self.seps, &mut |kind, host, text| {
                keep.keep(line, kind, host, text)
            });
        }
        self.line.clear();
        self.skipping = false;
        self.line_no += 1;
    }
}

/// The pass's [`Keep`]: each reference is classified as it is found and
/// counted, and only the external ones that can still become findings are
/// kept, so a file's scan holds at most a few thousand references however
/// many it finds (an SBOM has a URL every few lines).
///
/// A report keeps the first [`MAX_FINDINGS_PER_CODE`] findings of a code
/// by target (`file:line`, compared as text; see [`line_key`]): of one
/// file's external references, only those on the lines whose keys are
/// among the `MAX_FINDINGS_PER_CODE` smallest (counted with repeats) can
/// be kept. When the kept ones reach twice that, the `MAX_FINDINGS_PER_CODE`-th
/// smallest key becomes a bar, and those past it are dropped; later
/// references past the bar are counted and not kept. The bar only falls as
/// references come, so nothing dropped could have been kept at the end:
/// the findings are those that keeping every reference would have given.
pub struct External {
    location: String,
    perimeter: Arc<Perimeter>,
    references: u64,
    external: u64,
    found: Vec<Found>,
    /// The host (lower case) and text of every reference kept, one after
    /// the other: one growing buffer rather than two strings a reference,
    /// whose allocations cost more than finding them.
    arena: String,
    /// The largest line key that can still become a finding, once known.
    bar: Option<[u8; 20]>,
    /// The line last judged against the bar, and whether it passed:
    /// references come line by line, and a key costs a division a digit.
    judged: (usize, bool),
    /// How many kept references call for a new bar.
    prune_at: usize,
    /// The first few external hosts and their counts, searched in order
    /// before `hosts`: a file names few hosts, and comparing a few short
    /// names costs less than hashing one.
    front: Vec<(Box<str>, u64)>,
    hosts: HostCounts,
}

/// Hosts [`External`] counts before it hashes any.
const FRONT_HOSTS: usize = 8;

/// A reference kept by [`External`]: its host, then its text, in the
/// arena from `at` (both are parts of a line, under 4 GiB).
struct Found {
    line: usize,
    at: usize,
    host_len: u32,
    text_len: u32,
    /// A URL; otherwise an image.
    url: bool,
}

impl Found {
    fn kind(&self) -> &'static str {
        if self.url {
            "url"
        } else {
            "image"
        }
    }

    fn host<'a>(&self, arena: &'a str) -> &'a str {
        &arena[self.at..self.at + self.host_len as usize]
    }

    fn text<'a>(&self, arena: &'a str) -> &'a str {
        let start = self.at + self.host_len as usize;
        &arena[start..start + self.text_len as usize]
    }
}

impl Keep for External {
    fn keep(&mut self, line: usize, kind: &'static str, host: &str, text: [&str; 3]) {
        self.references += 1;
        let h = self.arena.len();
        self.arena.push_str(host);
        self.arena[h..].make_ascii_lowercase();
        if self.perimeter.is_internal(&self.arena[h..]) {
            self.arena.truncate(h);
            return;
        }
        self.external += 1;
        let host = &self.arena[h..];
        if let Some((_, n)) = self.front.iter_mut().find(|(f, _)| **f == *host) {
            *n += 1;
        } else if self.front.len() < FRONT_HOSTS {
            self.front.push((host.into(), 1));
        } else {
            self.hosts.add(host, 1);
        }
        if let Some(bar) = &self.bar {
            if self.judged.0 != line {
                self.judged = (line, line_key(line) <= *bar);
            }
            if !self.judged.1 {
                self.arena.truncate(h);
                return;
            }
        }
        let t = self.arena.len();
        for piece in text {
            self.arena.push_str(piece);
        }
        self.found.push(Found {
            line,
            at: h,
            host_len: (t - h) as u32,
            text_len: (self.arena.len() - t) as u32,
            url: kind == "url",
        });
        if self.found.len() >= self.prune_at {
            self.prune();
        }
    }
}

impl External {
    fn new(location: String, perimeter: Arc<Perimeter>) -> Self {
        External {
            location,
            perimeter,
            references: 0,
            external: 0,
            found: Vec::new(),
            arena: String::new(),
            bar: None,
            judged: (0, true),
            prune_at: 2 * MAX_FINDINGS_PER_CODE,
            front: Vec::new(),
            hosts: HostCounts::default(),
        }
    }

    /// Sets the bar from the kept references and drops those past it.
    fn prune(&mut self) {
        let Some(bar) = self.cap() else {
            return;
        };
        self.bar = Some(bar);
        self.judged = (0, true);
        let mut arena = String::with_capacity(self.arena.len() / 2);
        let old = std::mem::take(&mut self.arena);
        self.found.retain_mut(|f| {
            if line_key(f.line) > bar {
                return false;
            }
            let at = arena.len();
            arena.push_str(&old[f.at..f.at + (f.host_len + f.text_len) as usize]);
            f.at = at;
            true
        });
        self.arena = arena;
        // Many references on the lines under the bar (one long line of
        // URLs) keep it high: the next prune waits for twice as many.
        self.prune_at = (2 * self.found.len()).max(2 * MAX_FINDINGS_PER_CODE);
    }

    /// The `MAX_FINDINGS_PER_CODE`-th smallest key of the kept references,
    /// when there are more than that many.
    fn cap(&self) -> Option<[u8; 20]> {
        let cap = MAX_FINDINGS_PER_CODE;
        if self.found.len() <= cap {
            return None;
        }
        let mut keys: Vec<[u8; 20]> = self.found.iter().map(|f| line_key(f.line)).collect();
        let (_, last, _) = keys.select_nth_unstable(cap - 1);
        Some(*last)
    }

    /// Sends one finding per external reference kept, and one that counts
    /// those past the cap.
    fn finish(mut self, findings: &Sender<Finding>) -> ScanStats {
        for (h, n) in std::mem::take(&mut self.front) {
            self.hosts.add(&h, n);
        }
        if let Some(bar) = self.cap() {
            self.found.retain(|f| line_key(f.line) <= bar);
        }
        let omitted = self.external - self.found.len() as u64;
        let status = if self.perimeter.deny_external {
            Status::Fail
        } else {
            Status::Warn
        };
        let arena = &self.arena;
        for f in &self.found {
            let at = format!("{}:{}", self.location, f.line);
            let (host, text) = (f.host(arena), f.text(arena));
            let _ = findings.send(
                Finding::new(
                    Code::RefsExternal,
                    at.clone(),
                    format!(
                        "{at}: {} {text} points outside the perimeter ({host})",
                        f.kind()
                    ),
                )
                .with_status(status)
                .evidence("host", host)
                .evidence("kind", f.kind())
                .evidence("reference", text),
            );
        }
        if omitted > 0 {
            let _ = findings.send(Finding::omitted_upstream(
                Code::RefsExternal,
                omitted as usize,
            ));
        }
        ScanStats {
            files: 1,
            references: self.references,
            external: self.external,
            hosts: self.hosts,
        }
    }
}

/// A line number's decimal digits, left-aligned and padded with zeros: these
/// arrays compare as the numbers' text does (`"10" < "9"`, `"1" < "10"`).
fn line_key(mut line: usize) -> [u8; 20] {
    let mut reversed = [0u8; 20];
    let mut n = 0;
    loop {
        reversed[n] = b'0' + (line % 10) as u8;
        n += 1;
        line /= 10;
        if line == 0 {
            break;
        }
    }
    let mut digits = [0u8; 20];
    for i in 0..n {
        digits[i] = reversed[n - 1 - i];
    }
    digits
}

/// Totals for the summary finding.
#[derive(Debug, Default, Clone)]
pub struct ScanStats {
    pub files: u64,
    pub references: u64,
    pub external: u64,
    /// How many external references name each host: every one, not only
    /// those the report keeps as findings.
    pub hosts: HostCounts,
}

impl std::ops::AddAssign for ScanStats {
    fn add_assign(&mut self, o: ScanStats) {
        self.files += o.files;
        self.references += o.references;
        self.external += o.external;
        self.hosts += o.hosts;
    }
}

/// Distinct external hosts counted one by one; past this many, the
/// references to further hosts are only counted together.
pub const MAX_HOSTS: usize = 1000;

/// External references by host (lower case), for the summary: a reviewer
/// sees every host a release depends on, with how often, even when the
/// findings that show them stop at the report's cap.
#[derive(Debug, Default, Clone)]
pub struct HostCounts {
    counts: std::collections::HashMap<Box<str>, u64>,
    /// References to hosts past the first [`MAX_HOSTS`].
    omitted: u64,
}

impl HostCounts {
    fn add(&mut self, host: &str, n: u64) {
        if let Some(c) = self.counts.get_mut(host) {
            *c += n;
        } else if self.counts.len() < MAX_HOSTS {
            self.counts.insert(host.into(), n);
        } else {
            self.omitted += n;
        }
    }

    /// The hosts and their counts, by name.
    pub fn sorted(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.counts.iter().map(|(h, n)| (&**h, *n)).collect();
        v.sort_unstable();
        v
    }

    /// References to hosts not counted one by one (past [`MAX_HOSTS`]).
    pub fn omitted(&self) -> u64 {
        self.omitted
    }

    /// The counts as the summary's evidence: `{host: references}`.
    pub fn to_json(&self) -> serde_json::Value {
        self.sorted()
            .into_iter()
            .map(|(h, n)| (h.to_string(), serde_json::Value::from(n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

impl std::ops::AddAssign for HostCounts {
    fn add_assign(&mut self, o: HostCounts) {
        // By name, so that which hosts fit under the bound does not depend
        // on the order a hash map keeps.
        for (h, n) in o.sorted() {
            self.add(h, n);
        }
        self.omitted += o.omitted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reference, as [`scan_line`] gives it: the oracle's form.
    impl Keep for Vec<(usize, Reference)> {
        fn keep(&mut self, line: usize, kind: &'static str, host: &str, text: [&str; 3]) {
            self.push((
                line,
                Reference {
                    kind,
                    host: host.to_ascii_lowercase(),
                    text: text.concat(),
                },
            ));
        }
    }

    /// A fixed xorshift sequence: `next(n)` picks an index below `n`, the
    /// same ones on every run.
    fn picker(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// Every reference in `text`, fed in pieces of `step` bytes.
    fn all_references(text: &[u8], step: usize) -> Vec<(usize, Reference)> {
        let mut s = LineScanner::with(Vec::new());
        for piece in text.chunks(step) {
            s.feed(piece);
        }
        s.end()
    }

    /// The byte-wise trims and line count against the standard library's,
    /// on ASCII and Unicode whitespace at either end and inside.
    #[test]
    fn byte_wise_helpers_agree_with_std() {
        let pieces = [
            "", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\u{85}", "\u{a0}", "\u{3000}", "é", "x",
            "\"", "'", "\n\n", "a b",
        ];
        let mut pick = picker(0x5eed);
        for _ in 0..5000 {
            let s: String = (0..pick(6)).map(|_| pieces[pick(pieces.len())]).collect();
            assert_eq!(trim_start(&s), s.trim_start(), "{s:?}");
            assert_eq!(trim(&s), s.trim(), "{s:?}");
            assert_eq!(
                trim_quotes(&s),
                s.trim_matches(|c| c == '"' || c == '\''),
                "{s:?}"
            );
            assert_eq!(count_lines(s.as_bytes()), s.matches('\n').count(), "{s:?}");
        }
        let long = "a\n".repeat(100_000);
        assert_eq!(count_lines(long.as_bytes()), 100_000);
    }

    #[test]
    fn docker_hub_rule() {
        assert_eq!(image_host("nginx:1.25").as_deref(), Some("docker.io"));
        assert_eq!(image_host("bitnami/redis:7").as_deref(), Some("docker.io"));
        assert_eq!(image_host("ghcr.io/org/x:v1").as_deref(), Some("ghcr.io"));
        assert_eq!(
            image_host("registry.local:5000/x").as_deref(),
            Some("registry.local")
        );
        assert_eq!(image_host("localhost/x").as_deref(), Some("localhost"));
        assert_eq!(image_host("{{ .Values.image }}"), None);
    }

    #[test]
    fn lines() {
        let r = scan_line("  image: quay.io/prometheus/node-exporter:v1.8.0");
        assert_eq!(r[0].host, "quay.io");
        let r = scan_line(r#"  "image": "nginx:1.25","#);
        assert_eq!(r[0].host, "docker.io");
        let r = scan_line("repoURL: https://github.com/org/repo.git # upstream");
        assert_eq!(r[0].host, "github.com");
        assert_eq!(r[0].kind, "url");
        assert!(
            scan_line("image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"")
                .is_empty()
        );
        let r = scan_line("curl -fsSL http://user@[fd00::1]:8080/x");
        assert_eq!(r[0].host, "fd00::1");
    }

    #[test]
    fn classification() {
        let p = Perimeter {
            hosts: vec!["registry.sekoia.io".into()],
            domains: vec!["perimeter.corp".into()],
            deny_external: false,
        };
        assert!(p.is_internal("registry.sekoia.io"));
        assert!(p.is_internal("git.perimeter.corp"));
        assert!(p.is_internal("10.1.2.3"));
        assert!(p.is_internal("kubernetes.default.svc"));
        assert!(p.is_internal("fd00::1"));
        assert!(!p.is_internal("docker.io"));
        assert!(!p.is_internal("8.8.8.8"));
        assert!(!p.is_internal("perimeter.corp.evil.com"));
    }

    /// [`Perimeter::is_internal`] as it was before it ran on every
    /// reference found: the reference the allocation-free one must agree with.
    fn old_is_internal(p: &Perimeter, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return is_private(ip);
        }
        if !host.contains('.') || host == "localhost" {
            return true;
        }
        if p.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return true;
        }
        if p.domains.iter().any(|d| {
            let d = d.trim_start_matches('.').to_ascii_lowercase();
            host == d || host.ends_with(&format!(".{d}"))
        }) {
            return true;
        }
        [
            ".svc",
            ".cluster.local",
            ".local",
            ".internal",
            ".localhost",
            ".test",
            ".invalid",
            ".example",
            ".home.arpa",
            ".lan",
        ]
        .iter()
        .any(|s| host.ends_with(s))
    }

    #[test]
    fn classification_agrees_with_the_old_one() {
        let p = Perimeter {
            hosts: vec!["Registry.Sekoia.io".into()],
            domains: vec![".Perimeter.Corp".into(), "lab".into(), "".into()],
            deny_external: false,
        };
        let labels = [
            "",
            "a",
            "svc",
            "local",
            "cluster",
            "internal",
            "localhost",
            "test",
            "invalid",
            "example",
            "home",
            "arpa",
            "lan",
            "lab",
            "corp",
            "perimeter",
            "com",
            "io",
            "sekoia",
            "registry",
            "1password",
            "10",
            "192",
            "168",
            "0",
            "256",
            "fd00::1",
            "[fd00::1]",
            "2001:db8::1",
            "abcd::1",
            "[abcd::2]",
            "::ffff:10.1.2.3",
            "fe80::1",
            "é",
            "xn--bcher-kva",
            "-",
            "svc.",
        ];
        let mut next = picker(0x9e37_79b9_7f4a_7c15u64);
        let mut internal = 0;
        for i in 0..50_000 {
            let n = 1 + next(4);
            let mut host = (0..n)
                .map(|_| labels[next(labels.len())])
                .collect::<Vec<_>>()
                .join(".");
            if i % 9 == 0 {
                host.push('.');
            }
            let want = old_is_internal(&p, &host);
            assert_eq!(p.is_internal(&host), want, "{host:?}");
            internal += usize::from(want);
        }
        // Both answers are well represented.
        assert!((10_000..40_000).contains(&internal), "{internal}");
    }

    /// The per-line scan as it was before the buffer-wide search: the
    /// reference the fast one must agree with.
    fn old_scan_line(line: &str) -> Vec<Reference> {
        let mut out = Vec::new();
        // Most lines hold neither a URL nor an image key: one cheap test each
        // keeps the scan off the critical path of the pass.
        let has_url = line.contains("://");
        let has_key = line.contains("image") || line.contains("repository");
        if !has_url && !has_key {
            return out;
        }
        // URLs with a scheme.
        for scheme in [
            "https://", "http://", "oci://", "git://", "ssh://", "s3://", "ftp://",
        ] {
            let mut rest = line;
            while let Some(i) = rest.find(scheme) {
                let after = &rest[i + scheme.len()..];
                let end = after
                    .find(|c: char| c.is_whitespace() || "\"'<>`),;]}".contains(c))
                    .unwrap_or(after.len());
                let url = &after[..end];
                let authority = url.split(['/', '?', '#']).next().unwrap_or("");
                let hostport = authority.rsplit('@').next().unwrap_or(authority);
                let host = if hostport.starts_with('[') {
                    hostport
                        .split(']')
                        .next()
                        .unwrap_or("")
                        .trim_start_matches('[')
                        .to_string()
                } else {
                    hostport.split(':').next().unwrap_or("").to_string()
                };
                if !host.is_empty() && !url.contains("{{") && !host.contains('$') {
                    out.push(Reference {
                        kind: "url",
                        host: host.to_ascii_lowercase(),
                        text: format!("{scheme}{url}"),
                    });
                }
                rest = &after[end..];
            }
        }
        // `image: ref` and `repository: ref` (YAML, Helm values), also JSON.
        let trimmed = line.trim_start().trim_start_matches("- ");
        for (key, quoted) in [("image", "\"image\""), ("repository", "\"repository\"")] {
            if !has_key {
                break;
            }
            let value = trimmed
                .strip_prefix(key)
                .or_else(|| trimmed.strip_prefix(quoted))
                .and_then(|v| v.trim_start().strip_prefix(':'))
                .map(|v| v.trim().trim_end_matches(',').trim());
            if let Some(v) = value {
                let v = v.split(" #").next().unwrap_or(v).trim();
                if v.is_empty() || v.starts_with('{') || v.starts_with('[') || v.contains("://") {
                    continue;
                }
                if let Some(host) = image_host(v) {
                    out.push(Reference {
                        kind: "image",
                        host,
                        text: v.trim_matches(|c| c == '"' || c == '\'').to_string(),
                    });
                }
            }
        }
        out
    }

    const TRICKY: &[&str] = &[
        "  image: quay.io/prometheus/node-exporter:v1.8.0",
        r#"  "image": "nginx:1.25","#,
        "- repository: ghcr.io/acme/web # upstream",
        "repoURL: https://github.com/org/repo.git # upstream",
        "see https://a.example.com/x?u=http://b.com/y and https://c.io, sftp://d.net",
        "git+ssh://git@github.com/x.git oci://registry.io/charts s3://bucket/key ftp://[fd00::1]:21/",
        "https://https://x.io http://{{ .Values.host }}/ https://$HOST/",
        "image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"",
        "no reference here, only an imagery of repositories",
        "ünïcödé https://ëxample.com/ä and \u{3000}https://wide.space.io/\u{3000}",
        "::// :// https:// http://",
        "\r",
        "",
    ];

    #[test]
    fn the_fast_line_scan_finds_what_the_old_one_did() {
        for line in TRICKY {
            assert_eq!(scan_line(line), old_scan_line(line), "{line:?}");
        }
    }

    /// Every line of `text` through the old scan, as the streamed scanner
    /// did: lines cut at `MAX_LINE`, invalid UTF-8 skipped.
    fn per_line(text: &[u8]) -> Vec<(usize, Reference)> {
        let mut out = Vec::new();
        let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for (i, l) in lines.into_iter().enumerate() {
            if let Ok(t) = std::str::from_utf8(&l[..l.len().min(MAX_LINE)]) {
                out.extend(old_scan_line(t).into_iter().map(|r| (i + 1, r)));
            }
        }
        out
    }

    #[test]
    fn any_split_of_the_stream_finds_the_same_references() {
        let mut text = Vec::new();
        for (i, line) in TRICKY.iter().cycle().take(60).enumerate() {
            text.extend_from_slice(line.as_bytes());
            if i % 7 == 3 {
                text.extend_from_slice(&[0xff, b' ']); // not UTF-8: line skipped
            }
            text.push(b'\n');
        }
        // A line longer than MAX_LINE with a URL before and after the cut.
        text.extend_from_slice(b"x https://before.cut.io/ ");
        text.extend(std::iter::repeat_n(b'a', MAX_LINE));
        text.extend_from_slice(b" https://after.cut.io/\nimage: ghcr.io/x/y:1");
        let want = per_line(&text);
        assert!(want.len() > 40, "{}", want.len());
        for step in [1, 2, 3, 7, 64, 1000, 4096, 65536, text.len()] {
            assert_eq!(all_references(&text, step), want, "pieces of {step} bytes");
        }
    }

    /// Lines put together from fragments that each touch one rule of the
    /// scan (keys, quotes, comments, templates, schemes, hosts, stops),
    /// in an order a fixed generator picks: every line and the whole text
    /// must give what the old scan gives.
    #[test]
    fn generated_lines_find_what_the_old_scan_did() {
        const FRAGMENTS: &[&str] = &[
            "image:",
            "  image: ",
            "- image: ",
            "\"image\": ",
            "repository: ",
            "- - repository:",
            "imagePullPolicy: ",
            "nginx",
            "ghcr.io/a/b:1",
            "\"quay.io/x/y:v2\"",
            "'registry.local:5000/z'",
            "localhost/app",
            " # a comment",
            " #",
            "#",
            ",",
            "{{ .Values.image }}",
            "{",
            "[a]",
            "$REG/x",
            "https://",
            "http://",
            "git+ssh://",
            "oci://",
            "s3://",
            "ftp://",
            "sftp://",
            "://",
            "github.com/org/repo",
            "user@[fd00::1]:8080/x",
            "HOST.Example.COM:443/p?q=http://inner.io#f",
            "{{ .Values.host }}",
            "$HOST",
            " ",
            "\t",
            "\"",
            "'",
            ")",
            ";",
            "]",
            "}",
            "<",
            "é",
            "\u{3000}",
            "\u{85}",
            "\u{a0}\t",
            "\x0b",
            ".",
            "[",
            "://x",
        ];
        let mut next = picker(0x2545_f491_4f6c_dd1du64);
        let mut text = String::new();
        for _ in 0..20_000 {
            let mut line = String::new();
            for _ in 0..1 + next(6) {
                line.push_str(FRAGMENTS[next(FRAGMENTS.len())]);
            }
            assert_eq!(scan_line(&line), old_scan_line(&line), "{line:?}");
            text.push_str(&line);
            text.push('\n');
        }
        let want = per_line(text.as_bytes());
        assert!(want.len() > 3_000, "{}", want.len());
        assert_eq!(all_references(text.as_bytes(), 4093), want);
    }

    /// Texts whose external references outnumber the report's cap, in
    /// the shapes that move the bar: a few references a line, internal
    /// ones mixed in, more on the first line than the bar is set at (the
    /// bar falls inside the line, whose later references tie with it) and
    /// many on a line far down (past it).
    fn crowded_texts() -> Vec<(&'static str, String)> {
        let mut plain = String::new();
        for i in 0..2500 {
            plain.push_str(&format!(
                "url: https://h{}.example.org/x https://b.io\n",
                i % 7
            ));
            if i % 3 == 0 {
                plain.push_str("  image: ghcr.io/a/b:1\n");
            }
            if i % 5 == 0 {
                plain.push_str("  value: http://api.platform.svc:8080/\n");
            }
        }
        let mut mixed = String::new();
        for i in 0u64..30_000 {
            let n = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 62;
            for k in 0..n {
                let host = match (i + k) % 5 {
                    0 => "svc-1.platform.svc".to_string(),
                    1 => "git.Perimeter.Corp".to_string(),
                    2 => "mirror.corp.io".to_string(),
                    _ => format!("h{}.example.org", (i + k) % 13),
                };
                mixed.push_str(&format!("https://{host}/p{k} "));
            }
            mixed.push('\n');
            if i % 11 == 0 {
                mixed.push_str("  - image: registry.sekoia.io/x:1\n");
            }
        }
        let wide = |n: usize| {
            (0..n)
                .map(|k| format!("https://w{}.example.org/", k % 3))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let first_line_crowded = format!("{}\n{plain}", wide(2500));
        let far_line_crowded = format!("{mixed}{}\nimage: nginx\n", wide(1500));
        vec![
            ("plain", plain),
            ("mixed", mixed),
            ("first line crowded", first_line_crowded),
            ("far line crowded", far_line_crowded),
        ]
    }

    /// The findings a file gives are those every external reference sent
    /// to the report would have given, and the scan keeps a bounded number
    /// of references to give them, however many the file holds.
    #[test]
    fn findings_past_the_cap_are_counted_not_built() {
        use crate::finding::FindingCap;
        let perimeter = Perimeter {
            hosts: vec!["mirror.corp.io".into()],
            domains: vec![".perimeter.corp".into()],
            deny_external: false,
        };
        for (shape, text) in crowded_texts() {
            let all = all_references(text.as_bytes(), 65536);
            let external: Vec<_> = all
                .iter()
                .filter(|(_, r)| !perimeter.is_internal(&r.host))
                .collect();
            assert!(external.len() > 2 * MAX_FINDINGS_PER_CODE, "{shape}");
            assert!(external.len() < all.len(), "{shape}: some are internal");
            let mut s = LineScanner::new("f.yaml".into(), Arc::new(perimeter.clone()));
            let mut most = 0;
            for piece in text.as_bytes().chunks(4096) {
                s.feed(piece);
                most = most.max(s.keep.found.len());
            }
            // Twice the cap, or the references on the lines under the bar
            // (2,500 on the first line).
            let bound = if shape == "first line crowded" {
                4 * MAX_FINDINGS_PER_CODE
            } else {
                2 * MAX_FINDINGS_PER_CODE
            };
            assert!(most <= bound, "{shape}: {most} references kept");
            let (tx, rx) = crossbeam_channel::unbounded();
            let stats = s.finish(&tx);
            drop(tx);
            let sent: Vec<Finding> = rx.iter().collect();
            assert_eq!(stats.references as usize, all.len(), "{shape}");
            assert_eq!(stats.external as usize, external.len(), "{shape}");
            // Every external reference is counted by host, kept or not.
            let mut hosts = std::collections::BTreeMap::<&str, u64>::new();
            for (_, r) in &external {
                *hosts.entry(&r.host).or_default() += 1;
            }
            assert_eq!(
                stats.hosts.sorted(),
                hosts.into_iter().collect::<Vec<_>>(),
                "{shape}"
            );
            // What the report keeps is what it kept when every one was sent.
            let mut cap = FindingCap::default();
            sent.into_iter().for_each(|f| cap.push(f));
            let mut want = FindingCap::default();
            for (line, r) in external {
                let at = format!("f.yaml:{line}");
                want.push(Finding::new(
                    Code::RefsExternal,
                    at.clone(),
                    format!(
                        "{at}: {} {} points outside the perimeter ({})",
                        r.kind, r.text, r.host
                    ),
                ));
            }
            let key = |f: &Finding| {
                (
                    f.target.clone(),
                    f.message.clone(),
                    f.evidence.get("omitted").and_then(|v| v.as_u64()),
                )
            };
            let mut got: Vec<_> = cap.finish("in").iter().map(key).collect();
            let mut want: Vec<_> = want.finish("in").iter().map(key).collect();
            got.sort();
            want.sort();
            assert!(got.len() > MAX_FINDINGS_PER_CODE, "{shape}: {}", got.len());
            assert_eq!(got, want, "{shape}");
        }
    }

    #[test]
    fn host_counts_merge_and_stop_at_max_hosts() {
        let mut a = HostCounts::default();
        let mut b = HostCounts::default();
        for i in 0..MAX_HOSTS - 2 {
            a.add(&format!("h{i}.example.org"), 2);
        }
        b.add("h0.example.org", 5);
        for i in 0..5 {
            b.add(&format!("late{i}.example.org"), 3);
        }
        a += b;
        let sorted = a.sorted();
        assert_eq!(sorted.len(), MAX_HOSTS);
        assert!(sorted.contains(&("h0.example.org", 7)));
        assert!(sorted.contains(&("late0.example.org", 3)));
        assert!(sorted.contains(&("late1.example.org", 3)));
        assert!(!sorted.iter().any(|(h, _)| *h == "late2.example.org"));
        // The three hosts past the bound, 3 references each.
        assert_eq!(a.omitted(), 9);
        let json = a.to_json();
        assert_eq!(json["h0.example.org"], 7);
        assert_eq!(json.as_object().unwrap().len(), MAX_HOSTS);
    }

    #[test]
    fn long_lines_are_cut_not_buffered() {
        let mut s = LineScanner::with(Vec::new());
        s.feed(&vec![b'a'; MAX_LINE * 3]);
        s.feed(b" https://evil.example.com/\nimage: ghcr.io/x/y:1\n");
        assert_eq!(s.line.len(), 0);
        let refs = s.end();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].0, 2);
    }
}
