//! The external-reference scan, for security reviewers: which container
//! images and URLs in the release's text files point outside the perimeter.
//!
//! Guarantees:
//! - text files are scanned line by line as they stream past (release
//!   members and members of nested charts and content bundles); no file is
//!   held whole, and a line is cut at `MAX_LINE` bytes;
//! - every reference is classified from data alone, never by resolving a
//!   name: nothing here touches the network;
//! - a reference inside a template expression (`{{ ... }}`) is skipped: it is
//!   not a host until rendered.

use std::net::IpAddr;

use crossbeam_channel::Sender;

use crate::finding::{Code, Finding, Status};

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

/// Names that never reach the internet: reserved or cluster-internal.
const INTERNAL_SUFFIXES: &[&str] = &[
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
];

impl Perimeter {
    /// Whether `host` (lower case, no port) is inside the perimeter.
    pub fn is_internal(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return is_private(ip);
        }
        if !host.contains('.') || host == "localhost" {
            return true; // a single label resolves only inside
        }
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return true;
        }
        if self.domains.iter().any(|d| {
            let d = d.trim_start_matches('.').to_ascii_lowercase();
            host == d || host.ends_with(&format!(".{d}"))
        }) {
            return true;
        }
        INTERNAL_SUFFIXES.iter().any(|s| host.ends_with(s))
    }
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
    let r = reference.trim().trim_matches(|c| c == '"' || c == '\'');
    if r.is_empty() || r.contains("{{") || r.contains(' ') || r.starts_with('$') {
        return None;
    }
    let valid = r
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if !valid || r.starts_with('/') || r.ends_with(':') {
        return None;
    }
    match r.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            Some(
                first
                    .split(':')
                    .next()
                    .unwrap_or(first)
                    .to_ascii_lowercase(),
            )
        }
        _ => Some("docker.io".into()),
    }
}

/// Finds references on one line.
pub fn scan_line(line: &str) -> Vec<Reference> {
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

/// Scans one file's bytes as they stream past.
pub struct LineScanner {
    location: String,
    line: Vec<u8>,
    line_no: usize,
    skipping: bool,
    pub references: Vec<(usize, Reference)>,
}

impl LineScanner {
    pub fn new(location: String) -> Self {
        LineScanner {
            location,
            line: Vec::new(),
            line_no: 1,
            skipping: false,
            references: Vec::new(),
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.push(&bytes[..i]);
                    self.end_line();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.push(bytes);
                    bytes = &[];
                }
            }
        }
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
            for r in scan_line(text) {
                self.references.push((self.line_no, r));
            }
        }
        self.line.clear();
        self.skipping = false;
        self.line_no += 1;
    }

    /// Ends the file and sends one finding per external reference.
    pub fn finish(mut self, perimeter: &Perimeter, findings: &Sender<Finding>) -> ScanStats {
        if !self.line.is_empty() {
            self.end_line();
        }
        let mut stats = ScanStats {
            files: 1,
            ..Default::default()
        };
        for (line, r) in self.references {
            stats.references += 1;
            if perimeter.is_internal(&r.host) {
                continue;
            }
            stats.external += 1;
            let status = if perimeter.deny_external {
                Status::Fail
            } else {
                Status::Warn
            };
            let at = format!("{}:{line}", self.location);
            let _ = findings.send(
                Finding::new(
                    Code::RefsExternal,
                    at.clone(),
                    format!(
                        "{at}: {} {} points outside the perimeter ({})",
                        r.kind, r.text, r.host
                    ),
                )
                .with_status(status)
                .evidence("host", r.host)
                .evidence("kind", r.kind)
                .evidence("reference", r.text),
            );
        }
        stats
    }
}

/// Totals for the summary finding.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanStats {
    pub files: u64,
    pub references: u64,
    pub external: u64,
}

impl std::ops::AddAssign for ScanStats {
    fn add_assign(&mut self, o: ScanStats) {
        self.files += o.files;
        self.references += o.references;
        self.external += o.external;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn long_lines_are_cut_not_buffered() {
        let mut s = LineScanner::new("f".into());
        s.feed(&vec![b'a'; MAX_LINE * 3]);
        s.feed(b" https://evil.example.com/\nimage: ghcr.io/x/y:1\n");
        assert_eq!(s.line.len(), 0);
        assert_eq!(s.references.len(), 1);
        assert_eq!(s.references[0].0, 2);
    }
}
