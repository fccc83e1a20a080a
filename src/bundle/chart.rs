//! Helm charts: a valid gzip tar holding `<name>/Chart.yaml` with
//! `apiVersion`, `name` and `version`.
//!
//! Guarantee: judged from the nested walk alone; `Chart.yaml` is the only
//! file kept in memory (under the capture limit).

use super::member::Walked;
use crate::finding::{Code, Finding};

#[derive(Debug, serde::Deserialize)]
struct ChartYaml {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    name: Option<String>,
    version: Option<serde_norway::Value>,
}

pub fn check(target: &str, ctx: &Walked, intact: bool) {
    let send = |f: Finding| {
        let _ = ctx.findings.send(f);
    };
    let chart = ctx
        .captured
        .iter()
        .find(|c| c.path.matches('/').count() == 1 && c.path.ends_with("/Chart.yaml"));
    let Some(chart) = chart else {
        if intact {
            send(Finding::new(
                Code::ChartMissingChartYaml,
                target,
                format!("{target}: no <name>/Chart.yaml inside"),
            ));
        }
        return;
    };
    let inner = format!("{target}!{}", chart.path);
    let parsed: Result<ChartYaml, _> = serde_norway::from_slice(&chart.bytes);
    match parsed {
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            send(Finding::new(
                Code::ChartInvalidChartYaml,
                inner.clone(),
                format!("{inner}: {at}{e}"),
            ));
        }
        Ok(c) => {
            let missing: Vec<&str> = [
                ("apiVersion", c.api_version.is_none()),
                ("name", c.name.is_none()),
                ("version", c.version.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| *k)
            .collect();
            if !missing.is_empty() {
                send(Finding::new(
                    Code::ChartInvalidChartYaml,
                    inner.clone(),
                    format!("{inner}: missing {}", missing.join(", ")),
                ));
            } else if intact {
                let version = match c.version {
                    Some(serde_norway::Value::String(s)) => s,
                    Some(v) => serde_norway::to_string(&v)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                    None => String::new(),
                };
                let name = c.name.unwrap_or_default();
                send(
                    Finding::new(
                        Code::ChartValid,
                        target,
                        format!("{target}: chart {name} {version}"),
                    )
                    .evidence("name", name)
                    .evidence("version", version),
                );
            }
        }
    }
}

/// `.prov` files beside charts are reported (verifying them needs the
/// vendor's PGP keyring and `helm verify`).
pub fn provenance(files: &super::table::FileTable, findings: &crossbeam_channel::Sender<Finding>) {
    let mut provs: Vec<&str> = files
        .keys()
        .filter(|p| p.ends_with(".tgz.prov") && files.contains_key(p.trim_end_matches(".prov")))
        .collect();
    provs.sort();
    for p in provs {
        let _ = findings.send(Finding::new(
            Code::ChartProvenance,
            p,
            format!(
                "{p}: Helm provenance file beside {} (not verified here)",
                p.trim_end_matches(".prov")
            ),
        ));
    }
}
