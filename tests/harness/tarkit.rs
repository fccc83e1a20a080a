//! Byte-level tar writing for hostile and broken archives: raw names, raw
//! type flags, PAX and GNU long-name records, no validation at all.

#![allow(dead_code)]

use std::io::Read;

#[derive(Debug, Clone)]
pub struct Member {
    pub path: String,
    pub kind: u8,
    pub mode: u32,
    pub data: Vec<u8>,
    pub link: String,
}

impl Member {
    pub fn file(path: &str, data: &[u8]) -> Member {
        Member {
            path: path.into(),
            kind: b'0',
            mode: 0o644,
            data: data.to_vec(),
            link: String::new(),
        }
    }
}

/// Reads every member of a (plain) tar with the `tar` crate.
pub fn read_members(bytes: &[u8]) -> Vec<Member> {
    let mut a = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Member {
            path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
            kind: e.header().entry_type().as_byte(),
            mode: e.header().mode().unwrap(),
            data,
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap())
                .unwrap_or_default(),
        });
    }
    out
}

pub fn write_members(members: &[Member]) -> Vec<u8> {
    let mut t = RawTar::new();
    for m in members {
        t.entry(
            m.path.as_bytes(),
            m.kind,
            m.mode,
            &m.data,
            m.link.as_bytes(),
        );
    }
    t.finish()
}

/// Rewrites a tar file in place through `f`.
pub fn rewrite(path: &std::path::Path, f: impl FnOnce(&mut Vec<Member>)) {
    let bytes = std::fs::read(path).unwrap();
    let mut members = read_members(&bytes);
    f(&mut members);
    std::fs::write(path, write_members(&members)).unwrap();
}

#[derive(Default)]
pub struct RawTar {
    pub buf: Vec<u8>,
}

pub fn header(name: &[u8], kind: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_735_689_600);
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    set_checksum(&mut h);
    h
}

pub fn set_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    field[w] = 0;
}

fn pad(buf: &mut Vec<u8>) {
    let rem = buf.len() % 512;
    if rem != 0 {
        buf.resize(buf.len() + 512 - rem, 0);
    }
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar::default()
    }

    /// One entry; names over 100 bytes get a GNU long-name record first.
    pub fn entry(
        &mut self,
        name: &[u8],
        kind: u8,
        mode: u32,
        data: &[u8],
        link: &[u8],
    ) -> &mut Self {
        if name.len() > 100 {
            self.gnu_longname(name);
        }
        let h = header(name, kind, mode, data.len() as u64, link);
        self.buf.extend_from_slice(&h);
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name.as_bytes(), b'0', 0o644, data, b"")
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name.as_bytes(), b'5', 0o755, b"", b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name.as_bytes(), b'2', 0o777, b"", target.as_bytes())
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name.as_bytes(), b'1', 0o644, b"", target.as_bytes())
    }

    /// A PAX local extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN key=value\n", where LEN counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len = len.to_string().len() + rest;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let h = header(b"././@PaxHeader", b'x', 0o644, body.len() as u64, b"");
        self.buf.extend_from_slice(&h);
        self.buf.extend_from_slice(&body);
        pad(&mut self.buf);
        self
    }

    pub fn gnu_longname(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        let mut h = header(b"././@LongLink", b'L', 0o644, data.len() as u64, b"");
        h[257..265].copy_from_slice(b"ustar  \0");
        set_checksum(&mut h);
        self.buf.extend_from_slice(&h);
        self.buf.extend_from_slice(&data);
        pad(&mut self.buf);
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Appends the two zero blocks that end a tar.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    pub fn unfinished(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

pub use airgap_verify::sample::gzip;

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}
