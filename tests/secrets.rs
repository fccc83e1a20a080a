//! Secrets (issue #7, item 6): every command that reads credentials runs
//! with sentinel values, by reference and written into URLs, and no output
//! format, no stderr line and no error message may contain them. A password
//! written in a URL is a `config:credential-in-url` warning naming the
//! setting. Needs no lab: the targets are in-process fakes on 127.0.0.1
//! that answer 401, so the probes really run and report.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::harness::{Run, Sandbox, BIN};

const ENV_SECRET: &str = "SENTINEL-env-9b1e44";
const FILE_SECRET: &str = "SENTINEL-file-3c7d02";
const GIT_URL_SECRET: &str = "SENTINEL-giturl-a5f0";
const REG_URL_SECRET: &str = "SENTINEL-regurl-d17c";
const S3_URL_SECRET: &str = "SENTINEL-s3url-6e2b";
const PROXY_SECRET: &str = "SENTINEL-proxy-40aa";

/// An HTTP server answering 401 with a Basic challenge to everything.
fn http_401() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().take(256) {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 8192];
                // One request per connection is enough for every probe here.
                if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    let _ = s.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"fake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    addr
}

/// Every form a sentinel could leak in: as is, and base64 of it alone and
/// in the Basic and AUTH PLAIN shapes.
fn forbidden() -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for s in [
        ENV_SECRET,
        FILE_SECRET,
        GIT_URL_SECRET,
        REG_URL_SECRET,
        S3_URL_SECRET,
        PROXY_SECRET,
    ] {
        out.push(s.to_string());
        out.push(b64.encode(s));
        for user in ["pusher", "reguser", "probe"] {
            out.push(b64.encode(format!("{user}:{s}")));
            out.push(b64.encode(format!("\0{user}\0{s}")));
        }
    }
    out
}

fn assert_clean(what: &str, r: &Run) {
    for s in forbidden() {
        assert!(
            !r.stdout.contains(&s),
            "{what}: stdout holds a secret form {s}"
        );
        assert!(
            !r.stderr.contains(&s),
            "{what}: stderr holds a secret form {s}"
        );
    }
}

fn perimeter(sb: &Sandbox) -> std::path::PathBuf {
    let http = http_401();
    sb.write("pw.txt", format!("{FILE_SECRET}\n"));
    sb.write(
        "perimeter.yml",
        format!(
            "allowed_networks: [127.0.0.0/8]\n\
             smtp:\n  - {{host: 127.0.0.1, port: 9, starttls: false, username: probe, password_env: AGV_SENTINEL}}\n\
             git: {{url: 'http://pusher:{GIT_URL_SECRET}@{http}/sekoia/stacks.git'}}\n\
             registry: {{url: 'http://reguser:{REG_URL_SECRET}@{http}', project: sekoia, username: reguser, password_file: pw.txt}}\n\
             s3: {{endpoint: 'http://ak:{S3_URL_SECRET}@{http}', buckets: [b], access_key: AKSENTINELSENTINEL01, secret_key_env: AGV_SENTINEL}}\n\
             egress: {{internet_addresses: [], ntp_pool: [], internet_names: []}}\n\
             flows: {{orchestration: 127.0.0.1, managers: [127.0.0.2], workers: [127.0.0.3], load_balancer: 127.0.0.4}}\n"
        ),
    )
}

fn run(sb: &Sandbox, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(sb.path("perimeter.yml"))
        .env("AGV_SENTINEL", ENV_SECRET)
        .env(
            "HTTPS_PROXY",
            format!("http://proxyuser:{PROXY_SECRET}@127.0.0.1:3128"),
        )
        .output()
        .expect("run airgap-verify");
    Run::from(out)
}

/// services, check, egress and flows, in every output format: no sentinel
/// anywhere, and each password written in a URL is one warning that names
/// its setting.
#[test]
fn sentinels_appear_in_no_command_and_no_format() {
    let sb = Sandbox::new("secrets::every_command");
    perimeter(&sb);
    let mut runs = 0;
    for cmd in [
        &["services", "--write-probe"][..],
        &["check"][..],
        &["egress"][..],
        &["flows", "--role", "orchestration"][..],
    ] {
        for format in ["human", "json", "junit", "sarif", "html"] {
            let mut args = cmd.to_vec();
            args.extend([
                "--format",
                format,
                "--timeout",
                "500ms",
                "--color",
                "always",
                "--no-progress",
            ]);
            // Every finding of the human report, passes included.
            if format == "human" {
                args.push("-v");
            }
            let r = run(&sb, &args);
            assert_ne!(r.code, 2, "{cmd:?} {format}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
            assert!(
                r.stdout.len() > 100,
                "{cmd:?} {format}: a real report: {}",
                r.stdout
            );
            assert_clean(&format!("{cmd:?} {format}"), &r);
            runs += 1;
        }
        // Dry runs print the plan: the URLs there must be clean too.
        if cmd[0] != "check" {
            let r = run(&sb, &[cmd[0], "--dry-run"]);
            assert_clean(&format!("{cmd:?} --dry-run"), &r);
        }
    }
    assert_eq!(runs, 20);

    // The warnings, by setting, from the JSON report of `services`.
    let r = run(&sb, &["services", "--format", "json", "--timeout", "500ms"]);
    for setting in ["git.url", "registry.url", "s3.endpoint"] {
        let f = r.has("config:credential-in-url", "warn", setting);
        assert!(f.message.contains("by reference"), "{}", f.message);
    }
    // The registry's password came by reference, so the one in the URL was
    // ignored; Git had none, so the URL's is used (and still not printed).
    let f = r.has("config:credential-in-url", "warn", "registry.url");
    assert!(f.message.contains("ignored"), "{}", f.message);
    let f = r.has("config:credential-in-url", "warn", "git.url");
    assert!(f.message.contains("used for this run"), "{}", f.message);
}

/// A configuration error about a URL that holds a password names the file
/// and the field, exits 2, and does not print the password: the password
/// is split off before any message names the URL.
#[test]
fn a_bad_url_with_a_password_is_refused_without_printing_it() {
    let sb = Sandbox::new("secrets::bad_url");
    for (field, yaml) in [
        (
            "registry.url",
            format!("registry: {{url: 'ftp://u:{REG_URL_SECRET}@reg.corp', project: x}}\n"),
        ),
        (
            "git.url",
            format!("git: {{url: 'https://u:{GIT_URL_SECRET}@git.corp'}}\n"),
        ),
        (
            "s3.endpoint",
            format!("s3: {{endpoint: 'ftp://u:{S3_URL_SECRET}@/x', buckets: [b]}}\n"),
        ),
    ] {
        sb.write("perimeter.yml", yaml);
        let r = run(&sb, &["services", "--format", "json"]);
        r.code(2);
        assert!(
            r.stderr.contains("perimeter.yml") && r.stderr.contains(field),
            "{}",
            r.stderr
        );
        assert_clean(field, &r);
    }
}
