//! `airgap-verify host`: what a host of the cluster must be before the
//! platform is installed on it, checked on the host itself (the cluster
//! playbook runs it on every host before it starts the responders).
//!
//! Guarantees:
//! - packages are read from dpkg's status file (`/var/lib/dpkg/status`),
//!   never by running a package manager; a host without that file (not a
//!   Debian family system) gets `host:packages-unknown`, not a guess;
//! - the ports are those `airgap-verify listen` binds for the role (nodes),
//!   or those the load balancer receives on (the load balancer): each is
//!   free, held by a process whose name is one of the expected services
//!   (the responder itself, K3s and the Kubernetes daemons, a load
//!   balancer), or held by something else, which fails. Only this host's
//!   network namespace is read (`/proc/net/{tcp,udp}{,6}`); nothing is bound
//!   or connected;
//! - the identity (host name, machine id, addresses) is not judged here:
//!   it is in every report's context, and `merge` compares it across hosts.

use std::collections::BTreeMap;
use std::path::Path;

use crate::finding::{Code, Finding};
use crate::profiles::{Profile, Proto, Role};

/// The role a host plays in the cluster, for its self-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRole {
    /// A Kubernetes node (manager or worker).
    Node,
    /// The load balancer in front of the workers.
    Lb,
    /// The host that runs the installer.
    Orchestration,
}

impl HostRole {
    pub fn name(self) -> &'static str {
        match self {
            HostRole::Node => "node",
            HostRole::Lb => "lb",
            HostRole::Orchestration => "orchestration",
        }
    }
}

/// The Debian packages Sekoia Self-Hosted requires on air-gapped nodes
/// (its installer uses them and cannot download them there).
pub const NODE_PACKAGES: &[&str] = &["python3", "lvm2", "gettext-base"];

/// dpkg's database of installed packages.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Process names (`/proc/PID/comm`, at most 15 characters) that may hold
/// a role's ports: the responder, and what the platform itself runs there.
fn expected_owners(role: HostRole) -> &'static [&'static str] {
    match role {
        HostRole::Node => &[
            "airgap-verify",
            // The profile's port 22 (the installer reaches every node over SSH).
            "sshd",
            "k3s",
            "k3s-server",
            "k3s-agent",
            "kubelet",
            "kube-apiserver",
            "kube-proxy",
            "etcd",
            "containerd",
            "cilium-agent",
            "cilium-health",
            "cilium-envoy",
            "hubble",
            "node_exporter",
            "traefik",
            "haproxy",
            "nginx",
        ],
        HostRole::Lb => &["haproxy", "nginx", "envoy", "keepalived", "traefik"],
        HostRole::Orchestration => &[],
    }
}

/// Every self-check of `role` on this host.
pub fn check(profile: &Profile, role: HostRole, dpkg_status: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    if role == HostRole::Node {
        out.extend(packages(dpkg_status, NODE_PACKAGES));
    }
    out.extend(ports(profile, role, |proto, port| {
        super::listen::port_owner(proto, port)
    }));
    out
}

/// The installed packages named in a dpkg status file's text.
pub fn installed(status_text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for para in status_text.split("\n\n") {
        let mut name = None;
        let mut ok = false;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Status:") {
                // "want flag status": only "installed" counts, not
                // "config-files" (removed) or "half-installed".
                ok = v.split_whitespace().nth(2) == Some("installed");
            }
        }
        if let (Some(n), true) = (name, ok) {
            out.insert(n);
        }
    }
    out
}

/// `host:packages-present`, or one `host:package-missing` per package.
pub fn packages(dpkg_status: &Path, wanted: &[&str]) -> Vec<Finding> {
    let target = "packages";
    let text = match std::fs::read_to_string(dpkg_status) {
        Ok(t) => t,
        Err(e) => {
            return vec![Finding::new(
                Code::HostPackagesUnknown,
                target,
                format!(
                    "cannot read dpkg's database {}: {e}; check by hand that {} are installed",
                    dpkg_status.display(),
                    wanted.join(", ")
                ),
            )
            .evidence("file", dpkg_status.display().to_string())
            .evidence("wanted", wanted.to_vec())];
        }
    };
    let have = installed(&text);
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| !have.contains(*p))
        .collect();
    if missing.is_empty() {
        return vec![Finding::new(
            Code::HostPackagesPresent,
            target,
            format!("installed: {}", wanted.join(", ")),
        )
        .evidence("packages", wanted.to_vec())];
    }
    missing
        .into_iter()
        .map(|p| {
            Finding::new(
                Code::HostPackageMissing,
                format!("package {p}"),
                format!("package {p} is not installed (dpkg's database {} says so); the installer needs it and cannot download it inside the air gap", dpkg_status.display()),
            )
            .evidence("package", p)
        })
        .collect()
}

/// The ports `role` must be able to serve, with the flows that need each.
pub fn role_ports(profile: &Profile, role: HostRole) -> BTreeMap<(u16, &'static str), Vec<String>> {
    match role {
        HostRole::Node => super::listen::ports(profile, super::listen::ListenRole::Node),
        HostRole::Lb => {
            let mut out: BTreeMap<(u16, &'static str), Vec<String>> = BTreeMap::new();
            for f in &profile.flows {
                if f.to != Role::Lb || f.proto == Proto::Icmp {
                    continue;
                }
                for &p in &f.ports {
                    out.entry((p, f.proto.name()))
                        .or_default()
                        .push(f.id.clone());
                }
            }
            out
        }
        HostRole::Orchestration => BTreeMap::new(),
    }
}

/// Free, held as expected, or in conflict: one finding per held port and
/// one for all the free ones. `owner` says who holds `proto`/`port`.
pub fn ports(
    profile: &Profile,
    role: HostRole,
    owner: impl Fn(&str, u16) -> Option<String>,
) -> Vec<Finding> {
    let wanted = role_ports(profile, role);
    if wanted.is_empty() {
        return Vec::new();
    }
    let expected = expected_owners(role);
    let mut free = Vec::new();
    let mut out = Vec::new();
    for ((port, proto), flows) in &wanted {
        let Some(who) = owner(proto, *port) else {
            free.push(format!("{proto}/{port}"));
            continue;
        };
        // "comm (pid N)": the name before the pid.
        let name = who.split(" (pid ").next().unwrap_or(&who);
        let target = format!("{proto} port {port}");
        let f = if expected.contains(&name) {
            Finding::new(
                Code::HostPortHeld,
                target,
                format!(
                    "{proto} {port} is held by {who}, an expected service on a {} host",
                    role.name()
                ),
            )
        } else {
            Finding::new(
                Code::HostPortConflict,
                target,
                format!(
                    "{proto} {port} is held by {who}, which is not a service of a {} host; the platform needs this port for {}",
                    role.name(),
                    flows.join(", ")
                ),
            )
        };
        out.push(
            f.evidence("owner", who.clone())
                .evidence("flows", flows.clone()),
        );
    }
    if !free.is_empty() {
        out.push(
            Finding::new(
                Code::HostPortsFree,
                "ports",
                format!(
                    "{} of the {} ports a {} host serves are free",
                    free.len(),
                    wanted.len(),
                    role.name()
                ),
            )
            .evidence("free", free),
        );
    }
    out
}

/// What `host --dry-run` prints.
pub fn describe(profile: &Profile, role: HostRole, dpkg_status: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    if role == HostRole::Node {
        lines.push(format!(
            "packages  {} installed (read from {})",
            NODE_PACKAGES.join(", "),
            dpkg_status.display()
        ));
    }
    let ports = role_ports(profile, role);
    if !ports.is_empty() {
        lines.push(format!(
            "ports     {} port(s) of a {} host free or held by an expected service (profile {}): {}",
            ports.len(),
            role.name(),
            profile.name,
            ports
                .keys()
                .map(|(p, proto)| format!("{proto}/{p}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if lines.is_empty() {
        lines.push(format!("nothing to check on a {} host", role.name()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: python3\nStatus: install ok installed\nVersion: 3.11\n\nPackage: lvm2\nStatus: deinstall ok config-files\n\nPackage: gettext-base\nStatus: install ok installed\n";

    #[test]
    fn only_installed_packages_count() {
        let have = installed(STATUS);
        assert!(have.contains("python3") && have.contains("gettext-base"));
        assert!(!have.contains("lvm2"), "config-files is removed");
    }

    #[test]
    fn a_missing_package_is_named() {
        let dir = std::env::temp_dir().join(format!("agv-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("status");
        std::fs::write(&p, STATUS).unwrap();
        let f = packages(&p, NODE_PACKAGES);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, Code::HostPackageMissing);
        assert_eq!(f[0].target, "package lvm2");
        std::fs::write(
            &p,
            STATUS.replace("deinstall ok config-files", "install ok installed"),
        )
        .unwrap();
        assert_eq!(
            packages(&p, NODE_PACKAGES)[0].code,
            Code::HostPackagesPresent
        );
        let f = packages(&dir.join("absent"), NODE_PACKAGES);
        assert_eq!(f[0].code, Code::HostPackagesUnknown);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ports_free_held_or_in_conflict() {
        let profile = crate::profiles::get(crate::profiles::DEFAULT).unwrap();
        let f = ports(&profile, HostRole::Node, |proto, port| {
            match (proto, port) {
                ("tcp", 6443) => Some("k3s-server (pid 10)".into()),
                ("tcp", 10250) => Some("python3 (pid 11)".into()),
                ("tcp", 22) => Some("sshd (pid 12)".into()),
                _ => None,
            }
        });
        let code_of = |t: &str| f.iter().find(|x| x.target == t).map(|x| x.code);
        assert_eq!(code_of("tcp port 6443"), Some(Code::HostPortHeld));
        assert_eq!(code_of("tcp port 10250"), Some(Code::HostPortConflict));
        assert_eq!(code_of("tcp port 22"), Some(Code::HostPortHeld));
        let free = f.iter().find(|x| x.code == Code::HostPortsFree).unwrap();
        let n = free.evidence["free"].as_array().unwrap().len();
        assert_eq!(n + 3, role_ports(&profile, HostRole::Node).len());
        // The load balancer's ports are the UI and intake ones.
        let lb = role_ports(&profile, HostRole::Lb);
        assert!(lb.contains_key(&(443, "tcp")) && lb.contains_key(&(11514, "tcp")));
        assert!(ports(&profile, HostRole::Orchestration, |_, _| None).is_empty());
    }
}
