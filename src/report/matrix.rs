//! The flow matrix: source host x destination host x protocol/port, from a
//! report's `flow:*` findings.
//!
//! Guarantees:
//! - one cell per (source, destination, protocol, port, flow): a flow tested
//!   twice between the same hosts (two reports of one host) keeps the worst;
//! - the source is the host the finding was observed from; the destination
//!   is the host whose addresses (as the merged reports recorded them)
//!   include the address tested, else the name the flow was configured
//!   with, else the address itself;
//! - the problems are every cell not as expected, each in exactly one
//!   collapsed statement: a port that no source reaches on one destination
//!   is one line ("UDP 8472 on node-2 answers none of the 3 hosts that
//!   tested it"), not one line per source.

use std::collections::{BTreeMap, BTreeSet};

use super::Report;
use crate::codes::Code;
use crate::finding::Status;

/// What one cell of the matrix shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CellState {
    /// Expected open, and it answered.
    Open,
    /// Expected blocked, and it got no answer or was refused.
    Blocked,
    /// Expected open, refused (reset, ICMP unreachable).
    Closed,
    /// Expected open, no answer by the deadline.
    Filtered,
    /// Expected blocked, but it answered.
    NotBlocked,
}

impl CellState {
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Open => "open",
            CellState::Blocked => "blocked",
            CellState::Closed => "closed",
            CellState::Filtered => "filtered",
            CellState::NotBlocked => "not-blocked",
        }
    }

    /// What the profile wanted.
    pub fn as_expected(self) -> bool {
        matches!(self, CellState::Open | CellState::Blocked)
    }

    /// Every state with its meaning, for legends.
    pub const ALL: [(CellState, &'static str); 5] = [
        (CellState::Open, "open, as expected"),
        (CellState::Blocked, "blocked, as expected"),
        (CellState::Closed, "closed: refused where it must be open"),
        (
            CellState::Filtered,
            "filtered: no answer where it must be open",
        ),
        (CellState::NotBlocked, "answers where it must be blocked"),
    ];

    fn of(code: Code) -> Option<CellState> {
        Some(match code {
            Code::FlowOpen => CellState::Open,
            Code::FlowBlocked => CellState::Blocked,
            Code::FlowClosed => CellState::Closed,
            Code::FlowFiltered => CellState::Filtered,
            Code::FlowNotBlocked => CellState::NotBlocked,
            _ => return None,
        })
    }
}

/// One flow tested from one host to another on one port.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub source: String,
    pub destination: String,
    /// The address tested.
    pub address: String,
    pub flow: String,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// `None` for ICMP.
    pub port: Option<u16>,
    pub state: CellState,
    /// What the profile expects: `open` or `blocked`.
    pub expect: String,
    /// The finding's status (after the policy).
    pub status: Status,
}

impl Cell {
    /// `TCP 6443`, `ICMP`.
    pub fn service(&self) -> String {
        match self.port {
            Some(p) => format!("{} {p}", self.protocol.to_uppercase()),
            None => self.protocol.to_uppercase(),
        }
    }
}

/// Cells not as expected, said once for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// One sentence.
    pub text: String,
    pub protocol: String,
    pub port: Option<u16>,
    /// The cells it stands for.
    pub cells: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    /// Sources and destinations: the report's hosts first, then the other
    /// destinations (perimeter services, hosts no report came from).
    pub hosts: Vec<String>,
    pub cells: Vec<Cell>,
    pub problems: Vec<Problem>,
}

/// `tcp 10.0.0.1:6443` -> (`tcp`, address, port); `icmp 10.0.0.1` -> no port.
fn parse_target(target: &str) -> Option<(String, String, Option<u16>)> {
    let (proto, rest) = target.split_once(' ')?;
    if proto == "icmp" {
        return Some((proto.into(), rest.to_string(), None));
    }
    let sa: std::net::SocketAddr = rest.parse().ok()?;
    Some((proto.into(), sa.ip().to_string(), Some(sa.port())))
}

impl Matrix {
    pub fn of(report: &Report) -> Matrix {
        let hosts = report.hosts();
        let mut by_address: BTreeMap<&str, &str> = BTreeMap::new();
        let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
        for h in &hosts {
            by_name.insert(&h.name, &h.name);
            for n in &h.hostnames {
                by_name.entry(n).or_insert(&h.name);
            }
            for a in &h.addresses {
                by_address.entry(a).or_insert(&h.name);
            }
        }
        let mut cells: BTreeMap<(String, Option<u16>, String, String, String), Cell> =
            BTreeMap::new();
        for f in &report.findings {
            let Some(state) = CellState::of(f.code) else {
                continue;
            };
            let Some((protocol, address, port)) = parse_target(&f.target) else {
                continue;
            };
            let ev = |k: &str| {
                f.evidence
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let configured = ev("host");
            let destination = by_address
                .get(address.as_str())
                .or_else(|| by_name.get(configured.as_str()))
                .map(|s| s.to_string())
                .unwrap_or_else(|| {
                    if configured.is_empty() {
                        address.clone()
                    } else {
                        configured.clone()
                    }
                });
            let source = report.host_of(f).to_string();
            let cell = Cell {
                source: source.clone(),
                destination: destination.clone(),
                address,
                flow: ev("flow"),
                protocol: protocol.clone(),
                port,
                state,
                expect: ev("expect"),
                status: f.status,
            };
            let key = (protocol, port, cell.flow.clone(), source, destination);
            match cells.get(&key) {
                Some(old) if (old.status, old.state) >= (cell.status, cell.state) => {}
                _ => {
                    cells.insert(key, cell);
                }
            }
        }
        // The load balancer's own flows to its backends: an answer through
        // the load balancer names the backend that gave it, which proves
        // the load balancer -> backend flow on that port (`lb:proxy-*`
        // findings with `backend_flow`). A backend never reached has no
        // cell: the load balancer's choice cannot be told from a drop.
        for f in &report.findings {
            if !matches!(f.code, Code::LbProxyOk | Code::LbProxyMismatch) {
                continue;
            }
            let Some(flow) = f.evidence.get("backend_flow").and_then(|v| v.as_str()) else {
                continue;
            };
            let Some(port) = f
                .evidence
                .get("port")
                .and_then(|v| v.as_u64())
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            // `tcp ADDR:PORT (flow via the load balancer)`: the address
            // is the load balancer's.
            let Some(lb) = f
                .target
                .split(' ')
                .nth(1)
                .and_then(|sa| sa.parse::<std::net::SocketAddr>().ok())
                .map(|sa| sa.ip().to_string())
            else {
                continue;
            };
            let source = by_address
                .get(lb.as_str())
                .map(|s| s.to_string())
                .unwrap_or_else(|| lb.clone());
            let backends = f
                .evidence
                .get("backends")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|b| b.as_str());
            for b in backends {
                let destination = by_name
                    .get(b)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| b.to_string());
                let cell = Cell {
                    source: source.clone(),
                    destination: destination.clone(),
                    address: b.to_string(),
                    flow: flow.to_string(),
                    protocol: "tcp".into(),
                    port: Some(port),
                    state: CellState::Open,
                    expect: "open".into(),
                    status: crate::finding::Status::Pass,
                };
                let key = (
                    "tcp".to_string(),
                    Some(port),
                    flow.to_string(),
                    source.clone(),
                    destination,
                );
                cells.entry(key).or_insert(cell);
            }
        }
        let cells: Vec<Cell> = cells.into_values().collect();
        let mut names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        let others: BTreeSet<&str> = cells
            .iter()
            .flat_map(|c| [c.source.as_str(), c.destination.as_str()])
            .filter(|n| !names.iter().any(|h| h == n))
            .collect();
        names.extend(others.into_iter().map(str::to_string));
        if cells.is_empty() {
            names.clear();
        }
        let problems = problems(&cells);
        Matrix {
            hosts: names,
            cells,
            problems,
        }
    }

    /// The cells between two hosts.
    pub fn between<'a>(
        &'a self,
        source: &'a str,
        destination: &'a str,
    ) -> impl Iterator<Item = &'a Cell> + 'a {
        self.cells
            .iter()
            .filter(move |c| c.source == source && c.destination == destination)
    }

    /// The distinct (protocol, port) pairs, in order.
    pub fn services(&self) -> Vec<(String, Option<u16>)> {
        let mut seen: Vec<(String, Option<u16>)> = Vec::new();
        for c in &self.cells {
            let k = (c.protocol.clone(), c.port);
            if !seen.contains(&k) {
                seen.push(k);
            }
        }
        seen
    }

    /// Hosts that appear as a source.
    pub fn sources(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| self.cells.iter().any(|c| &c.source == *h))
            .map(String::as_str)
            .collect()
    }

    /// Hosts that appear as a destination.
    pub fn destinations(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| self.cells.iter().any(|c| &c.destination == *h))
            .map(String::as_str)
            .collect()
    }
}

/// "filtered from a, b; closed from c".
fn by_state(cells: &[&Cell], who: impl Fn(&Cell) -> &str) -> String {
    let mut groups: BTreeMap<CellState, Vec<&str>> = BTreeMap::new();
    for c in cells {
        groups.entry(c.state).or_default().push(who(c));
    }
    groups
        .into_iter()
        .map(|(s, mut w)| {
            w.sort();
            w.dedup();
            format!("{}: {}", s.as_str(), w.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The cells not as expected, collapsed: first a destination that answers
/// no source on a port, then a source that reaches no destination on a
/// port, then each remaining cell on its own line.
fn problems(cells: &[Cell]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut said: BTreeSet<usize> = BTreeSet::new();
    type Key<'a> = (&'a str, Option<u16>, &'a str);
    let group = |by_source: bool| {
        let mut g: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            let host = if by_source { &c.source } else { &c.destination };
            g.entry((&c.protocol, c.port, host)).or_default().push(i);
        }
        g
    };
    // A destination that answers none of the hosts that tested it.
    for ((_, _, dest), idx) in group(false) {
        let bad: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|i| !cells[*i].state.as_expected())
            .collect();
        if bad.len() < 2 || bad.len() != idx.len() {
            continue;
        }
        let list: Vec<&Cell> = bad.iter().map(|i| &cells[*i]).collect();
        let c = list[0];
        let text = if list.iter().all(|c| c.state == CellState::NotBlocked) {
            format!(
                "{} on {dest} answers all {} hosts that tested it, but must be blocked",
                c.service(),
                list.len()
            )
        } else {
            format!(
                "{} on {dest} answers none of the {} hosts that tested it ({})",
                c.service(),
                list.len(),
                by_state(&list, |c| &c.source)
            )
        };
        out.push(Problem {
            text,
            protocol: c.protocol.clone(),
            port: c.port,
            cells: list.len(),
        });
        said.extend(bad);
    }
    // A source that reaches none of the destinations it tested.
    for ((_, _, source), idx) in group(true) {
        let bad: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|i| !cells[*i].state.as_expected() && !said.contains(i))
            .collect();
        if bad.len() < 2 || bad.len() != idx.len() {
            continue;
        }
        let list: Vec<&Cell> = bad.iter().map(|i| &cells[*i]).collect();
        let c = list[0];
        out.push(Problem {
            text: format!(
                "{} from {source} reaches none of its {} destinations ({})",
                c.service(),
                list.len(),
                by_state(&list, |c| &c.destination)
            ),
            protocol: c.protocol.clone(),
            port: c.port,
            cells: list.len(),
        });
        said.extend(bad);
    }
    for (i, c) in cells.iter().enumerate() {
        if c.state.as_expected() || said.contains(&i) {
            continue;
        }
        let what = match c.state {
            CellState::NotBlocked => "answers, but must be blocked".to_string(),
            s => s.as_str().to_string(),
        };
        out.push(Problem {
            text: format!(
                "{} {} -> {}: {what} ({})",
                c.service(),
                c.source,
                c.destination,
                c.flow
            ),
            protocol: c.protocol.clone(),
            port: c.port,
            cells: 1,
        });
    }
    out.sort_by(|a, b| (&a.protocol, a.port, &a.text).cmp(&(&b.protocol, b.port, &b.text)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(src: &str, dst: &str, port: u16, state: CellState) -> Cell {
        Cell {
            source: src.into(),
            destination: dst.into(),
            address: "10.0.0.1".into(),
            flow: "f".into(),
            protocol: "udp".into(),
            port: Some(port),
            state,
            expect: "open".into(),
            status: Status::Pass,
        }
    }

    #[test]
    fn a_port_no_source_reaches_is_one_line() {
        use CellState::*;
        let cells = vec![
            cell("a", "c", 8472, Filtered),
            cell("b", "c", 8472, Filtered),
            cell("a", "b", 8472, Open),
            cell("c", "b", 8472, Open),
            cell("b", "a", 8472, Closed),
            cell("c", "a", 8472, Open),
        ];
        let p = problems(&cells);
        let texts: Vec<&str> = p.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "UDP 8472 b -> a: closed (f)",
                "UDP 8472 on c answers none of the 2 hosts that tested it (filtered: a, b)",
            ]
        );
        assert_eq!(p.iter().map(|p| p.cells).sum::<usize>(), 3);
    }
}
