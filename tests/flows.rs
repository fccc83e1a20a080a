//! Firewall flows, the responder and the load balancer's behaviour, in the
//! network-namespace lab: hosts are namespaces joined by a bridge, nft
//! tables are their firewalls, haproxy balances node1 and node2, rsyslog
//! takes RELP and syslog over TLS.

use std::time::Duration;

use crate::harness::netlab::NetLab;
use crate::harness::{Sandbox, F};

/// perimeter.yml for the netlab with `extra` lines appended to `flows:`.
fn yaml(n: &NetLab, profile: &str, deadline: &str, extra: &str) -> String {
    format!(
        "allowed_networks: [{}]\nca_bundle: {}\nflows:\n  profile: {profile}\n  deadline: {deadline}\n  load_balancer: {}\n  orchestration: {}\n  managers: [{}]\n  workers: [{}, {}, {}]\n{extra}",
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

fn at<'a>(all: &'a [F], code: &str, target: &str) -> &'a F {
    all.iter()
        .find(|f| f.code == code && f.target == target)
        .unwrap_or_else(|| {
            panic!(
                "no {code} at {target}; got:\n{}",
                all.iter()
                    .map(|f| format!("  {} {} {}", f.code, f.target, f.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
}

#[test]
fn flows_tell_open_closed_and_filtered_apart_for_tcp_and_udp() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::tri_state");
    let _r: Vec<_> = ["node1", "node2", "node3"]
        .iter()
        .map(|h| n.responder(h, "node", &[]))
        .collect();
    // node2 rejects the kubelet port and drops the overlay; node3 drops the
    // node exporter.
    n.fw("node2", "tcp dport 10250 reject with tcp reset");
    n.fw("node2", "udp dport 8472 drop");
    n.fw("node3", "tcp dport 9100 drop");
    let (r, took) = n.flows(
        &sb,
        "node1",
        "node",
        &yaml(&n, "sekoia-1.0.0", "1s", ""),
        &[],
    );
    r.code(1);
    let all = r.findings();
    let (a2, a3) = (n.addr("node2"), n.addr("node3"));
    let f = at(&all, "flow:open", &format!("tcp {a3}:10250"));
    assert_eq!(f.evidence["responder"], "node3", "{f:?}");
    at(&all, "flow:closed", &format!("tcp {a2}:10250"));
    at(&all, "flow:filtered", &format!("tcp {a3}:9100"));
    // UDP: open only through the responder's answer, filtered by the drop.
    let f = at(&all, "flow:open", &format!("udp {a3}:8472"));
    assert_eq!(f.evidence["responder"], "node3");
    at(&all, "flow:filtered", &format!("udp {a2}:8472"));
    at(&all, "flow:open", &format!("icmp {a2}"));
    // A node does not test itself.
    assert!(!all
        .iter()
        .any(|f| f.target.contains(&format!("{}:", n.addr("node1")))));
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // UDP with nothing answering: no responder on node3 any more, so the
    // overlay port is refused (ICMP port unreachable), never "open".
    drop(_r);
    let (r, _) = n.flows(
        &sb,
        "node1",
        "node",
        &yaml(&n, "sekoia-1.0.0", "1s", ""),
        &[],
    );
    let all = r.findings();
    at(&all, "flow:closed", &format!("udp {a3}:8472"));
    // The port unreachable that UDP probe draws reaches the ICMP flow's raw
    // socket too: it is not the answer to the echo request.
    at(&all, "flow:open", &format!("icmp {a3}"));
}

#[test]
fn a_matrix_of_three_nodes_finishes_within_the_deadline_whatever_the_mix() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::matrix");
    // node1 answers everything, node2 rejects everything, node3 drops
    // everything: open, closed and filtered in one run.
    let _r = n.responder("node1", "node", &[]);
    n.fw("node2", "tcp dport != 0 reject with tcp reset");
    n.fw("node3", "drop");
    // The perimeter's services on the same three hosts: more flows per host.
    let extra = format!(
        "dns: {{servers: [{a}, {b}, {c}], public_names: []}}\nntp: {{servers: [{a}, {b}, {c}]}}\nsmtp:\n  - {{host: {a}, port: 25}}\n  - {{host: {b}, port: 587}}\n  - {{host: {c}, port: 465, tls: true}}\n  - {{host: {a}, port: 587}}\n  - {{host: {b}, port: 25}}\n  - {{host: {c}, port: 25}}\n  - {{host: {a}, port: 465, tls: true}}\n  - {{host: {b}, port: 465, tls: true}}\n  - {{host: {c}, port: 587}}\n  - {{host: {a}, port: 2525}}\n  - {{host: {b}, port: 2525}}\n  - {{host: {c}, port: 2525}}\ngit: {{url: \"https://{a}/sekoia/stacks.git\"}}\nregistry: {{url: \"https://{b}\", project: sekoia}}\ns3: {{endpoint: \"https://{c}\"}}\n",
        a = n.addr("node1"),
        b = n.addr("node2"),
        c = n.addr("node3")
    );
    // Managers are all three nodes, so the Kubernetes flows hit each.
    let y = yaml(&n, "sekoia-1.0.0", "2s", "").replace(
        &format!("managers: [{}]", n.addr("node1")),
        &format!(
            "managers: [{}, {}, {}]",
            n.addr("node1"),
            n.addr("node2"),
            n.addr("node3")
        ),
    ) + &extra;
    let (r, took) = n.flows(&sb, "orch", "node", &y, &[]);
    let all = r.findings();
    let tested: Vec<_> = all
        .iter()
        .filter(|f| ["flow:open", "flow:closed", "flow:filtered"].contains(&f.code.as_str()))
        .collect();
    assert!(tested.len() >= 3 * 20, "{} flows tested", tested.len());
    for code in ["flow:open", "flow:closed", "flow:filtered"] {
        assert!(tested.iter().any(|f| f.code == code), "no {code}");
    }
    assert!(
        took <= Duration::from_secs(3),
        "{} flows took {took:?}, more than the 2 s deadline plus 1 s",
        tested.len()
    );
}

/// `check` runs the flows of its `--role` with everything else when the
/// configuration names the cluster's hosts, and none without them.
#[test]
fn check_runs_the_flows_of_its_role_when_the_hosts_are_configured() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::check");
    let _r2 = n.responder("node2", "node", &[]);
    let _r3 = n.responder("node3", "node", &[]);
    n.fw("node3", "tcp dport 9100 drop");
    let (a2, a3) = (n.addr("node2"), n.addr("node3"));
    let r = n.check(
        &sb,
        "node1",
        "node",
        &yaml(&n, "sekoia-1.0.0", "1s", ""),
        &[],
    );
    r.code(1);
    let all = r.findings();
    let f = at(&all, "flow:open", &format!("tcp {a2}:10250"));
    assert_eq!(f.evidence["responder"], "node2");
    at(&all, "flow:open", &format!("udp {a3}:8472"));
    at(&all, "flow:filtered", &format!("tcp {a3}:9100"));
    at(&all, "flow:clock-ok", "node2");
    // The static egress proof runs in the same report.
    assert!(
        all.iter().any(|f| f.code.starts_with("egress:")),
        "no egress findings"
    );
    // Without a `flows:` section, `check` tests no flow.
    let bare = yaml(&n, "sekoia-1.0.0", "1s", "");
    let bare = &bare[..bare.find("flows:").unwrap()];
    let r = n.check(&sb, "node1", "node", bare, &[]);
    assert!(
        !r.findings().iter().any(|f| f.code.starts_with("flow:")),
        "{}",
        r.stdout
    );
}

/// With no `flows:` section, the hosts come from the vendor's inventory
/// (`utils.ansible.inventory`, `global.kube_manager_host`, `global.host`)
/// and the profile from its `version`.
#[test]
fn hosts_and_profile_come_from_the_vendor_inventory() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::inventory");
    let _r2 = n.responder("node2", "node", &["--profile", "sekoia-0.0.1"]);
    let _r3 = n.responder("node3", "node", &["--profile", "sekoia-0.0.1"]);
    let (a1, a2, a3) = (n.addr("node1"), n.addr("node2"), n.addr("node3"));
    let vendor = sb.write(
        "config.yml",
        format!(
            "version: 0.0.1\nglobal:\n  host: {}\n  kube_manager_host: {a1}\nutils:\n  ansible:\n    inventory:\n      managers: [{a1}]\n      workers: [{a2}, {a3}]\n",
            n.addr("lb")
        ),
    );
    let vendor = vendor.to_str().unwrap();
    let perimeter = format!(
        "allowed_networks: [{}]\nca_bundle: {}\n",
        n.var("NETLAB_SUBNET"),
        n.var("CA_PEM")
    );
    let (d, _) = n.flows(
        &sb,
        "node1",
        "node",
        &perimeter,
        &["--sekoia-config", vendor, "--dry-run"],
    );
    assert!(
        d.stdout.contains("profile sekoia-0.0.1") && d.stdout.contains("version 0.0.1"),
        "{}",
        d.stdout
    );
    let (r, _) = n.flows(
        &sb,
        "node1",
        "node",
        &perimeter,
        &["--sekoia-config", vendor],
    );
    let all = r.findings();
    // The overlay between all nodes, answered by the workers' responders.
    let f = at(&all, "flow:open", &format!("udp {a2}:8472"));
    assert_eq!(f.evidence["responder"], "node2");
    at(&all, "flow:open", &format!("udp {a3}:8472"));
    // Nothing of the 1.0.0 table (the kubelet, Cilium health).
    assert!(
        !all.iter()
            .any(|f| f.target.ends_with(":10250") || f.target.ends_with(":4240")),
        "{}",
        r.stdout
    );
}

#[test]
fn proxy_headers_are_detected_against_both_profiles() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::proxy");
    let _r1 = n.responder("node1", "lb-backend", &[]);
    let _r2 = n.responder("node2", "lb-backend", &[]);
    let lb = n.addr("lb");
    let web = |port: u16| {
        format!(
            "tcp {lb}:{port} (ui-{} via the load balancer)",
            if port == 80 { "http" } else { "https" }
        )
    };
    for (mode, profile, want) in [
        ("plain", "sekoia-1.0.0", "lb:proxy-ok"),
        ("plain", "sekoia-0.0.1", "lb:proxy-mismatch"),
        ("send-proxy", "sekoia-0.0.1", "lb:proxy-ok"),
        ("send-proxy", "sekoia-1.0.0", "lb:proxy-mismatch"),
        ("send-proxy-v2", "sekoia-0.0.1", "lb:proxy-mismatch"),
    ] {
        n.lb_mode(mode);
        let (r, _) = n.flows(&sb, "client", "client", &yaml(&n, profile, "2s", ""), &[]);
        let all = r.findings();
        for port in [80, 443] {
            let f = at(&all, want, &web(port));
            let seen = f.evidence["seen"].to_string();
            let kind = match mode {
                "plain" => "none",
                "send-proxy" => "v1",
                _ => "v2",
            };
            assert!(seen.contains(kind), "{mode}/{profile}: {seen}");
            let backends = f.evidence["backends"].as_array().unwrap();
            assert_eq!(backends.len(), 2, "both backends reached: {f:?}");
            // Which flow of the load balancer's own the answers prove.
            assert_eq!(
                f.evidence["backend_flow"], "lb-workers-web",
                "{profile}: {f:?}"
            );
        }
        if profile == "sekoia-1.0.0" && mode == "plain" {
            // Merged, each backend that answered through the load balancer
            // is an open cell from the load balancer to that backend.
            let report = sb.write("client.json", r.stdout.clone());
            let out = std::process::Command::new(crate::harness::BIN)
                .args(["merge", "--format", "json"])
                .arg(format!("client={}", report.display()))
                .output()
                .unwrap();
            let m = crate::harness::Run::from(out);
            let cells = m.json()["matrix"]["cells"].as_array().unwrap().clone();
            for node in ["node1", "node2"] {
                for port in [80, 443] {
                    assert!(
                        cells.iter().any(|c| c["source"] == lb
                            && c["destination"] == node
                            && c["flow"] == "lb-workers-web"
                            && c["port"] == port
                            && c["state"] == "open"),
                        "no open cell {lb} -> {node} lb-workers-web {port}: {cells:#?}"
                    );
                }
            }
        }
        // The intake ports accept either in both profiles.
        at(
            &all,
            "lb:proxy-ok",
            &format!("tcp {lb}:11514 (ingest-relp via the load balancer)"),
        );
    }
    n.lb_mode("plain");
}

#[test]
fn load_balancer_redirect_tls_relp_and_syslog_checks() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::lb_services");
    let lb = n.addr("lb");
    // No responder: the platform's own answers are checked. haproxy
    // publishes a redirecting port 80 as 8080 and TLS 443 as 8443.
    let y = yaml(
        &n,
        "sekoia-1.0.0",
        "2s",
        "  lb_ports: {80: 8080, 443: 8443}\n",
    );
    let (r, _) = n.flows(&sb, "client", "client", &y, &[]);
    let all = r.findings();
    let f = at(
        &all,
        "lb:redirect-ok",
        &format!("tcp {lb}:8080 (ui-http via the load balancer)"),
    );
    assert!(f.evidence["location"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let f = at(
        &all,
        "tls:verified",
        &format!("tcp {lb}:8443 (ui-https via the load balancer)"),
    );
    assert!(f.evidence["chain"].to_string().contains("lb.netlab.test"));
    // A frontend that answers 200 without a redirect.
    let y = yaml(&n, "sekoia-1.0.0", "2s", "  lb_ports: {80: 8081}\n");
    let (r, _) = n.flows(&sb, "client", "client", &y, &[]);
    at(
        &r.findings(),
        "lb:no-redirect",
        &format!("tcp {lb}:8081 (ui-http via the load balancer)"),
    );

    // The intake: the real rsyslog (imrelp on 11514, TLS on 10514).
    let sys = n.addr("syslog");
    let y = yaml(&n, "sekoia-1.0.0", "2s", "").replace(
        &format!("load_balancer: {lb}"),
        &format!("load_balancer: {sys}"),
    );
    let (r, _) = n.flows(&sb, "client", "client", &y, &[]);
    let all = r.findings();
    let relp = at(
        &all,
        "lb:relp-ok",
        &format!("tcp {sys}:11514 (ingest-relp via the load balancer)"),
    );
    let tls = at(
        &all,
        "lb:syslog-ok",
        &format!("tcp {sys}:10514 (ingest-syslog via the load balancer)"),
    );
    at(
        &all,
        "tls:verified",
        &format!("tcp {sys}:10514 (ingest-syslog via the load balancer)"),
    );
    // Both lines arrived, by the ids the findings name.
    let received = n.var("SYSLOG_RECEIVED").to_string();
    crate::harness::slowlink::wait_for("the syslog lines", Duration::from_secs(5), || {
        let log = std::fs::read_to_string(&received).unwrap_or_default();
        [&relp, &tls]
            .iter()
            .all(|f| log.contains(f.evidence["message_id"].as_str().unwrap()))
    });
}

#[test]
fn a_shifted_clock_is_flagged_and_taken_ports_are_named() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::clock");
    let _r2 = n.responder("node2", "node", &["--clock-offset", "5s"]);
    let _r3 = n.responder("node3", "node", &[]);
    let (r, _) = n.flows(
        &sb,
        "node1",
        "node",
        &yaml(&n, "sekoia-1.0.0", "1s", ""),
        &[],
    );
    let all = r.findings();
    let f = at(&all, "flow:clock-skew", "node2");
    let skew = f.evidence["skew_ms"].as_i64().unwrap();
    assert!((4_900..5_100).contains(&skew), "{f:?}");
    at(&all, "flow:clock-ok", "node3");

    // A second responder on node3 finds every port taken by the first,
    // and names it.
    let second = n
        .responder("node3", "lb-backend", &["--deadline", "1s"])
        .stop();
    let taken: Vec<_> = second
        .findings()
        .into_iter()
        .filter(|f| f.code == "flow:port-taken")
        .collect();
    assert_eq!(taken.len(), 4, "{}", second.stdout);
    assert!(
        taken.iter().all(|f| f.evidence["owner"]
            .as_str()
            .unwrap()
            .contains("airgap-verify")),
        "{taken:?}"
    );
}

#[test]
fn flows_without_hosts_or_with_a_bad_profile_are_clear_errors() {
    let sb = Sandbox::new("flows::errors");
    let cfg = sb.write("p.yml", "allowed_networks: [10.0.255.0/24]\n");
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["flows", "--role", "node", "--config"])
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
    let cfg = sb.write(
        "q.yml",
        "flows:\n  profile: sekoia-9\n  workers: [10.0.0.1]\n",
    );
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["flows", "--role", "node", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let r = crate::harness::Run::from(out);
    r.code(2);
    assert!(
        r.stderr.contains("q.yml:2")
            && r.stderr.contains("flows.profile")
            && r.stderr.contains("sekoia-1.0.0"),
        "{}",
        r.stderr
    );
}

/// The 1.0.0 page: "Block TCP and UDP 30000-32767 at the perimeter", and
/// keep Traefik's 10901 blocked. The nodes' responder answers on the named
/// NodePorts (Loki 30011, ClickHouse 30176 and 30177) and a spread of the
/// range, so from a client an open port is an answer, and the firewall
/// turns it into "blocked".
#[test]
fn a_nodeport_answering_from_outside_fails_until_the_firewall_blocks_it() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::nodeports");
    let _r2 = n.responder("node2", "node", &[]);
    let a2 = n.addr("node2");
    let y = yaml(&n, "sekoia-1.0.0", "1s", "");
    let (r, _) = n.flows(&sb, "client", "client", &y, &[]);
    r.code(1);
    let all = r.findings();
    for target in [
        format!("tcp {a2}:30011"),
        format!("tcp {a2}:30176"),
        format!("tcp {a2}:30177"),
        format!("tcp {a2}:32767"),
        format!("udp {a2}:30011"),
        format!("udp {a2}:31000"),
        format!("tcp {a2}:10901"),
    ] {
        at(&all, "flow:not-blocked", &target);
    }
    // The perimeter firewall in front of node2 drops the range from the
    // client (and only from it: the nodes still reach each other).
    let client = n.addr("client");
    n.fw(
        "node2",
        &format!("ip saddr {client} tcp dport 30000-32767 drop"),
    );
    n.fw(
        "node2",
        &format!("ip saddr {client} udp dport 30000-32767 drop"),
    );
    n.fw("node2", &format!("ip saddr {client} tcp dport 10901 drop"));
    let (r, _) = n.flows(&sb, "client", "client", &y, &[]);
    let all = r.findings();
    for target in [
        format!("tcp {a2}:30011"),
        format!("tcp {a2}:30176"),
        format!("tcp {a2}:30177"),
        format!("udp {a2}:30011"),
        format!("udp {a2}:32767"),
        format!("tcp {a2}:10901"),
    ] {
        at(&all, "flow:blocked", &target);
    }
    assert!(
        !all.iter()
            .any(|f| f.code == "flow:not-blocked" && f.target.contains(&format!("{a2}:"))),
        "{}",
        r.stdout
    );
}

/// The 1.0.0 page: the cluster ports are open "between all manager and
/// worker nodes, in both directions" (the vendor's preflight probes them
/// from every node to every other, whatever its role). etcd between two
/// workers was not tested by the old profile (managers only).
#[test]
fn an_all_to_all_flow_blocked_between_two_workers_fails() {
    let n = NetLab::get();
    let _x = n.exclusive();
    let sb = Sandbox::new("flows::all_to_all");
    let _r3 = n.responder("node3", "node", &[]);
    let (a2, a3) = (n.addr("node2"), n.addr("node3"));
    n.fw("node3", &format!("ip saddr {a2} tcp dport 2379 drop"));
    n.fw(
        "node3",
        &format!("ip saddr {a2} tcp dport 6443 reject with tcp reset"),
    );
    let (r, _) = n.flows(
        &sb,
        "node2",
        "node",
        &yaml(&n, "sekoia-1.0.0", "1s", ""),
        &[],
    );
    r.code(1);
    let all = r.findings();
    at(&all, "flow:filtered", &format!("tcp {a3}:2379"));
    at(&all, "flow:closed", &format!("tcp {a3}:6443"));
    // The rest of the all-to-all rows reach the worker's responder.
    for port in [2380, 10250, 4240, 4250, 10514, 11514, 9100, 9962] {
        let f = at(&all, "flow:open", &format!("tcp {a3}:{port}"));
        assert_eq!(f.evidence["responder"], "node3", "{f:?}");
    }
}
