//! `merge`: hosts' JSON reports, written by real runs, read back and merged
//! into one report of the cluster; in the namespace lab, each host with its
//! own host name and machine id (`unshare --uts --mount` over `ip netns
//! exec`), as the cluster's real machines would have.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::harness::netlab::NetLab;
use crate::harness::{av, bundle, Run, Sandbox, BIN};

/// The four hosts of the matrix test, and the machine id each one has:
/// node3 is a clone of node2.
const HOSTS: [(&str, &str, &str); 4] = [
    ("orch", "orchestration", "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a01"),
    ("node1", "node", "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a02"),
    ("node2", "node", "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a03"),
    ("node3", "node", "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a03"),
];

/// Runs the binary in `host`'s namespace with its own host name and
/// machine id (both files Ansible reads), and returns what it printed.
fn as_host(n: &NetLab, sb: &Sandbox, host: &str, machine_id: &str, args: &[&str]) -> Run {
    let id = sb.write(&format!("{host}.machine-id"), format!("{machine_id}\n"));
    let script = format!(
        "hostname {host} && mount --bind {id} /etc/machine-id && mount --bind {id} /var/lib/dbus/machine-id && exec \"$@\"",
        id = id.display()
    );
    let out = Command::new("ip")
        .args(["netns", "exec", n.ns(host), "unshare", "--uts", "--mount"])
        .args(["sh", "-c", &script, "sh", BIN])
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

fn yaml(n: &NetLab) -> String {
    format!(
        "allowed_networks: [{}]\nca_bundle: {}\nflows:\n  profile: sekoia-1.0.0\n  deadline: 1s\n  load_balancer: {}\n  orchestration: {}\n  managers: [{}]\n  workers: [{}, {}, {}]\n",
        n.var("NETLAB_SUBNET"),
        n.var("CA_PEM"),
        n.addr("lb"),
        n.addr("orch"),
        n.addr("node1"),
        n.addr("node1"),
        n.addr("node2"),
        n.addr("node3"),
    )
}

/// (source, destination, service) -> state, from a report's matrix.
fn cells(v: &Value) -> BTreeMap<(String, String, String), String> {
    v["matrix"]["cells"]
        .as_array()
        .expect("matrix.cells")
        .iter()
        .map(|c| {
            let service = match c["port"].as_u64() {
                Some(p) => format!("{} {p}", c["protocol"].as_str().unwrap()),
                None => c["protocol"].as_str().unwrap().to_string(),
            };
            (
                (
                    c["source"].as_str().unwrap().to_string(),
                    c["destination"].as_str().unwrap().to_string(),
                    service,
                ),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn codes_at(v: &Value, code: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .map(|f| f["target"].as_str().unwrap().to_string())
        .collect()
}

/// Where the fixtures of the HTML and documentation tests live: the four
/// reports of [`real_flows_make_the_cluster_matrix`], rewritten by it with
/// `UPDATE_FIXTURES=1`.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/merge");

/// The fixture reports as `merge` arguments.
pub fn fixture_args() -> Vec<String> {
    HOSTS
        .iter()
        .map(|(h, _, _)| format!("{h}={FIXTURES}/{h}.json"))
        .collect()
}

/// Every host runs `flows` with its role; node2 drops UDP 8472 from node1
/// only, node3 rejects TCP 10250 from node2 only, node3's responder runs
/// 5 s ahead and node3 is a clone of node2 (same machine id). The merged
/// matrix shows exactly those two cells wrong, every other one as expected.
#[test]
fn real_flows_make_the_cluster_matrix() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("merge::matrix");
    let _r: Vec<_> = ["node1", "node2", "node3"]
        .iter()
        .map(|h| {
            let extra: &[&str] = if *h == "node3" {
                &["--clock-offset", "5s"]
            } else {
                &[]
            };
            n.responder(h, "node", extra)
        })
        .collect();
    n.fw(
        "node2",
        &format!("ip saddr {} udp dport 8472 drop", n.addr("node1")),
    );
    n.fw(
        "node3",
        &format!(
            "ip saddr {} tcp dport 10250 reject with tcp reset",
            n.addr("node2")
        ),
    );
    let cfg = sb.write("perimeter.yml", yaml(&n));
    let mut args = Vec::new();
    for (host, role, id) in HOSTS {
        let r = as_host(
            &n,
            &sb,
            host,
            id,
            &[
                "flows",
                "--role",
                role,
                "--config",
                cfg.to_str().unwrap(),
                "--format",
                "json",
                "--no-progress",
            ],
        );
        assert!(r.code == 0 || r.code == 1, "{host}: {}", r.stderr);
        let v = r.json();
        assert_eq!(v["host"], host, "the host name of the namespace");
        assert_eq!(v["machine_id"], id);
        assert_eq!(v["addresses"], serde_json::json!([n.addr(host)]));
        let path = sb.write(&format!("{host}.json"), &r.stdout);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::create_dir_all(FIXTURES).unwrap();
            std::fs::write(format!("{FIXTURES}/{host}.json"), &r.stdout).unwrap();
        }
        args.push(format!("{host}={}", path.display()));
    }
    let r = av(["merge", "--format", "json"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned()));
    r.code(1);
    let v = r.json();
    let m = cells(&v);
    let wrong: Vec<_> = m
        .iter()
        .filter(|(_, s)| !["open", "blocked"].contains(&s.as_str()))
        .collect();
    let key = |a: &str, b: &str, s: &str| (a.to_string(), b.to_string(), s.to_string());
    assert_eq!(
        wrong,
        vec![
            (&key("node1", "node2", "udp 8472"), &"filtered".to_string()),
            (&key("node2", "node3", "tcp 10250"), &"closed".to_string()),
        ],
        "exactly the two cells the firewalls break; matrix: {m:#?}"
    );
    // The same ports the other way, and from the other node, are open.
    assert_eq!(m[&key("node3", "node2", "udp 8472")], "open");
    assert_eq!(m[&key("node1", "node3", "tcp 10250")], "open");
    assert_eq!(m[&key("orch", "node1", "tcp 6443")], "open");
    // Every node tests every other node, and no node itself.
    for a in ["node1", "node2", "node3"] {
        for b in ["node1", "node2", "node3"] {
            let any = m.keys().any(|(s, d, _)| s == a && d == b);
            assert_eq!(any, a != b, "{a} -> {b}");
        }
    }
    // Each cell once: the matrix has as many cells as flow findings.
    let tested = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            [
                "flow:open",
                "flow:closed",
                "flow:filtered",
                "flow:blocked",
                "flow:not-blocked",
            ]
            .contains(&f["code"].as_str().unwrap())
        })
        .count();
    assert_eq!(m.len(), tested);
    let problems: Vec<&str> = v["matrix"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    // Every finding names its host; the summary is per host.
    for f in v["findings"].as_array().unwrap() {
        assert!(f["host"].is_string(), "{f}");
    }
    let hosts: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, vec!["orch", "node1", "node2", "node3"]);
    let fails: u64 = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["summary"]["fail"].as_u64().unwrap())
        .sum();
    assert!(fails <= v["summary"]["fail"].as_u64().unwrap());
    // node3 is a clone of node2; the names and addresses are distinct.
    assert_eq!(
        codes_at(&v, "cluster:duplicate-machine-id"),
        vec![HOSTS[2].2.to_string()]
    );
    assert!(codes_at(&v, "cluster:duplicate-hostname").is_empty());
    assert!(codes_at(&v, "cluster:duplicate-address").is_empty());
    // node3's clock against the median: named alone. Its responder alone
    // is shifted (`--clock-offset`), not its own flows run, so the two
    // directions between node3 and another node disagree and are averaged
    // (about 2.5 s): still more than the 1 s allowed.
    assert_eq!(codes_at(&v, "cluster:clock-skew"), vec!["node3"]);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "cluster:clock-skew")
        .unwrap();
    let skew = f["evidence"]["skew_ms"].as_i64().unwrap();
    assert!((2000..=5500).contains(&skew), "{f}");
    let mut ok = codes_at(&v, "cluster:clock-ok");
    ok.sort();
    assert_eq!(ok, vec!["node1", "node2", "orch"]);

    // The fixtures the HTML and documentation tests use hold this matrix.
    let f = av(["merge", "--format", "json"]
        .into_iter()
        .map(String::from)
        .chain(fixture_args()));
    assert_eq!(
        cells(&f.json()),
        m,
        "testdata/merge is stale: rerun this test with UPDATE_FIXTURES=1"
    );
}

/// The human format shows the matrix as a grid and the problems collapsed.
#[test]
fn the_human_report_draws_the_matrix() {
    let r = av(["merge", "--color", "never"]
        .into_iter()
        .map(String::from)
        .chain(fixture_args()));
    r.code(1);
    let grid: Vec<&str> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("flow matrix"))
        .collect();
    assert!(grid.len() > 5, "{}", r.stdout);
    assert!(
        grid[1].split_whitespace().eq(["node1", "node2", "node3"]),
        "{grid:?}"
    );
    let row = |h: &str| {
        grid.iter()
            .skip(2)
            .find(|l| l.split_whitespace().next() == Some(h))
            .unwrap_or_else(|| panic!("no row {h}: {grid:?}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    // node1's UDP 8472 to node2 is the one broken flow of that pair.
    let n1 = row("node1");
    assert_eq!(n1[0], "-");
    assert!(n1[1].ends_with('!') && !n1[2].ends_with('!'), "{n1:?}");
    assert!(
        r.stdout
            .contains("FAIL  UDP 8472 node1 -> node2: filtered (vxlan)"),
        "{}",
        r.stdout
    );
    // Each finding says which host saw it, and each host has its count.
    assert!(
        r.stdout
            .contains("FAIL  cluster:clock-skew  node3: node3's clock is"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("  node1  ") && l.contains(" fail")),
        "{}",
        r.stdout
    );
}

#[test]
fn merge_refuses_what_is_not_a_report_naming_the_file() {
    let sb = Sandbox::new("merge::refuses");
    let t = crate::harness::tarkit::RawTar::new()
        .file("a", b"x")
        .finish();
    let good = bundle(&sb.write("a.tar", &t), &["--no-content"]);
    let real: Value = good.json();
    let mut v2 = real.clone();
    v2["schema_version"] = 2.into();
    let mut unknown = real.clone();
    unknown["findings"][0]["code"] = "bundle:from-the-future".into();
    let cases: Vec<(&str, String, &str)> = vec![
        ("text.json", "not json {".into(), "not JSON"),
        (
            "foreign.json",
            r#"{"tool":{"name":"trivy"},"results":[]}"#.into(),
            "written by `trivy`",
        ),
        ("array.json", "[1, 2]".into(), "not an airgap-verify report"),
        ("v2.json", v2.to_string(), "schema version 2"),
        ("future.json", unknown.to_string(), "bundle:from-the-future"),
    ];
    let ok = sb.write("ok.json", &good.stdout);
    for (name, text, why) in cases {
        let bad = sb.write(name, text);
        let r = av([
            "merge",
            ok.to_str().unwrap(),
            &format!("h={}", bad.display()),
        ]);
        r.code(2);
        assert!(
            r.stderr.contains(&bad.display().to_string()) && r.stderr.contains(why),
            "{name}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = av(["merge", sb.path("missing.json").to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("missing.json"), "{}", r.stderr);
    // The good one alone merges, and its findings carry its host.
    let r = av(["merge", "--format", "json", &format!("h={}", ok.display())]);
    r.code(0);
    let v = r.json();
    assert_eq!(v["command"], "merge");
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["host"] == "h"));
    assert_eq!(v["inputs"][0]["kind"], "report");
}

/// A port one node drops for every source is one statement, not one line
/// per source: "UDP 8472 on node2 answers none of the 2 hosts that tested it".
#[test]
fn a_port_dropped_for_every_source_is_one_statement() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("merge::collapsed");
    let _r: Vec<_> = ["node1", "node2", "node3"]
        .iter()
        .map(|h| n.responder(h, "node", &[]))
        .collect();
    n.fw("node2", "udp dport 8472 drop");
    let cfg = sb.write("perimeter.yml", yaml(&n));
    let mut args = vec!["merge".to_string(), "--format".into(), "json".into()];
    for (host, role, id) in &HOSTS[1..] {
        let r = as_host(
            &n,
            &sb,
            host,
            id,
            &[
                "flows",
                "--role",
                role,
                "--config",
                cfg.to_str().unwrap(),
                "--format",
                "json",
                "--no-progress",
            ],
        );
        let path = sb.write(&format!("{host}.json"), &r.stdout);
        args.push(format!("{host}={}", path.display()));
    }
    let v = av(args).json();
    let m = cells(&v);
    let wrong: Vec<_> = m
        .iter()
        .filter(|(_, s)| !["open", "blocked"].contains(&s.as_str()))
        .map(|((s, d, p), st)| format!("{s} {d} {p} {st}"))
        .collect();
    assert_eq!(
        wrong,
        vec![
            "node1 node2 udp 8472 filtered",
            "node3 node2 udp 8472 filtered"
        ]
    );
    let problems: Vec<&str> = v["matrix"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        problems,
        vec![
            "UDP 8472 on node2 answers none of the 2 hosts that tested it (filtered: node1, node3)"
        ]
    );
    assert_eq!(v["matrix"]["problems"][0]["cells"], 2);
}
