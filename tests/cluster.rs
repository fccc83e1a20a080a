//! `cluster` end to end in the network lab: the orchestration host runs
//! the real `ansible-playbook`, which reaches the load balancer and the
//! nodes through their own OpenSSH servers (scripts/netlab.sh), copies the
//! binary, runs `host`, `listen`, `flows`, fetches the reports; `cluster`
//! merges them. Each run takes tens of seconds (Ansible's own cost).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::netlab::NetLab;
use crate::harness::Sandbox;

/// The lab's inventory, with `extra` lines appended to `[workers]` and
/// `vars` added to some hosts' lines.
fn inventory(n: &NetLab, sb: &Sandbox, extra_workers: &str, vars: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(n.var("ANSIBLE_INVENTORY")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        for (host, v) in vars {
            if l.starts_with(&format!("{host} ansible_host=")) {
                l = format!("{l} {v}");
            }
        }
        out.push_str(&l);
        out.push('\n');
        if line == "[workers]" && !extra_workers.is_empty() {
            out.push_str(extra_workers);
            out.push('\n');
        }
    }
    sb.write("inventory.ini", out).display().to_string()
}

/// perimeter.yml: the lab's network only; the hosts come from the
/// inventory (cluster writes `flows:` for them), the orchestration
/// host's address from here.
fn perimeter(n: &NetLab, sb: &Sandbox) -> String {
    sb.write(
        "perimeter.yml",
        format!(
            "allowed_networks: [{}]\nflows:\n  profile: sekoia-1.0.0\n  deadline: 1s\n  orchestration: {}\n",
            n.var("NETLAB_SUBNET"),
            n.addr("orch")
        ),
    )
    .display()
    .to_string()
}

/// A TMPDIR of the run's own: cluster makes its private folder there (and
/// the orchestration host's folder of the run inside it).
fn run_tmp(sb: &Sandbox) -> String {
    let p = sb.path("tmp");
    std::fs::create_dir_all(&p).unwrap();
    p.display().to_string()
}

/// Nothing left on this machine, nor on any host of the lab.
fn nothing_left(n: &NetLab, tmp: &str) {
    let mut left = n.leftovers();
    for e in std::fs::read_dir(tmp).unwrap().flatten() {
        left.push(format!("this machine: {}", e.path().display()));
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The project's playbook on its own, as an operator runs it: the real
/// `ansible-playbook` on the orchestration host with the lab's inventory,
/// `args` added.
fn playbook(n: &NetLab, args: &[String]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(["netns", "exec", n.ns("orch"), "ansible-playbook", "-i"])
        .arg(n.var("ANSIBLE_INVENTORY"))
        .args(args)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ansible/airgap-verify.yml"
        ))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap()
}

fn cells(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["matrix"]["cells"]
        .as_array()
        .unwrap_or_else(|| panic!("no matrix in the report: {report}"))
        .clone()
}

fn key(c: &serde_json::Value) -> (String, String, String, String, String) {
    (
        c["source"].as_str().unwrap_or("").into(),
        c["destination"].as_str().unwrap_or("").into(),
        c["flow"].as_str().unwrap_or("").into(),
        c["protocol"].as_str().unwrap_or("").into(),
        c["port"].to_string(),
    )
}

/// Three nodes, a load balancer and this host: every node-to-node flow of
/// the profile is one cell; a drop rule and a reject rule show as exactly
/// their two cells; a shifted clock is flagged against the median; nothing
/// is left on any host.
#[test]
fn the_whole_cluster_in_one_run_with_its_matrix() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("cluster::matrix");
    let (a1, a2) = (n.addr("node1").to_string(), n.addr("node2").to_string());
    // The perimeter in front of every node: from the client, the ports
    // that must stay blocked from outside are dropped.
    n.fw_perimeter();
    // node3 drops the overlay from node1; node1 rejects the kubelet from node2.
    n.fw("node3", &format!("ip saddr {a1} udp dport 8472 drop"));
    // node2 drops RELP from the load balancer: the load balancer's own
    // flow shows it (through the load balancer, the client only sees that
    // node1 answered, which proves nothing about node2).
    n.fw(
        "node2",
        &format!("ip saddr {} tcp dport 11514 drop", n.addr("lb")),
    );
    n.fw(
        "node1",
        &format!("ip saddr {a2} tcp dport 10250 reject with tcp reset"),
    );
    let inv = inventory(
        &n,
        &sb,
        "",
        &[(
            "node2",
            r#"airgap_verify_listen_extra='["--clock-offset", "5s"]'"#,
        )],
    );
    let cfg = perimeter(&n, &sb);
    let tmp = run_tmp(&sb);
    let r = n.cluster(
        &["--inventory", &inv, "--config", &cfg, "--format", "json"],
        &[("TMPDIR", &tmp)],
    );
    r.code(1);
    let report = r.json();
    let all = r.findings();
    for h in ["orch", "lb", "node1", "node2", "node3", "client"] {
        r.has("cluster:host-checked", "pass", &format!("host {h}"));
    }
    // Every role that starts flows is played: nothing skipped.
    r.lacks("cluster:source-missing");
    // Each node's sshd holds the profile's port 22: expected, no conflict.
    r.lacks("host:port-conflict");
    assert_eq!(
        all.iter()
            .filter(|f| f.code == "host:port-held" && f.target == "tcp port 22")
            .count(),
        3
    );

    // Every flow between nodes, once, from its source to its destination.
    let cells = cells(&report);
    let mut seen = BTreeMap::new();
    for c in &cells {
        *seen.entry(key(c)).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "cells listed twice: {twice:?}");
    let profile = airgap_verify::profiles::get("sekoia-1.0.0").unwrap();
    use airgap_verify::profiles::Role;
    // The lab's inventory: the load balancer's backends are the workers.
    let nodes = [
        ("node1", Role::Worker),
        ("node2", Role::Worker),
        ("node3", Role::Manager),
    ];
    let mut expected = 0;
    for f in &profile.flows {
        if !f.to.is(Role::Node) || !f.from.iter().any(|r| r.is(Role::Node)) {
            continue;
        }
        for (src, src_role) in nodes {
            if !f.from.iter().any(|r| *r == Role::Node || *r == src_role) {
                continue;
            }
            for (dst, dst_role) in nodes {
                if src == dst || !(f.to == Role::Node || f.to == dst_role) {
                    continue;
                }
                let ports: Vec<serde_json::Value> = if f.ports.is_empty() {
                    vec![serde_json::Value::Null]
                } else {
                    f.ports.iter().map(|p| serde_json::json!(p)).collect()
                };
                for port in ports {
                    expected += 1;
                    assert!(
                        cells.iter().any(|c| c["source"] == src
                            && c["destination"] == dst
                            && c["flow"] == f.id.as_str()
                            && c["port"] == port),
                        "no cell {src} -> {dst} {} port {port}",
                        f.id
                    );
                }
            }
        }
    }
    assert!(expected > 50, "only {expected} node-to-node cells expected");

    // Every flow of the profile between the cluster's hosts and from the
    // client, once per source, destination and port: the orchestration
    // host's, the nodes', the load balancer's own to its workers, and the
    // client's to the load balancer and (blocked) to the nodes. Not here:
    // flows to the perimeter's services (`services`; this perimeter names
    // none).
    let hosts = [
        ("orch", Role::Orchestration),
        ("lb", Role::Lb),
        ("node1", Role::Worker),
        ("node2", Role::Worker),
        ("node3", Role::Manager),
        ("client", Role::Client),
    ];
    let mut missing = Vec::new();
    let mut all_expected = 0;
    for f in &profile.flows {
        if matches!(f.to, Role::Service(_) | Role::Client) {
            continue;
        }
        for (src, src_role) in hosts {
            if !f.from.iter().any(|r| src_role.is(*r)) {
                continue;
            }
            for (dst, dst_role) in hosts {
                if src == dst || !dst_role.is(f.to) {
                    continue;
                }
                let ports: Vec<serde_json::Value> = if f.ports.is_empty() {
                    vec![serde_json::Value::Null]
                } else {
                    f.ports.iter().map(|p| serde_json::json!(p)).collect()
                };
                for port in ports {
                    all_expected += 1;
                    if !cells.iter().any(|c| {
                        c["source"] == src
                            && c["destination"] == dst
                            && c["flow"] == f.id.as_str()
                            && c["port"] == port
                    }) {
                        missing.push(format!("{src} -> {dst} {} port {port}", f.id));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {all_expected} flows between the cluster's hosts have no cell: {missing:#?}",
        missing.len()
    );

    // The three rules, and nothing else.
    let mut bad: Vec<_> = cells
        .iter()
        .filter(|c| ["closed", "filtered", "not-blocked"].contains(&c["state"].as_str().unwrap()))
        .map(|c| {
            format!(
                "{} -> {} {} {} {}",
                c["source"].as_str().unwrap(),
                c["destination"].as_str().unwrap(),
                c["protocol"].as_str().unwrap(),
                c["port"],
                c["state"].as_str().unwrap()
            )
        })
        .collect();
    bad.sort();
    assert_eq!(
        bad,
        vec![
            "lb -> node2 tcp 11514 filtered".to_string(),
            "node1 -> node3 udp 8472 filtered".to_string(),
            "node2 -> node1 tcp 10250 closed".to_string()
        ],
        "cells not as expected"
    );

    // node2's responder is 5 s ahead: it, and only it, is off the median.
    let skew: Vec<_> = all
        .iter()
        .filter(|f| f.code == "cluster:clock-skew")
        .collect();
    assert_eq!(skew.len(), 1, "{skew:?}");
    assert!(skew[0].target.contains("node2"), "{skew:?}");

    // The host self-checks ran on every node.
    let host_checks = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "host:packages-present")
        .count();
    assert_eq!(host_checks, 3, "one package check per node");

    nothing_left(&n, &tmp);
}

/// The hosts from the vendor's config.yml, the SSH key from the variable
/// it names (the key's content): the dry run lists them without the key;
/// a worker that does not exist is reported unreachable, the others are
/// still checked and merged; the key is never printed.
#[test]
fn hosts_and_key_from_the_vendor_config_and_an_unreachable_host() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("cluster::vendor");
    let ghost = format!("{}.29", n.var("NETLAB_NET"));
    let vendor = sb.write(
        "config.yml",
        format!(
            "version: 1.0.0\nglobal:\n  host: {}\n  kube_manager_host: {}\nutils:\n  ansible:\n    user: root\n    ssh-key: ${{env.SERVERS_SSH_KEY}}\n    inventory:\n      managers: [{}]\n      workers: [{}, {}, {ghost}]\n",
            n.addr("lb"),
            n.addr("node1"),
            n.addr("node1"),
            n.addr("node2"),
            n.addr("node3"),
        ),
    );
    let vendor = vendor.display().to_string();
    let key = std::fs::read_to_string(n.var("SSH_KEY")).unwrap();
    let key_line = key.lines().nth(1).unwrap().to_string();
    let known = format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o ConnectTimeout=3",
        n.var("SSH_KNOWN_HOSTS")
    );
    // The perimeter's services on the syslog host, where nothing serves
    // them: `services` runs from every node too, and every outbound flow is
    // a cell from each of its sources (closed: the flow reaches the host).
    let svc = n.addr("syslog").to_string();
    let cfg = sb
        .write(
            "perimeter-services.yml",
            format!(
                "{}dns: {{servers: [{svc}], public_names: []}}\nntp: {{servers: [{svc}]}}\nsmtp:\n  - {{host: {svc}, port: 25}}\ngit: {{url: \"https://{svc}/sekoia/stacks.git\"}}\nregistry: {{url: \"https://{svc}\", project: sekoia}}\ns3: {{endpoint: \"https://{svc}\"}}\n",
                std::fs::read_to_string(perimeter(&n, &sb)).unwrap()
            ),
        )
        .display()
        .to_string();
    let tmp = run_tmp(&sb);
    let env = [
        ("SERVERS_SSH_KEY", key.as_str()),
        ("ANSIBLE_SSH_COMMON_ARGS", known.as_str()),
        ("TMPDIR", tmp.as_str()),
    ];

    let d = n.cluster(
        &["--sekoia-config", &vendor, "--config", &cfg, "--dry-run"],
        &env,
    );
    d.code(0);
    for h in [
        n.addr("node1"),
        n.addr("node2"),
        n.addr("node3"),
        &ghost,
        n.addr("lb"),
    ] {
        assert!(d.stdout.contains(&format!("ssh {h}")), "{h}: {}", d.stdout);
    }
    assert!(
        d.stdout
            .contains("utils.ansible.ssh-key (environment variable SERVERS_SSH_KEY)"),
        "{}",
        d.stdout
    );
    // config.yml names no client: the dry run and the report say which
    // flows no host plays.
    assert!(
        d.stdout.contains("skipped  flows from client") && d.stdout.contains("ui-https"),
        "{}",
        d.stdout
    );

    let started = Instant::now();
    let r = n.cluster(
        &[
            "--sekoia-config",
            &vendor,
            "--config",
            &cfg,
            "--format",
            "json",
        ],
        &env,
    );
    r.code(1);
    for out in [&r.stdout, &r.stderr, &d.stdout, &d.stderr] {
        assert!(!out.contains(&key_line), "the key was printed");
    }
    let skipped = r.has("cluster:source-missing", "skip", "flows from client");
    assert!(skipped.message.contains("ingest-syslog"), "{skipped:?}");
    let f = r.has("cluster:host-unreachable", "fail", &format!("host {ghost}"));
    assert!(f.message.contains("ssh"), "{f:?}");
    for h in ["node1", "node2", "node3", "lb"] {
        r.has(
            "cluster:host-checked",
            "pass",
            &format!("host {}", n.addr(h)),
        );
    }
    // The nodes tested each other: flows from each node are in the report.
    let report = r.json();
    let sources: std::collections::BTreeSet<_> = cells(&report)
        .iter()
        .map(|c| c["source"].as_str().unwrap().to_string())
        .collect();
    for h in ["node1", "node2", "node3"] {
        assert!(sources.contains(n.addr(h)), "{h} missing from {sources:?}");
    }
    // Every outbound flow of the profile, once from each of its sources to
    // the service's host and port; nothing answers there.
    let profile = airgap_verify::profiles::get("sekoia-1.0.0").unwrap();
    use airgap_verify::profiles::Role;
    let cells = cells(&report);
    let mut missing = Vec::new();
    let mut outbound = 0;
    for f in profile
        .flows
        .iter()
        .filter(|f| matches!(f.to, Role::Service(_)))
    {
        // The orchestration host is this machine, named by its hostname.
        let orch = airgap_verify::report::hostname();
        for (src, role) in [
            (orch.as_str(), Role::Orchestration),
            (n.addr("node1"), Role::Manager),
            (n.addr("node2"), Role::Worker),
            (n.addr("node3"), Role::Worker),
        ] {
            if !f.starts_at(role) {
                continue;
            }
            outbound += 1;
            let found: Vec<_> = cells
                .iter()
                .filter(|c| c["source"] == src && c["flow"] == f.id.as_str())
                .collect();
            match found.as_slice() {
                [c] => {
                    assert_eq!(c["address"], svc.as_str(), "{c}");
                    assert!(
                        ["closed", "filtered"].contains(&c["state"].as_str().unwrap()),
                        "{c}"
                    );
                }
                _ => missing.push(format!("{src} {}: {} cells", f.id, found.len())),
            }
        }
    }
    assert!(missing.is_empty(), "outbound flows: {missing:?}");
    assert!(outbound >= 20, "only {outbound} outbound flows expected");
    // `services` ran from every node and the orchestration host.
    for h in ["node1", "node2", "node3"] {
        let checked = r.has(
            "cluster:host-checked",
            "pass",
            &format!("host {}", n.addr(h)),
        );
        assert!(checked.message.contains("services"), "{checked:?}");
    }
    nothing_left(&n, &tmp);
    assert!(started.elapsed() < Duration::from_secs(240));
}

/// Ctrl-C while the responders run: cluster stops Ansible, the clean-up
/// stops every responder and removes every folder, exit 130.
#[test]
fn ctrl_c_stops_the_responders_on_every_host() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("cluster::ctrl_c");
    // Flows from node1 take 20 s here (a drop rule and a long deadline),
    // so the interrupt falls while every responder runs.
    let inv = inventory(
        &n,
        &sb,
        "",
        &[(
            "node1",
            r#"airgap_verify_flows_extra='["--timeout", "20s"]'"#,
        )],
    );
    n.fw("node3", "tcp dport 2379 drop");
    let cfg = perimeter(&n, &sb);
    let tmp = run_tmp(&sb);
    let mut child = n
        .cluster_command(
            &["--inventory", &inv, "--config", &cfg, "--format", "json"],
            &[("TMPDIR", &tmp)],
        )
        .spawn()
        .unwrap();
    let nodes = n.nodes();
    let started = Instant::now();
    while !nodes.iter().all(|h| !n.responders(h).is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the responders never all ran"
        );
        assert!(child.try_wait().unwrap().is_none(), "cluster ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    // The cluster process is `ip netns exec`'s exec: its pid is ours.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let r = crate::harness::Run::from(out);
    r.code(130);
    let f = r.has("run:interrupted", "fail", "cluster");
    assert!(f.message.contains("SIGINT"), "{f:?}");
    for h in &nodes {
        assert!(n.responders(h).is_empty(), "a responder still runs on {h}");
    }
    nothing_left(&n, &tmp);
}

/// What an interrupt can leave on a host that the responder's PID file
/// does not name: an Ansible module whose SSH session was cut (the
/// `sh -c 'TMPDIR=... python3'` of a step), still running; here the
/// wrapper shell, the module and what the shell runs next all ignore
/// SIGTERM, and only the module has the run's TMPDIR. The clean-up run
/// stops all three and removes the folder; the same kind of process of
/// another run is left alone.
#[test]
fn the_clean_up_stops_every_process_of_the_run_and_no_other() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{nanos:x}a");
    let other = format!("{nanos:x}b");
    let ours = format!("/tmp/airgap-verify.{id}.node2");
    let theirs = format!("/tmp/airgap-verify.{other}.node2");
    let count = format!(
        "printf 'ours=%s theirs=%s\\n' \
           $(grep -lsxzF TMPDIR={ours}/.tmp /proc/[0-9]*/environ | wc -l) \
           $(grep -lsxzF TMPDIR={theirs}/.tmp /proc/[0-9]*/environ | wc -l)"
    );
    let start = format!(
        "set -e; mkdir -m 0700 {ours} {ours}/.tmp {theirs} {theirs}/.tmp
         setsid sh -c \"trap '' TERM; TMPDIR={ours}/.tmp /usr/bin/python3 -c 'import time; time.sleep(600)'; sleep 600\" </dev/null >/dev/null 2>&1 &
         setsid sh -c \"TMPDIR={theirs}/.tmp exec /usr/bin/python3 -c 'import time; time.sleep(600)'\" </dev/null >/dev/null 2>&1 &"
    );
    let out = n.ssh("node2", &start);
    assert!(out.status.success(), "{out:?}");
    let started = Instant::now();
    loop {
        let out = n.ssh("node2", &count);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim() == "ours=1 theirs=1" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The test's own check sees the module and its folder.
    let left = n.leftovers();
    assert!(
        left.iter()
            .any(|l| l.contains(&format!("TMPDIR={ours}/.tmp /usr/bin/python3"))),
        "{left:?}"
    );
    let out = playbook(
        &n,
        &[
            "-v".into(),
            "-e".into(),
            "airgap_verify_action=cleanup".into(),
            "-e".into(),
            format!("airgap_verify_run_id={id}"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let swept = n.ssh("node2", &count);
    let after = n.leftovers();
    // Whatever the assertions say, both runs' processes (their whole
    // process groups) and folders go. (`[/]`: the pattern does not match
    // the shell that runs it.)
    let _ = n.ssh(
        "node2",
        &format!(
            "for p in $(pgrep -f 'TMPDIR=[/]tmp/airgap-verify[.]({id}|{other})[.]') \
               $(grep -lsxzE 'TMPDIR=/tmp/airgap-verify[.]({id}|{other})[.]node2/[.]tmp' /proc/[0-9]*/environ | cut -d/ -f3); do \
               g=$(ps -o pgid= -p $p | tr -d ' '); [ -n \"$g\" ] && kill -KILL -$g; \
             done; rm -rf {ours} {theirs}"
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&swept.stdout).trim(),
        "ours=0 theirs=1",
        "{stdout}"
    );
    assert!(
        stdout.contains("changed: [node2]") && stdout.contains("killed:"),
        "{stdout}"
    );
    assert!(!after.iter().any(|l| l.contains(&id)), "{after:?}");
    assert!(
        after.iter().any(|l| l.contains(&other)),
        "the other run's folder went too: {after:?}"
    );
    let left = n.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn without_ansible_or_hosts_cluster_says_what_to_do() {
    let sb = Sandbox::new("cluster::errors");
    let inv = sb.write("inventory.ini", "[managers]\nm1 ansible_host=10.0.0.1\n");
    let empty = sb.path("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["cluster", "--inventory"])
        .arg(&inv)
        .env("PATH", &empty)
        .output()
        .unwrap();
    let r = crate::harness::Run::from(out);
    r.code(2);
    assert!(
        r.stderr.contains("ansible-inventory is not on PATH")
            && r.stderr.contains("ansible-core")
            && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
    let cfg = sb.write("p.yml", "allowed_networks: [10.0.0.0/8]\n");
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["cluster", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let r = crate::harness::Run::from(out);
    r.code(2);
    assert!(
        r.stderr.contains("no cluster hosts") && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
}

/// The playbook on its own, with `--check`: each host says what it would
/// run, and nothing is copied, started or left behind.
#[test]
fn the_playbook_in_check_mode_shows_the_plan_and_changes_nothing() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("cluster::check_mode");
    let cfg = perimeter(&n, &sb);
    let out = playbook(
        &n,
        &[
            "--check".into(),
            "-e".into(),
            format!(
                "airgap_verify_binary={}",
                crate::harness::netlab::cluster_binary().display()
            ),
            "-e".into(),
            format!("airgap_verify_config={cfg}"),
            "-e".into(),
            format!("airgap_verify_fetch_dir={}", sb.path("reports").display()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for h in n.nodes() {
        let line = stdout
            .lines()
            .skip_while(|l| !l.contains(&format!("ok: [{h}] => {{")))
            .find(|l| l.contains("\"msg\""))
            .unwrap_or_else(|| panic!("no plan for {h}: {stdout}"));
        assert!(
            line.contains("host --role node")
                && line.contains("listen --role node")
                && line.contains("flows --role node"),
            "{line}"
        );
    }
    assert!(
        !sb.path("reports").exists(),
        "reports fetched in check mode"
    );
    let left = n.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
