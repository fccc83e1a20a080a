//! The lab declared once: `scripts/lab/services.tsv` is what the running lab
//! is. Its addresses and ports are lab.env's, every TCP listener it declares
//! accepts, `scripts/lab.sh status` lists exactly its processes, and check.py
//! has a check for every row (and refuses a row without one).

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::harness::lab::{service_table, service_table_path, Lab};
use crate::harness::Sandbox;

fn root() -> String {
    env!("CARGO_MANIFEST_DIR").to_string()
}

#[test]
fn every_address_and_port_of_the_table_is_lab_envs() {
    let lab = Lab::get();
    let zone = lab.var("LAB_ZONE");
    let rows = service_table();
    assert!(
        rows.len() >= 15,
        "services.tsv has only {} rows",
        rows.len()
    );
    let mut seen = std::collections::HashMap::new();
    for row in &rows {
        if let Some((var, addr)) = &row.addr {
            assert_eq!(lab.var(var), addr, "{}: {var} in lab.env", row.name);
            if row.declares {
                if let Some(other) = seen.insert(addr.clone(), row.name.clone()) {
                    panic!("{addr} is declared twice: {other} and {}", row.name);
                }
            }
            if let Some(first) = row.names.first() {
                let host_key = format!("{}_HOST", var.trim_end_matches("_ADDR"));
                assert_eq!(
                    lab.var(&host_key),
                    format!("{first}.{zone}"),
                    "{}",
                    row.name
                );
            }
        }
        for l in &row.listens {
            if let Some(key) = &l.key {
                assert_eq!(lab.var(key), l.port.to_string(), "{}: {key}", row.name);
            }
        }
    }
    // the one list-valued port variable
    let tarpit = rows
        .iter()
        .find(|r| r.name == "tarpit")
        .expect("a tarpit row");
    let ports: Vec<String> = tarpit.listens.iter().map(|l| l.port.to_string()).collect();
    assert_eq!(lab.var("TARPIT_PORTS"), ports.join(","));
}

#[test]
fn every_tcp_listener_of_the_table_accepts() {
    Lab::get();
    let mut checked = 0;
    for row in service_table() {
        let Some((_, addr)) = &row.addr else { continue };
        for l in row.listens.iter().filter(|l| l.proto == "tcp") {
            let sa: SocketAddr = format!("{addr}:{}", l.port).parse().unwrap();
            assert!(sa.ip().is_loopback(), "{}: {sa} is not loopback", row.name);
            TcpStream::connect_timeout(&sa, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("{}: tcp {sa} from services.tsv: {e}", row.name));
            checked += 1;
        }
    }
    assert!(
        checked >= 25,
        "only {checked} TCP listeners in services.tsv"
    );
}

#[test]
fn lab_status_lists_exactly_the_table_processes() {
    let lab = Lab::get();
    let out = Command::new("bash")
        .arg(format!("{}/scripts/lab.sh", root()))
        .arg("status")
        .env("AIRGAP_LAB_DIR", &lab.dir)
        .output()
        .expect("run scripts/lab.sh status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lab.sh status failed:\n{stdout}");
    let rows = service_table();
    let mut want: Vec<&str> = rows
        .iter()
        .filter(|r| r.is_process())
        .map(|r| r.name.as_str())
        .collect();
    want.extend(["blackhole", "hosts"]);
    let got: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(got, want, "lab.sh status:\n{stdout}");
    for row in rows.iter().filter(|r| r.is_process()) {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&row.name))
            .unwrap();
        assert!(line.contains(" up "), "{line}");
        if let Some((_, addr)) = &row.addr {
            assert!(line.contains(addr.as_str()), "{line} does not show {addr}");
        }
    }
}

fn check_table(table: &std::path::Path) -> std::process::Output {
    Command::new("python3")
        .arg(format!("{}/scripts/lab/check.py", root()))
        .args(["--check-table", "--table"])
        .arg(table)
        .output()
        .expect("run check.py")
}

#[test]
fn check_py_proves_every_row_and_refuses_a_row_without_a_check() {
    let out = check_table(&service_table_path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // every row's service is behind at least one check
    let proven: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .flat_map(|(_, s)| s.split(','))
        .collect();
    for row in service_table() {
        let service = row.process.as_deref().unwrap_or(&row.name);
        assert!(
            proven.contains(service),
            "no check proves {service}:\n{stdout}"
        );
    }

    // the same table with the checks of git-cgi removed
    let sb = Sandbox::new("lab-table");
    let text = std::fs::read_to_string(service_table_path()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("git-cgi "))
        .expect("a git-cgi row");
    let broken = line.replacen(" git,git-http ", " - ", 1);
    assert_ne!(broken, line);
    let table = sb.write("services.tsv", text.replacen(line, &broken, 1));
    let out = check_table(&table);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a row without a check was accepted");
    assert!(stderr.contains("git-cgi has no check"), "{stderr}");
}
