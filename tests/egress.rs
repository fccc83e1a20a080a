//! `airgap-verify egress`, the proof of the air gap, and its part of `check`.
//!
//! - static: against the loopback lab (root namespace): endpoints and DNS
//!   answers outside `allowed_networks`, proxies from the environment and
//!   from a vendor config.yml, a CIDR in no_proxy that does not match a host
//!   name, passwords never shown;
//! - `--probe-internet` runs only inside network namespaces: in `agv-airgap`
//!   (only `lo`, no route out: everything is blocked), and against a fake
//!   "internet" of two namespaces this test builds (a leaky resolver, a TCP
//!   listener on 443, an NTP responder on public addresses): every answer is
//!   a finding. Nothing ever leaves the machine.
//! - the tool itself: the full `check` (archive, services, write probes,
//!   egress with `--probe-internet --strict-airgap`) inside `agv-airgap`
//!   passes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::lab::Lab;
use crate::harness::{Run, Sandbox, BIN};

/// Proxy variables of the test's own environment must not leak into runs.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

fn cmd(netns: Option<&str>) -> Command {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    c.env("NO_COLOR", "1");
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command) -> (Run, Duration) {
    let started = Instant::now();
    let out = c.output().expect("run airgap-verify");
    (Run::from(out), started.elapsed())
}

fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test builds or enters network namespaces: run it as root (the CI does)"
    );
}

/// `KEY=value` lines of the air-gapped service lab (scripts/netlab.sh airgap-lab).
fn airgap_lab() -> HashMap<String, String> {
    require_root();
    let dir = PathBuf::from(
        std::env::var("AIRGAP_NETLAB_LAB_DIR")
            .unwrap_or_else(|_| "/var/tmp/airgap-lab-netns".into()),
    );
    let text = std::fs::read_to_string(dir.join("lab.env")).unwrap_or_else(|e| {
        panic!(
            "the air-gapped service lab is not up ({}: {e}); run `scripts/netlab.sh up && scripts/netlab.sh airgap-lab` (scripts/test.sh does it)",
            dir.join("lab.env").display()
        )
    });
    let env: HashMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ns = env.get("AIRGAP_LAB_NETNS").cloned().unwrap_or_default();
    assert!(
        !ns.is_empty() && Path::new("/run/netns").join(&ns).exists(),
        "{}: the lab is not running inside a network namespace (AIRGAP_LAB_NETNS={ns:?}); run `scripts/netlab.sh airgap-lab`",
        dir.display()
    );
    // The namespace must really have no way out: only `lo`.
    let links = Command::new("ip")
        .args(["-n", &ns, "-o", "link", "show"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        links.lines().count() == 1 && links.contains(": lo:"),
        "namespace {ns} must hold only lo, got:\n{links}"
    );
    env
}

#[test]
fn egress_static_endpoints_dns_answers_and_proxies() {
    let sb = Sandbox::new("egress::static");
    let lab = Lab::get();
    let cfg = sb.write(
        "perimeter.yml",
        lab.config(&format!(
            "dns: {{servers: [{dns}], public_names: []}}\nntp:\n  servers: [{ntp}, 203.0.113.9]\ngit:\n  url: {git}\nregistry:\n  url: {reg}\n  project: sekoia\ns3:\n  endpoint: https://{leak}\n",
            dns = lab.var("DNS_AUTH_ADDR"),
            ntp = lab.var("NTP_ADDR"),
            git = lab.var("GIT_REPO_URL"),
            reg = lab.var("REGISTRY_URL"),
            leak = lab.var("DNS_LEAK_NAME"),
        )),
    );
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sekoia/config-proxies.yml");
    let egress = |format: &str| {
        run(cmd(None)
            .arg("egress")
            .arg("--config")
            .arg(&cfg)
            .arg("--sekoia-config")
            .arg(&vendor)
            .args(["--format", format, "--no-progress", "--timeout", "1s"])
            .env("HTTPS_PROXY", "http://ops:env-sentinel-pw@127.0.0.99:3128")
            .env(
                "NO_PROXY",
                format!("localhost,127.0.0.0/8,{}", lab.var("REGISTRY_HOST")),
            ))
    };
    let (r, took) = egress("json");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    r.code(1);

    // An address written outside, and a name the DNS resolves outside.
    let f = r.has("egress:outside", "fail", "ntp server 203.0.113.9");
    assert_eq!(f.evidence["outside"][0], "203.0.113.9");
    let f = r.has("egress:outside", "fail", lab.var("DNS_LEAK_NAME"));
    assert_eq!(f.evidence["outside"][0], lab.var("DNS_LEAK_ADDR"));
    assert_eq!(
        f.evidence["via"],
        format!("{}:53", lab.var("DNS_AUTH_ADDR"))
    );
    // Inside: with the address the DNS gave.
    let f = r.has("egress:inside", "pass", lab.var("GIT_REPO_URL"));
    assert_eq!(f.evidence["addresses"][0], lab.var("GIT_ADDR"));
    r.has(
        "egress:inside",
        "pass",
        &format!("ntp server {}", lab.var("NTP_ADDR")),
    );

    // The environment's proxy: reported with what it routes; the registry is
    // in NO_PROXY by name; Git only by a CIDR, which never matches a name.
    let f = r.has("egress:proxy", "warn", "HTTPS_PROXY");
    assert_eq!(f.evidence["url"], "http://ops:***@127.0.0.99:3128");
    assert_eq!(f.evidence["scope"], "environment");
    let routed = f.evidence["routed"].to_string();
    assert!(routed.contains(lab.var("GIT_HOST")), "{routed}");
    assert!(!routed.contains(lab.var("REGISTRY_HOST")), "{routed}");
    assert!(f.evidence["bypassed"]
        .to_string()
        .contains(lab.var("REGISTRY_HOST")));
    let not_bypassed = |scope: &str, service: &str| {
        r.findings().into_iter().find(|f| {
            f.code == "egress:proxy-not-bypassed"
                && f.evidence["scope"] == scope
                && f.evidence["service"] == service
        })
    };
    let git = not_bypassed("environment", "git").expect("git not bypassed in the environment");
    assert_eq!(git.status, "fail");
    assert_eq!(git.evidence["cidr_entry"], "127.0.0.0/8");
    assert!(
        git.message.contains("a CIDR never matches a host name"),
        "{}",
        git.message
    );
    assert!(not_bypassed("environment", "s3").is_some());
    assert!(not_bypassed("environment", "registry").is_none());

    // The vendor's proxies: the platform's no_proxy covers the domain; k3s's
    // holds only CIDRs (the registry goes through its proxy); Git's proxy has
    // no bypass list.
    for service in ["git", "registry", "s3"] {
        assert!(not_bypassed("platform", service).is_none(), "{service}");
    }
    let k3s = not_bypassed("k3s", "registry").expect("registry through the k3s proxy");
    assert_eq!(k3s.evidence["cidr_entry"], "127.0.0.0/8");
    assert!(
        not_bypassed("k3s", "git").is_none(),
        "k3s does not carry Git"
    );
    assert!(not_bypassed("git", "git").is_some());
    let f = r.has(
        "egress:proxy",
        "warn",
        "modules.platform_configuration.config.proxy.https_proxy",
    );
    assert_eq!(f.evidence["url"], "http://svc:***@proxy.corp.internal:3128");
    r.has(
        "egress:proxy",
        "warn",
        "modules.k3s_install.k3s_https_proxy",
    );
    r.has("egress:proxy", "warn", "utils.git.http.proxy");
    // No public target was contacted; the report says which it would use.
    let f = r.has("egress:not-probed", "skip", "--probe-internet");
    assert_eq!(f.evidence["internet_addresses"][0], "1.1.1.1:443");
    r.lacks("egress:blocked").lacks("egress:tcp-connected");
    // No service probe ran.
    r.lacks("dns:answer").lacks("ntp:synchronised");

    // Passwords never appear, in any format.
    for format in ["json", "human", "sarif", "junit", "html"] {
        let (r, _) = egress(format);
        for secret in ["env-sentinel-pw", "vendor-sentinel-pw"] {
            assert!(
                !r.stdout.contains(secret) && !r.stderr.contains(secret),
                "{secret} in the {format} report"
            );
        }
    }

    // Without any proxy: one pass says so.
    let (r, _) = run(cmd(None).arg("egress").arg("--config").arg(&cfg).args([
        "--format",
        "json",
        "--no-progress",
        "--timeout",
        "1s",
    ]));
    r.code(1).has("egress:proxy-none", "pass", "proxies");
    r.lacks("egress:proxy");

    // --dry-run lists the public targets and contacts nothing.
    let (r, _) = run(cmd(None)
        .arg("egress")
        .arg("--config")
        .arg(&cfg)
        .args(["--probe-internet", "--dry-run"]));
    r.code(0);
    for t in ["example.com", "1.1.1.1:443", "162.159.200.1:123"] {
        assert!(r.stdout.contains(t), "{t} not listed:\n{}", r.stdout);
    }
}

#[test]
fn egress_bad_input_is_one_line_exit_2() {
    let sb = Sandbox::new("egress::bad_input");
    let cfg = sb.write(
        "perimeter.yml",
        "allowed_networks: [10.0.0.0/8]\negress:\n  internet_addresses: [one.one.one.one]\n",
    );
    let (r, _) = run(cmd(None).arg("egress").arg("--config").arg(&cfg));
    r.code(2);
    assert!(
        r.stderr.contains("egress.internet_addresses") && r.stderr.contains("not an IP address"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn egress_probe_internet_in_the_airgap_namespace_is_all_blocked() {
    let env = airgap_lab();
    let ns = &env["AIRGAP_LAB_NETNS"];
    let (r, took) = run(cmd(Some(ns))
        .arg("egress")
        .arg("--config")
        .arg(&env["PERIMETER_YML"])
        .args([
            "--probe-internet",
            "--strict-airgap",
            "--format",
            "json",
            "--no-progress",
        ]));
    r.code(0).clean();
    // Default deadline 2 s, everything in parallel.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    for t in [
        "1.1.1.1:443",
        "8.8.8.8:443",
        "9.9.9.9:443",
        "162.159.200.1:123",
        "216.239.35.0:123",
    ] {
        r.has("egress:blocked", "pass", t);
    }
    for server in ["127.0.0.10:53/udp", "127.0.0.11:53/udp"] {
        let f = r.has("egress:blocked", "pass", server);
        assert_eq!(f.evidence["check"], "dns");
    }
    r.lacks("egress:dns-answered")
        .lacks("egress:tcp-connected")
        .lacks("egress:ntp-answered")
        .lacks("egress:not-probed");
    r.has("egress:inside", "pass", "smtp relay");
}

/// A fake internet built for one test: namespace `IN` (10.99.0.2, default
/// route out) and namespace `NET` holding the "public" addresses, a resolver
/// that answers every name (10.99.0.1:53), TCP 443 and NTP. Removed on drop.
struct FakeInternet {
    inside: String,
    net: String,
    responder: Child,
}

const RESPONDER: &str = r#"
import socket, struct, sys, threading
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 443)); s.listen(16)
    while True:
        c, _ = s.accept(); c.close()
def ntp(u):
    while True:
        b, a = u.recvfrom(512)
        if len(b) < 48: continue
        r = bytearray(48); r[0] = 0x24; r[1] = 2; r[12:16] = bytes([10, 99, 0, 1])
        r[24:32] = b[40:48]; r[32:40] = b[40:48]; r[40:48] = b[40:48]
        u.sendto(bytes(r), a)
def dns(u):
    while True:
        b, a = u.recvfrom(512)
        i = 12
        while b[i]: i += b[i] + 1
        q = b[12:i + 5]; qtype = struct.unpack(">H", b[i + 1:i + 3])[0]
        ans = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([203, 0, 113, 80]) if qtype == 1 else b""
        u.sendto(b[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1 if ans else 0, 0, 0) + q + ans, a)
n = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); n.bind(("203.0.113.123", 123))
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.bind(("10.99.0.1", 53))
for f, a in ((tcp, ()), (ntp, (n,)), (dns, (d,))):
    threading.Thread(target=f, args=a, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"#;

impl FakeInternet {
    fn up(tag: &str) -> FakeInternet {
        require_root();
        let id = format!("{}{tag}", std::process::id() % 100_000);
        let inside = format!("agv-egin{id}");
        let net = format!("agv-egnet{id}");
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for n in [&inside, &net] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", &inside, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &net,
        ]);
        ip(&["-n", &inside, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
        ip(&["-n", &inside, "link", "set", "eth0", "up"]);
        ip(&["-n", &inside, "route", "add", "default", "via", "10.99.0.1"]);
        ip(&["-n", &net, "addr", "add", "10.99.0.1/24", "dev", "eth0"]);
        ip(&["-n", &net, "link", "set", "eth0", "up"]);
        for a in ["203.0.113.80/32", "203.0.113.123/32"] {
            ip(&["-n", &net, "addr", "add", a, "dev", "lo"]);
        }
        let mut responder = Command::new("ip")
            .args(["netns", "exec", &net, "python3", "-c", RESPONDER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 for the fake internet's responders");
        let mut line = String::new();
        BufReader::new(responder.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("responder output");
        let fake = FakeInternet {
            inside,
            net,
            responder,
        };
        assert_eq!(
            line.trim(),
            "ready",
            "the fake internet's responders did not start"
        );
        fake
    }
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        let _ = self.responder.kill();
        let _ = self.responder.wait();
        for n in [&self.inside, &self.net] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

#[test]
fn egress_probe_internet_answers_are_findings() {
    let sb = Sandbox::new("egress::fake_internet");
    let inet = FakeInternet::up("a");
    // 203.0.113.81 is routed to the fake internet, which does not hold it:
    // that attempt must fail at its deadline while the others answer.
    let cfg = sb.write(
        "perimeter.yml",
        "allowed_networks: [10.99.0.0/24]\ndns: {servers: [10.99.0.1], public_names: []}\negress:\n  internet_names: [example.com]\n  internet_addresses: [203.0.113.80, 203.0.113.81]\n  ntp_pool: [203.0.113.123]\n  deadline: 1s\n",
    );
    let egress = |extra: &[&str]| {
        run(cmd(Some(&inet.inside))
            .arg("egress")
            .arg("--config")
            .arg(&cfg)
            .args(["--probe-internet", "--format", "json", "--no-progress"])
            .args(extra))
    };
    let (r, took) = egress(&[]);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    r.code(0);
    let f = r.has(
        "egress:dns-answered",
        "warn",
        "10.99.0.1:53/udp example.com",
    );
    assert_eq!(f.evidence["answers"][0], "203.0.113.80");
    r.has("egress:tcp-connected", "warn", "203.0.113.80:443");
    let f = r.has("egress:blocked", "pass", "203.0.113.81:443");
    assert_eq!(f.evidence["error"], "net:timeout");
    let f = r.has("egress:ntp-answered", "warn", "203.0.113.123:123");
    assert_eq!(f.evidence["stratum"], 2);
    r.has("egress:inside", "pass", "dns server 10.99.0.1");

    let (r, _) = egress(&["--strict-airgap"]);
    r.code(1);
    for (code, target) in [
        ("egress:dns-answered", "example.com"),
        ("egress:tcp-connected", "203.0.113.80:443"),
        ("egress:ntp-answered", "203.0.113.123:123"),
    ] {
        let f = r.has(code, "fail", target);
        assert_eq!(f.evidence["strict_airgap"], true);
    }
    r.has("egress:blocked", "pass", "203.0.113.81:443");
}

#[test]
fn check_runs_whole_inside_the_airgap_namespace_and_passes() {
    let env = airgap_lab();
    let sb = Sandbox::new("egress::check_in_airgap");
    let archive = sb.sample();
    // The lab's own perimeter.yml, plus Git and S3 so that --write-probe
    // writes (and removes) a ref and an object. The registry is left out:
    // the sample release's images are not in the lab's registry.
    let base = std::fs::read_to_string(&env["PERIMETER_YML"]).expect("the lab's perimeter.yml");
    let cfg = sb.write(
        "perimeter.yml",
        format!(
            "{base}git:\n  url: {}\n  username: {}\n  password_env: LAB_GIT_PASSWORD\ns3:\n  endpoint: {}\n  region: {}\n  buckets: [{}]\n  access_key: {}\n  secret_key_env: LAB_S3_SECRET\n",
            env["GIT_REPO_URL"],
            env["GIT_USER"],
            env["S3_ENDPOINT"],
            env["S3_REGION"],
            env["S3_BUCKET"],
            env["S3_ACCESS_KEY"],
        ),
    );
    let (r, took) = run(cmd(Some(&env["AIRGAP_LAB_NETNS"]))
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .arg("--bundle")
        .arg(&archive)
        .args([
            "--write-probe",
            "--probe-internet",
            "--strict-airgap",
            "--format",
            "json",
            "--no-progress",
        ])
        .env("SMTP_PASSWORD", &env["SMTP_PASSWORD"])
        .env("LAB_GIT_PASSWORD", &env["GIT_PASSWORD"])
        .env("LAB_S3_SECRET", &env["S3_SECRET_KEY"]));
    r.code(0).clean();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // All three parts ran: the archive, the services, the egress proof.
    r.has("bundle:checksum-verified", "pass", "");
    r.has("dns:answer", "pass", "smtp.perimeter.test");
    r.has("git:write-probe", "pass", "");
    r.has("s3:write-probe", "pass", "");
    r.has("egress:inside", "pass", "smtp relay");
    r.has("egress:blocked", "pass", "1.1.1.1:443");
    r.has("egress:proxy-none", "pass", "proxies");
    r.lacks("egress:not-probed");
}
