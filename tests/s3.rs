//! The S3 probe against the lab's SeaweedFS (real SigV4 checks, IAM users).

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::lab::{services_env, Lab, Timed};
use crate::harness::slowlink::{interrupt, spawn_services, wait_for, SlowLink};
use crate::harness::Sandbox;

const ONE: Duration = Duration::from_secs(1);

/// The tests share one bucket and assert it is left clean: one at a time.
static BUCKET: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    BUCKET.lock().unwrap_or_else(|p| p.into_inner())
}

fn yaml(lab: &Lab, extra: &str, access_key: &str) -> String {
    lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\ns3:\n  endpoint: {}\n  access_key: {access_key}\n  secret_key_env: LAB_S3_SECRET\n{extra}",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("S3_ENDPOINT"),
    ))
}

fn run(sb: &Sandbox, yaml: &str, secret: &str) -> Timed {
    services_env(sb, yaml, "1s", &[], &[("LAB_S3_SECRET", secret)])
}

/// Entries of a folder of SeaweedFS's filer (the storage behind the S3
/// gateway), read over its own HTTP API: an independent view of what the
/// probe left.
fn filer_entries(lab: &Lab, path: &str) -> Vec<String> {
    let mut s = std::net::TcpStream::connect((lab.var("S3_ADDR"), 8888)).expect("filer");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
        lab.var("S3_ADDR")
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if head.starts_with("HTTP/1.1 404") || head.starts_with("HTTP/1.0 404") {
        return Vec::new();
    }
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("filer: {e}: {resp}"));
    v["Entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["FullPath"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_clean(lab: &Lab) {
    let bucket = lab.var("S3_BUCKET");
    assert_eq!(
        filer_entries(lab, &format!("/buckets/{bucket}/airgap-verify-probe/")),
        Vec::<String>::new(),
        "probe objects left"
    );
    let temp: Vec<_> = filer_entries(lab, "/buckets/")
        .into_iter()
        .filter(|b| b.contains("airgap-verify-probe-"))
        .collect();
    assert!(temp.is_empty(), "temporary buckets left: {temp:?}");
}

#[test]
fn s3_pass_bucket_write_probe_and_cleanup() {
    let _one = exclusive();
    let sb = Sandbox::new("s3::pass");
    let lab = Lab::get();
    let ep = lab.var("S3_ENDPOINT");
    let bucket = lab.var("S3_BUCKET");
    let y = yaml(
        &lab,
        &format!(
            "  region: {}\n  buckets: [{bucket}]\n",
            lab.var("S3_REGION")
        ),
        lab.var("S3_ACCESS_KEY"),
    );
    let t = run(&sb, &y, lab.var("S3_SECRET_KEY"));
    let r = t.within(ONE);
    r.code(0).clean();
    r.has("tls:verified", "pass", ep);
    let f = r.has("s3:bucket-ok", "pass", &format!("{ep} {bucket}"));
    assert_eq!(f.evidence["addressing"], "path-style");
    let f = r.has("s3:write-probe", "pass", &format!("{ep} {bucket}"));
    assert!(f.evidence["key"]
        .as_str()
        .unwrap()
        .starts_with("airgap-verify-probe/"));
    assert_clean(&lab);

    // No bucket named (as with the vendor's config.yml): list, then probe
    // in a temporary bucket that is removed.
    let y = yaml(&lab, "", lab.var("S3_ACCESS_KEY"));
    let r = run(&sb, &y, lab.var("S3_SECRET_KEY"));
    let r = r.within(ONE);
    r.code(0).clean();
    let f = r.has("s3:buckets-listed", "pass", ep);
    assert!(f.evidence["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b == bucket));
    r.has("s3:write-probe", "pass", "airgap-verify-probe-");
    assert_clean(&lab);
}

#[test]
fn s3_faults_each_have_their_code_and_leave_nothing() {
    let _one = exclusive();
    let sb = Sandbox::new("s3::faults");
    let lab = Lab::get();
    let ep = lab.var("S3_ENDPOINT");
    let bucket = lab.var("S3_BUCKET");
    let b = format!("  buckets: [{bucket}]\n");

    let r = run(
        &sb,
        &yaml(&lab, &b, "NOSUCHKEY0000000000"),
        lab.var("S3_SECRET_KEY"),
    );
    let f = r
        .within(ONE)
        .code(1)
        .has("s3:invalid-access-key", "fail", ep);
    assert_eq!(f.evidence["s3_code"], "InvalidAccessKeyId");

    let r = run(
        &sb,
        &yaml(&lab, &b, lab.var("S3_ACCESS_KEY")),
        "not-the-secret",
    );
    let f = r
        .within(ONE)
        .code(1)
        .has("s3:signature-mismatch", "fail", ep);
    assert_eq!(f.evidence["s3_code"], "SignatureDoesNotMatch");

    let r = run(
        &sb,
        &yaml(
            &lab,
            "  buckets: [no-such-bucket]\n",
            lab.var("S3_ACCESS_KEY"),
        ),
        lab.var("S3_SECRET_KEY"),
    );
    r.within(ONE)
        .code(1)
        .has("s3:bucket-missing", "fail", "no-such-bucket");

    // The read-only user reads and lists, but its writes are denied.
    let r = run(
        &sb,
        &yaml(&lab, &b, lab.var("S3_RO_ACCESS_KEY")),
        lab.var("S3_RO_SECRET_KEY"),
    );
    let r2 = r.within(ONE);
    r2.code(1).has("s3:bucket-ok", "pass", bucket);
    let f = r2.has("s3:access-denied", "fail", bucket);
    assert!(f.message.contains("write probe refused"), "{}", f.message);

    // Virtual-host addressing against a path-style server.
    let r = run(
        &sb,
        &yaml(
            &lab,
            &format!("{b}  path_style: false\n"),
            lab.var("S3_ACCESS_KEY"),
        ),
        lab.var("S3_SECRET_KEY"),
    );
    let f = r
        .within(ONE)
        .code(1)
        .has("s3:addressing-mismatch", "fail", bucket);
    assert_eq!(f.evidence["works"], "path-style");

    assert_clean(&lab);
}

/// The probe connects to the configured endpoint and the perimeter's DNS
/// server, and to nothing else (no instance metadata, no public endpoint):
/// every connect(2) of the process is recorded with strace.
#[test]
fn s3_probe_connects_only_to_the_endpoint_and_the_perimeter_dns() {
    let _one = exclusive();
    let sb = Sandbox::new("s3::connections");
    let lab = Lab::get();
    let y = yaml(
        &lab,
        &format!("  buckets: [{}]\n", lab.var("S3_BUCKET")),
        lab.var("S3_ACCESS_KEY"),
    );
    let cfg = sb.write("perimeter.yml", y);
    let trace = sb.path("connect.trace");
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=connect", "-o"])
        .arg(&trace)
        .arg(crate::harness::BIN)
        .args(["services", "--config"])
        .arg(&cfg)
        .args(["--format", "json", "--timeout", "1s"])
        .env("LAB_S3_SECRET", lab.var("S3_SECRET_KEY"))
        .output()
        .expect("strace (scripts/test.sh installs it)");
    let r = crate::harness::Run::from(out);
    r.code(0)
        .has("s3:write-probe", "pass", lab.var("S3_BUCKET"));
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut peers: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let ip = l.split("inet_addr(\"").nth(1)?.split('"').next()?;
            let port = l.split("sin_port=htons(").nth(1)?.split(')').next()?;
            Some(format!("{ip}:{port}"))
        })
        .collect();
    peers.sort();
    peers.dedup();
    let allowed = [
        format!("{}:53", lab.var("DNS_AUTH_ADDR")),
        format!("{}:443", lab.var("S3_ADDR")),
    ];
    assert!(!peers.is_empty(), "no connect recorded: {text}");
    for p in &peers {
        assert!(
            allowed.contains(p),
            "unexpected connection to {p}; all: {peers:?}"
        );
    }
    assert!(peers.contains(&allowed[1]), "{peers:?}");
}

/// SIGINT while the write probe's object sits on the storage and the probe
/// waits for the reply: the object is still removed, the partial report says
/// so, and the exit code is 130.
#[test]
fn s3_interrupt_mid_write_probe_removes_the_object() {
    let _one = exclusive();
    let sb = Sandbox::new("s3::interrupt");
    let lab = Lab::get();
    let bucket = lab.var("S3_BUCKET");
    let upstream = format!("{}:443", lab.var("S3_ADDR")).parse().unwrap();
    let link = SlowLink::start(lab.var("S3_ADDR"), upstream, Duration::from_millis(300));
    let ep = format!("https://{}", link.addr);
    let y = lab.config(&format!(
        "s3:\n  endpoint: {ep}\n  access_key: {}\n  secret_key_env: LAB_S3_SECRET\n  region: {}\n  buckets: [{bucket}]\n",
        lab.var("S3_ACCESS_KEY"),
        lab.var("S3_REGION"),
    ));
    let child = spawn_services(
        &sb,
        &y,
        &["--write-probe", "--timeout", "10s"],
        &[("LAB_S3_SECRET", lab.var("S3_SECRET_KEY"))],
    );
    let probe_dir = format!("/buckets/{bucket}/airgap-verify-probe/");
    wait_for("the probe object", Duration::from_secs(20), || {
        !filer_entries(&lab, &probe_dir).is_empty()
    });
    let r = interrupt(child, "INT");
    r.code(130);
    assert_eq!(r.json()["interrupted"], "SIGINT", "{}", r.stdout);
    r.has("run:interrupted", "fail", &ep);
    let f = r.has("cleanup:removed", "pass", &ep);
    assert!(
        f.evidence["object"]
            .as_str()
            .unwrap()
            .contains(&format!("{bucket}/airgap-verify-probe/")),
        "{f:?}"
    );
    assert_clean(&lab);
}
