//! Security content bundles: every `data/<TYPE>/` folder has a `latest` file
//! naming the bundle to load, by file name or by release id.
//!
//! Guarantee: judged after the pass, so `latest` may come before or after
//! the bundles; a bundle's own integrity comes from its nested walk.

use std::collections::{BTreeMap, HashMap};

use crossbeam_channel::Sender;

use super::member::Captured;
use super::member::NestedOutcome;
use super::table::FileTable;
use crate::finding::{Code, Finding};

/// `data/<TYPE>/latest`.
pub fn is_latest_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 3 && parts[0] == "data" && parts[2] == "latest"
}

/// `data/<TYPE>/<TYPE>-<id>.tar.gz`.
pub fn is_bundle_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 3
        && parts[0] == "data"
        && parts[2].starts_with(&format!("{}-", parts[1]))
        && parts[2].ends_with(".tar.gz")
}

pub fn check(
    files: &FileTable,
    latest: &[Captured],
    nested: &HashMap<String, NestedOutcome>,
    opened: bool,
    findings: &Sender<Finding>,
) {
    // Every folder directly under data/, with its bundles.
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in files.keys() {
        let parts: Vec<&str> = p.split('/').collect();
        if parts.len() == 3 && parts[0] == "data" {
            let entry = folders.entry(parts[1].to_string()).or_default();
            if is_bundle_path(p) {
                entry.push(p.to_string());
            }
        }
    }
    for (kind, mut bundles) in folders {
        bundles.sort();
        let folder = format!("data/{kind}");
        let latest_path = format!("{folder}/latest");
        let send = |f: Finding| {
            let _ = findings.send(f);
        };
        let Some(l) = latest.iter().find(|c| c.path == latest_path) else {
            send(Finding::new(
                Code::ContentLatestMissing,
                latest_path.clone(),
                format!(
                    "{folder} has no latest file; {} bundle(s) in it",
                    bundles.len()
                ),
            ));
            continue;
        };
        let named = String::from_utf8_lossy(&l.bytes).trim().to_string();
        // Either the file name or the release id.
        let candidates = [
            format!("{folder}/{named}"),
            format!("{folder}/{kind}-{named}.tar.gz"),
        ];
        let Some(chosen) = candidates.iter().find(|c| files.contains_key(c)).cloned() else {
            send(
                Finding::new(
                    Code::ContentLatestDangling,
                    latest_path.clone(),
                    format!("{latest_path} names {named:?}, but neither {kind}-{named}.tar.gz nor {named} is in {folder}"),
                )
                .evidence("latest", named.clone()),
            );
            continue;
        };
        match nested.get(&chosen) {
            // `--no-content`: the bundle was not opened; `latest` still holds.
            None if !opened => {}
            Some(o) if o.intact => send(
                Finding::new(
                    Code::ContentBundleValid,
                    chosen.clone(),
                    format!("{latest_path} names {chosen}, a valid gzip tar"),
                )
                .evidence("latest", named.clone()),
            ),
            _ => send(Finding::new(
                Code::ContentBundleBroken,
                chosen.clone(),
                format!("{chosen}, named by {latest_path}, is not a valid gzip tar"),
            )),
        }
        for b in bundles.iter().filter(|b| **b != chosen) {
            send(Finding::new(
                Code::ContentUnreferencedBundle,
                b.clone(),
                format!("{b} is not the bundle {latest_path} names ({named})"),
            ));
        }
    }
}
