//! `--format html` in a real browser: Debian's headless Chromium loads the
//! report of the merged fixtures (four real `flows` runs in the namespace
//! lab, see tests/merge.rs), and the test reads the DOM it built, the
//! connections it tried, and a screenshot.
//!
//! The network check: Chromium runs in a network namespace of its own
//! (`unshare -n`, so nothing could leave it anyway) under `strace -f -e
//! trace=connect`, with every host name resolving to nothing except the
//! literal address 10.0.255.99. A page that fetches `http://10.0.255.99/`
//! shows as a connect to it (the negative control proves the detector sees
//! one); the report must add no connect to what Chromium does for a blank
//! page by itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::harness::{av, Sandbox};

const CANARY: &str = "10.0.255.99";

fn chromium() -> &'static str {
    let ok = Command::new("chromium")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "Debian's chromium is not installed: `apt-get install chromium` (scripts/test.sh does it)"
    );
    "chromium"
}

/// Chromium headless on `page`, in an empty network namespace under strace:
/// (its `--dump-dom` output, the non-local addresses it connected to).
fn load(sb: &Sandbox, page: &Path, tag: &str, extra: &[&str]) -> (String, BTreeSet<String>) {
    let trace = sb.path(&format!("{tag}.strace"));
    let profile = sb.path(&format!("{tag}.profile"));
    let dom = sb.path(&format!("{tag}.dom"));
    let log = sb.path(&format!("{tag}.stderr"));
    // Files, not pipes: Chromium's helpers (crashpad) may outlive it and
    // hold a pipe open. `timeout` bounds a hung browser.
    let status = Command::new("timeout")
        .args([
            "120",
            "unshare",
            "-n",
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=connect",
            "-o",
        ])
        .arg(&trace)
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--no-pings",
            "--disable-domain-reliability",
            // Names resolve to nothing, so only literal addresses are
            // connected to: the canary's is the one left.
            &format!("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {CANARY}"),
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(
            if extra
                .iter()
                .any(|a| a.starts_with("--screenshot") || a.starts_with("--print-to-pdf"))
            {
                &[][..]
            } else {
                &["--dump-dom"][..]
            },
        )
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&dom).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .expect("run chromium under strace");
    assert!(
        status.success(),
        "chromium ({status}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let addr = regex::Regex::new(
        r#"connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\), (?:sin6_flowinfo=[^,]*, )?(?:sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")"#,
    )
    .unwrap();
    let mut seen = BTreeSet::new();
    for c in addr.captures_iter(&text) {
        let ip = c.get(2).or(c.get(3)).unwrap().as_str();
        let ip: std::net::IpAddr = ip.parse().unwrap();
        if !ip.is_loopback() {
            seen.insert(format!("{ip}:{}", &c[1]));
        }
    }
    // The detector must see connects at all: every AF_INET connect line
    // is parsed.
    let inet_lines = text
        .lines()
        .filter(|l| l.contains("connect(") && l.contains("AF_INET"))
        .count();
    let parsed = addr.captures_iter(&text).count();
    assert_eq!(
        inet_lines,
        parsed,
        "unparsed connect lines in {}",
        trace.display()
    );
    (std::fs::read_to_string(&dom).unwrap(), seen)
}

/// Attributes of every `<td …>` of the DOM.
fn cells(dom: &str) -> Vec<BTreeMap<String, String>> {
    let td = regex::Regex::new(r"<td ([^>]*)>").unwrap();
    let attr = regex::Regex::new(r#"([a-z-]+)="([^"]*)""#).unwrap();
    td.captures_iter(dom)
        .map(|c| {
            attr.captures_iter(&c[1])
                .map(|a| (a[1].to_string(), a[2].to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn the_html_report_in_chromium_shows_the_matrix_and_fetches_nothing() {
    let sb = Sandbox::new("html::chromium");
    let args = crate::merge::fixture_args();
    let page = sb.path("cluster.html");
    let r = av([
        "merge",
        "--format",
        "html",
        "--output",
        page.to_str().unwrap(),
    ]
    .into_iter()
    .map(String::from)
    .chain(args.iter().cloned()));
    r.code(1);
    let html = std::fs::read_to_string(&page).unwrap();
    let json = av(["merge", "--format", "json"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned()))
    .json();

    // Nothing in the page names anything to fetch, and its policy forbids it.
    for needle in ["src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(needle), "the page holds {needle}");
    }
    assert!(html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-"));

    let blank = sb.write("blank.html", "<!DOCTYPE html><html><body></body></html>");
    let (_, baseline) = load(&sb, &blank, "blank", &[]);

    // Negative control: a page that fetches the canary is seen doing so.
    let control = sb.write(
        "control.html",
        format!(
            "<!DOCTYPE html><html><body><img src=\"http://{CANARY}/control.png\"></body></html>"
        ),
    );
    let (_, seen) = load(&sb, &control, "control", &[]);
    assert!(
        seen.contains(&format!("{CANARY}:80")),
        "the detector missed the control page's fetch: {seen:?}"
    );

    // The report: the script ran (under the policy's hashes), the matrix
    // cells carry the states of the JSON report's matrix, and nothing
    // beyond the blank page's own connects.
    let (dom, seen) = load(&sb, &page, "report", &[]);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script did not run"
    );
    let extra: Vec<_> = seen.difference(&baseline).collect();
    assert!(extra.is_empty(), "the report connected to {extra:?}");
    let in_dom: BTreeMap<(String, String, String, String), String> = cells(&dom)
        .into_iter()
        .filter(|c| c.contains_key("data-protocol"))
        .map(|c| {
            (
                (
                    c["data-source"].clone(),
                    c["data-destination"].clone(),
                    c["data-protocol"].clone(),
                    c["data-port"].clone(),
                ),
                c["data-state"].clone(),
            )
        })
        .collect();
    let in_json: BTreeMap<(String, String, String, String), String> = json["matrix"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    c["source"].as_str().unwrap().to_string(),
                    c["destination"].as_str().unwrap().to_string(),
                    c["protocol"].as_str().unwrap().to_string(),
                    c["port"]
                        .as_u64()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(in_json.len() > 50, "{} cells", in_json.len());
    assert_eq!(in_dom, in_json);
    let key = |s: &str, d: &str, p: &str, port: &str| {
        (
            s.to_string(),
            d.to_string(),
            p.to_string(),
            port.to_string(),
        )
    };
    assert_eq!(in_dom[&key("node1", "node2", "udp", "8472")], "filtered");
    assert_eq!(in_dom[&key("node2", "node3", "tcp", "10250")], "closed");
    assert_eq!(in_dom[&key("node3", "node2", "udp", "8472")], "open");
    let wrong = in_dom
        .values()
        .filter(|s| !["open", "blocked"].contains(&s.as_str()))
        .count();
    assert_eq!(wrong, 2);
    // The pair grid marks the two pairs with a problem.
    let mixed: Vec<(String, String)> = cells(&dom)
        .into_iter()
        .filter(|c| c.get("data-state").map(String::as_str) == Some("mixed"))
        .map(|c| (c["data-source"].clone(), c["data-destination"].clone()))
        .collect();
    assert_eq!(
        mixed,
        vec![
            ("node1".to_string(), "node2".to_string()),
            ("node2".to_string(), "node3".to_string())
        ]
    );

    // The policy blocks a fetch even if one got into the page.
    let injected = html.replacen(
        "<body data-verdict=\"fail\">",
        &format!("<body data-verdict=\"fail\"><img src=\"http://{CANARY}/injected.png\">"),
        1,
    );
    assert_ne!(injected, html);
    let injected = sb.write("injected.html", injected);
    let (_, seen) = load(&sb, &injected, "injected", &[]);
    let extra: Vec<_> = seen.difference(&baseline).collect();
    assert!(
        extra.is_empty(),
        "the policy let a fetch through: {extra:?}"
    );

    // A screenshot; `UPDATE_DOCS=1` puts it in docs/ for the README.
    let shot = sb.path("cluster.png");
    let (_, seen) = load(
        &sb,
        &page,
        "screenshot",
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1900",
            "--hide-scrollbars",
        ],
    );
    assert!(seen.difference(&baseline).next().is_none());
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 50_000, "{} bytes", png.len());
    // Printed, it is A4 (594.96 x 841.92 points, as Chromium rounds it).
    let pdf = sb.path("cluster.pdf");
    let (_, seen) = load(
        &sb,
        &page,
        "pdf",
        &[
            &format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer",
        ],
    );
    assert!(seen.difference(&baseline).next().is_none());
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&bytes);
    let boxes: Vec<(f64, f64)> = regex::Regex::new(r"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]")
        .unwrap()
        .captures_iter(&text)
        .map(|c| (c[1].parse().unwrap(), c[2].parse().unwrap()))
        .collect();
    assert!(boxes.len() >= 2, "{} pages", boxes.len());
    for (w, h) in boxes {
        assert!(
            (w - 595.0).abs() < 2.0 && (h - 842.0).abs() < 2.0,
            "a page of {w} x {h} points, not A4"
        );
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/html-report.png"),
            &png,
        )
        .unwrap();
    }
}

/// Text from the input is escaped: a member name made of markup shows as
/// text, never as an element.
#[test]
fn markup_in_findings_is_text() {
    let sb = Sandbox::new("html::escaped");
    let name = "<img src=x onerror=alert(1)>\"'&.txt";
    let t = crate::harness::tarkit::RawTar::new()
        .file(&format!("/{name}"), b"x")
        .finish();
    let tar = sb.write("a.tar", &t);
    let r = av([
        "bundle",
        tar.to_str().unwrap(),
        "--no-content",
        "--no-progress",
        "--format",
        "html",
    ]);
    r.code(1);
    assert!(!r.stdout.contains("<img"), "raw markup in the page");
    assert!(
        r.stdout
            .contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;.txt"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.starts_with("<!DOCTYPE html>"));
}
