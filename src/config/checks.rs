//! What is checked once the whole configuration is in: the endpoints the
//! plan names (for the static egress check), the default perimeter, overlaps
//! with the cluster's own networks, and targets outside `allowed_networks`
//! reported and dropped, so no probe ever connects outside the perimeter.

use std::net::IpAddr;

use super::*;
/// Every endpoint the plan names, before targets outside the perimeter are
/// dropped: the static egress check judges them all.
pub(super) fn endpoints(plan: &Perimeter) -> Vec<Endpoint> {
    let mut out = Vec::new();
    // A set beside the list: `dns.expect` may hold hundreds of thousands of
    // names, and a linear search per name made loading quadratic.
    let mut seen = std::collections::HashSet::new();
    let mut add = |what: &str, host: String, shown: String, scheme: Option<&'static str>| {
        let e = Endpoint {
            what: what.to_string(),
            host,
            shown,
            scheme,
        };
        if seen.insert(e.clone()) {
            out.push(e);
        }
    };
    for s in &plan.dns.servers {
        add("dns server", s.ip().to_string(), s.to_string(), None);
    }
    for t in &plan.ntp.servers {
        add("ntp server", t.host.clone(), t.to_string(), None);
    }
    for s in &plan.smtp {
        add(
            "smtp relay",
            s.target.host.clone(),
            s.target.to_string(),
            None,
        );
    }
    let scheme = |u: &str| {
        if u.starts_with("http://") {
            Some("http")
        } else {
            Some("https")
        }
    };
    let urls = [
        ("git", plan.git.as_ref().map(|g| g.url.clone())),
        ("registry", plan.registry.as_ref().map(|r| r.url.clone())),
        ("s3", plan.s3.as_ref().map(|s| s.endpoint.clone())),
    ];
    for (what, url) in urls {
        if let Some(url) = url {
            if let Some(host) = sekoia::url_host(&url) {
                add(what, host, url.clone(), scheme(&url));
            }
        }
    }
    for e in &plan.dns.expect {
        add("name", e.name.clone(), e.name.clone(), None);
    }
    for (where_, addr) in &plan.declared {
        add(where_, addr.to_string(), addr.to_string(), None);
    }
    out
}

/// Sets the default perimeter, and says so in the report: an answer or a
/// target outside the private and local ranges is outside an air-gapped
/// network whatever else it is (the archive's reference scan judges
/// addresses the same way).
pub(super) fn default_perimeter(plan: &mut Perimeter) {
    plan.allowed_networks = DEFAULT_PERIMETER
        .iter()
        .map(|n| n.parse().expect("built-in CIDR"))
        .collect();
    plan.findings.push(
        Finding::new(
            Code::ConfigDefaultPerimeter,
            "allowed_networks",
            format!(
                "allowed_networks is not set: the perimeter is taken to be the private and local ranges ({}); an address outside them fails",
                DEFAULT_PERIMETER.join(", ")
            ),
        )
        .evidence("networks", DEFAULT_PERIMETER.to_vec()),
    );
}

/// Every address the configuration names (services, the vendor's hosts and
/// nodes, the flows' hosts) and every network of `allowed_networks` that
/// lies inside the cluster's pod or service network fails: the nodes would
/// send that traffic into the cluster. (A perimeter such as 10.0.0.0/8 that
/// contains the cluster networks is fine: they are inside it.)
pub(super) fn cluster_overlaps(plan: &mut Perimeter) {
    let mut named: Vec<(String, IpAddr)> = plan
        .egress
        .endpoints
        .iter()
        .filter_map(|e| Some((format!("{} {}", e.what, e.shown), e.host.parse().ok()?)))
        .collect();
    if let Some(fl) = &plan.flows {
        let roles = [
            (
                "flows.load_balancer",
                fl.load_balancer.iter().collect::<Vec<_>>(),
            ),
            ("flows.orchestration", fl.orchestration.iter().collect()),
            ("flows.managers", fl.managers.iter().collect()),
            ("flows.workers", fl.workers.iter().collect()),
            ("flows.kube_api", fl.kube_api.iter().collect()),
        ];
        for (what, hosts) in roles {
            for h in hosts {
                if let Ok(ip) = h.parse::<IpAddr>() {
                    named.push((format!("{what} {ip}"), ip));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut findings = Vec::new();
    for (what, ip) in named {
        let Some((net, label)) = cluster_network_of(ip) else {
            continue;
        };
        // The vendor's nodes are also the flows' hosts: name each address once.
        if !seen.insert(ip) {
            continue;
        }
        findings.push(
            Finding::new(
                Code::ConfigClusterNetworkOverlap,
                what.clone(),
                format!("{what}: {ip} lies in the cluster's {label} {net}; the nodes would route it into the cluster, never to it"),
            )
            .evidence("address", ip.to_string())
            .evidence("cluster_network", net),
        );
    }
    for n in &plan.allowed_networks {
        for (net, label) in CLUSTER_NETWORKS {
            let c: ipnet::IpNet = net.parse().expect("built-in CIDR");
            if c.contains(n) {
                findings.push(
                    Finding::new(
                        Code::ConfigClusterNetworkOverlap,
                        format!("allowed_networks {n}"),
                        format!("allowed_networks {n} lies in the cluster's {label} {net}: a network of the perimeter there is unreachable from the nodes"),
                    )
                    .evidence("network", n.to_string())
                    .evidence("cluster_network", *net),
                );
            }
        }
    }
    plan.findings.extend(findings);
}

/// Drops literal-address targets outside `allowed_networks`, with a finding.
pub(super) fn drop_targets_outside(plan: &mut Perimeter) {
    let nets = plan.allowed_networks.clone();
    let mut findings = Vec::new();
    let mut outside = |what: &str, addr: IpAddr, target: String| {
        if allows(&nets, addr) {
            return true;
        }
        findings.push(
            Finding::new(
                Code::ConfigOutsidePerimeter,
                target,
                format!("{what} {addr} is outside allowed_networks; it is not contacted"),
            )
            .evidence("address", addr.to_string()),
        );
        false
    };
    plan.dns
        .servers
        .retain(|s| outside("DNS server", s.ip(), s.to_string()));
    plan.ntp.servers.retain(|t| {
        t.ip()
            .is_none_or(|ip| outside("NTP server", ip, t.to_string()))
    });
    plan.smtp.retain(|s| {
        s.target
            .ip()
            .is_none_or(|ip| outside("SMTP relay", ip, s.target.to_string()))
    });
    for (where_, addr) in std::mem::take(&mut plan.declared) {
        outside("address", addr, where_);
    }
    plan.findings.extend(findings);
}
