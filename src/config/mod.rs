//! Configuration: `perimeter.yml`, the vendor's `config.yml`, and the
//! validated plan the probes run from.
//!
//! Guarantees:
//! - [`load`] does every check that needs no network (syntax, types, CIDRs,
//!   durations, the CA bundle parses) before any probe starts, so a bad
//!   configuration fails in milliseconds with exit code 2 and one line that
//!   names the file, line, column and key;
//! - secrets are resolved here, once, into [`Secret`]s that cannot be
//!   printed; a secret that cannot be read is a finding
//!   (`config:unresolved-secret`), not a crash, and never shows its value;
//! - a target written as an address outside `allowed_networks` is reported
//!   (`config:outside-perimeter`) and dropped from the plan: no probe ever
//!   connects outside the perimeter.

pub mod file;
pub mod proxy;
pub mod secret;
pub mod sekoia;
pub mod vendor_env;
pub mod vendor_keys;

mod apply;
mod checks;
mod model;
mod yaml;

use apply::*;
use checks::*;
pub use model::*;
use yaml::*;
pub use yaml::{locate, parse_yaml};

use std::path::Path;

pub use file::Transport;
pub use secret::{Secret, SecretRef};

use crate::error::InputError;
use crate::finding::{Code, Finding};

/// Reads and validates the configuration into a plan.
pub fn load(opts: &LoadOptions) -> Result<Perimeter, InputError> {
    if opts.perimeter.is_none() && opts.sekoia.is_none() {
        return Err(InputError::Usage(
            "nothing to check: pass --config perimeter.yml and/or --sekoia-config config.yml (`airgap-verify init` writes a template)".into(),
        ));
    }
    let sekoia = match &opts.sekoia {
        Some(path) => Some((path.as_path(), read_text(path, "Sekoia configuration")?)),
        None => None,
    };
    let perimeter = match &opts.perimeter {
        Some(path) => Some((path.as_path(), read_text(path, "perimeter configuration")?)),
        None => None,
    };
    load_texts(
        opts,
        sekoia.as_ref().map(|(p, t)| (*p, t.as_str())),
        perimeter.as_ref().map(|(p, t)| (*p, t.as_str())),
    )
}

/// [`load`] once the files are read: the vendor's `config.yml` text and the
/// `perimeter.yml` text, each with the path it came from (for messages and
/// relative paths). Separate so the fuzzer can drive it without files.
pub(crate) fn load_texts(
    opts: &LoadOptions,
    sekoia: Option<(&Path, &str)>,
    perimeter: Option<(&Path, &str)>,
) -> Result<Perimeter, InputError> {
    let mut plan = Perimeter {
        severity: Default::default(),
        sources: Vec::new(),
        ca_bundle: None,
        system_roots: opts.system_roots,
        allowed_networks: Vec::new(),
        allowed_networks_set: false,
        deadlines: Deadlines::default(),
        expiry_warning_days: DEFAULT_EXPIRY_WARNING_DAYS,
        strict_airgap: opts.strict_airgap,
        send_test_mail: opts.send_test_mail,
        dns: DnsPlan {
            public_names: vec![DEFAULT_PUBLIC_NAME.into()],
            transports: vec![Transport::Udp, Transport::Tcp],
            ..DnsPlan::default()
        },
        ntp: NtpPlan::default(),
        smtp: Vec::new(),
        git: None,
        registry: None,
        s3: None,
        flows: None,
        write_probe: opts.write_probe,
        s3_benchmark: opts.s3_benchmark,
        findings: Vec::new(),
        declared: Vec::new(),
        run_services: !opts.no_services,
        egress: EgressPlan {
            enabled: opts.egress || opts.probe_internet,
            probe_internet: opts.probe_internet,
            ..EgressPlan::default()
        },
        platform_cert: None,
    };

    // The vendor's file first: perimeter.yml then adds and overrides.
    if let Some((path, text)) = sekoia {
        sekoia::apply(path, text, &mut plan)?;
        plan.sources.push(path.to_path_buf());
    }
    if let Some((path, text)) = perimeter {
        let parsed: file::PerimeterFile = parse_yaml(path, text)?;
        apply_file(path, text, parsed, &mut plan)?;
        plan.sources.push(path.to_path_buf());
    }

    if let Some(ca) = &opts.ca_bundle {
        plan.ca_bundle = Some(ca.clone());
    }
    if let Some(t) = opts.timeout {
        plan.deadlines = Deadlines {
            connect: t,
            handshake: t,
            io: t,
        };
        plan.egress.deadline = t;
    }
    // The environment's proxies come first: they apply to this very run.
    let env = proxy::from_env(|k| std::env::var(k).ok());
    if !env.proxies.is_empty() || env.no_proxy_source.is_some() {
        plan.egress.proxies.insert(0, env);
    }
    if !plan.allowed_networks_set {
        default_perimeter(&mut plan);
    }
    plan.egress.endpoints = endpoints(&plan);
    cluster_overlaps(&mut plan);
    if let Some(ca) = &plan.ca_bundle {
        // Parse it now: a bad bundle is a configuration error, not a TLS
        // failure on every probe.
        crate::trust::load_ca_bundle(ca)?;
    }
    drop_targets_outside(&mut plan);
    if opts.no_services {
        // `egress` alone uses no credential: a secret it cannot read does
        // not matter to it.
        plan.findings
            .retain(|f| f.code != Code::ConfigUnresolvedSecret);
    }
    if plan.is_empty() {
        plan.findings.push(Finding::new(
            Code::ConfigNothingToCheck,
            plan.sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            "the configuration names no DNS server, NTP server, SMTP relay, Git repository, OCI registry or S3 endpoint to probe",
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("ntp.Example.org.", 123).unwrap(),
            Target {
                host: "ntp.example.org".into(),
                port: 123
            }
        );
        assert_eq!(Target::parse("10.0.0.1:1123", 123).unwrap().port, 1123);
        assert_eq!(Target::parse("[fd00::1]:5", 123).unwrap().host, "fd00::1");
        assert_eq!(Target::parse("fd00::1", 123).unwrap().port, 123);
        assert!(Target::parse("bad host", 1).is_err());
        assert!(Target::parse("h:99999", 1).is_err());
    }

    #[test]
    fn cluster_networks_are_the_vendors_pod_and_service_ranges() {
        let of = |a: &str| cluster_network_of(a.parse().unwrap()).map(|(n, _)| n);
        assert_eq!(of("10.42.0.1"), Some("10.42.0.0/16"));
        assert_eq!(of("10.43.255.254"), Some("10.43.0.0/16"));
        assert_eq!(of("::ffff:10.43.0.10"), Some("10.43.0.0/16"));
        assert_eq!(of("10.41.255.255"), None);
        assert_eq!(of("10.44.0.0"), None);
        assert_eq!(of("fd00::1"), None);
    }

    #[test]
    fn mapped_v6_is_checked_as_v4() {
        let nets = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(allows(&nets, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allows(&nets, "8.8.8.8".parse().unwrap()));
        assert!(allows(&[], "8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let text = "dns:\n  servers: [10.0.0.1]\nntp:\n  max_offset: soon\n";
        let e = parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), text).unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("p.yml:4:15: ntp.max_offset: `soon`"), "{m}");
        assert!(m.contains("not a duration"), "{m}");

        let e = parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), "ntp:\n  max_ofset: 1s\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.yml:2:3: ntp.max_ofset: unknown field `max_ofset`"),
            "{e}"
        );
    }

    #[test]
    fn locate_takes_a_key_with_a_stray_bracket_as_a_name() {
        // Fuzzing crash: the unknown key `max_offs[` made locate slice
        // `seg[9..8]`.
        let text = "ntp:\n  servers: [a]\n  max_offs[: 250ms\n";
        assert_eq!(locate(text, "ntp.max_offs["), Some((3, 14, 3)));
        assert_eq!(locate(text, "ntp.x[y]"), None);
        assert_eq!(locate(text, "ntp.servers[0]"), Some((2, 13, 13)));
        let crash = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/fuzz-regressions/config/crash-6bd243390c2730081f582c6f9c4b77c343cc43ab"
        ))
        .expect("regression input");
        let text = std::str::from_utf8(&crash[1..]).expect("utf-8");
        let err =
            parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), text).expect_err("unknown key");
        assert!(err.to_string().contains("max_offs["), "{err}");
    }

    #[test]
    fn locate_finds_block_and_flow_values() {
        let t = "a: 1\nntp:\n  servers: [x, y]\n  max_offset: soon\ndns:\n  expect:\n    - name: a\n    - name: b\n      addresses: [1]\n";
        assert_eq!(locate(t, "ntp.max_offset"), Some((4, 15, 3)));
        assert_eq!(locate(t, "ntp.servers[1]"), Some((3, 16, 16)));
        assert_eq!(locate(t, "dns.expect[1].addresses"), Some((9, 18, 7)));
        assert_eq!(locate(t, "dns.expect[1]"), Some((8, 7, 7)));
        assert_eq!(locate(t, "smtp"), None);
        assert_eq!(
            locate("ntp: {servers: [a], max_offset: x}\n", "ntp.max_offset"),
            Some((1, 33, 21))
        );
    }

    #[test]
    fn template_parses() {
        let f: file::PerimeterFile = parse_yaml(Path::new("t.yml"), file::TEMPLATE).unwrap();
        assert_eq!(f.allowed_networks.map(|n| n.len()), Some(2));
        assert_eq!(f.smtp.into_vec().len(), 1);
        for (section, present) in [
            ("git", f.git.is_some()),
            ("registry", f.registry.is_some()),
            ("s3", f.s3.is_some()),
            ("flows", f.flows.is_some()),
            ("egress", f.egress.is_some()),
            ("dns", f.dns.is_some()),
            ("ntp", f.ntp.is_some()),
        ] {
            assert!(present, "the template has no `{section}` section");
        }
    }

    fn yaml_error(text: &str) -> String {
        match parse_yaml::<file::PerimeterFile>(Path::new("p.yml"), text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text:?} parsed"),
        }
    }

    #[test]
    fn a_tab_in_the_indentation_is_named_on_its_line() {
        let e = yaml_error("dns:\n  servers: [10.0.0.53]\n\tpublic_names: [example.com]\n");
        assert!(e.starts_with("p.yml:3:1: a tab character"), "{e}");
        assert!(e.contains("spaces only"), "{e}");
        let e = yaml_error("ntp:\n  \tservers: [a]\n");
        assert!(e.starts_with("p.yml:2:3: a tab"), "{e}");
    }

    #[test]
    fn a_repeated_key_is_named_where_it_repeats() {
        let e = yaml_error(
            "dns:\n  servers: [10.0.0.53]\nntp:\n  servers: [a]\ndns:\n  servers: [b]\n",
        );
        assert!(
            e.starts_with("p.yml:5:1: the key `dns` appears twice (first on line 1)"),
            "{e}"
        );
        let e = yaml_error("# c\nntp:\n  servers: [a]\n  max_offset: 1s\n  servers: [b]\n");
        assert!(
            e.starts_with("p.yml:5:3: ntp: the key `servers` appears twice (first on line 3)"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_no_rust_type() {
        for text in [
            "- a\n",
            "smtp:\n  host: a\n  port: 99999\n",
            "ntp:\n  servers: [a]\n  max_stratum: 300\n",
            "tls_expiry_warning_days: -1\n",
            "dns: 5\n",
            "dns:\n  servers: 5\n",
            "flows:\n  lb_ports: {80: 70000}\n",
        ] {
            let e = yaml_error(text);
            for rust in [
                "u8",
                "u16",
                "u32",
                "u64",
                "i64",
                "usize",
                "struct ",
                "enum ",
                "Perimeter",
                "File`",
            ] {
                assert!(!e.contains(rust), "{text:?}: {e}");
            }
            assert!(e.starts_with("p.yml:"), "{e}");
        }
    }

    /// Every key of the JSON Schema (every key the tool reads) appears in
    /// the template, set or commented out, under its section.
    #[test]
    fn template_shows_every_key_of_the_schema() {
        fn keys(
            node: &serde_json::Value,
            defs: &serde_json::Value,
            path: &str,
            out: &mut Vec<String>,
        ) {
            let node = match node.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => &defs[r.rsplit('/').next().unwrap()],
                None => node,
            };
            for k in ["anyOf", "oneOf", "allOf"] {
                for n in node.get(k).and_then(|v| v.as_array()).into_iter().flatten() {
                    keys(n, defs, path, out);
                }
            }
            if let Some(items) = node.get("items").filter(|i| i.is_object()) {
                keys(items, defs, path, out);
            }
            for (k, v) in node
                .get("properties")
                .and_then(|p| p.as_object())
                .into_iter()
                .flatten()
            {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push(p.clone());
                keys(v, defs, &p, out);
            }
        }
        let schema: serde_json::Value = serde_json::from_str(&file::json_schema()).unwrap();
        let defs = schema
            .get("$defs")
            .or(schema.get("definitions"))
            .cloned()
            .unwrap_or_default();
        let mut all = Vec::new();
        keys(&schema, &defs, "", &mut all);
        assert!(all.len() > 60, "{all:?}");
        let t = file::TEMPLATE;
        let mut missing = Vec::new();
        for key in &all {
            let (section, leaf) = key.split_once('.').unwrap_or(("", key));
            let leaf = leaf.rsplit('.').next().unwrap();
            // The section's block: from `section:` (set or commented) to the
            // next top-level line.
            // The section's block: from `section:` to the next top-level key.
            let block: Vec<&str> = if section.is_empty() {
                t.lines().collect()
            } else {
                t.lines()
                    .skip_while(|l| !l.starts_with(&format!("{section}:")))
                    .enumerate()
                    .take_while(|(i, l)| {
                        *i == 0 || !l.starts_with(|c: char| c.is_ascii_alphabetic())
                    })
                    .map(|(_, l)| l)
                    .collect()
            };
            assert!(!block.is_empty(), "no `{section}:` in the template");
            let shown = block.iter().any(|l| {
                let l = l
                    .trim_start()
                    .trim_start_matches('#')
                    .trim_start()
                    .trim_start_matches("- ");
                l.starts_with(&format!("{leaf}:"))
            });
            if !shown {
                missing.push(key.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "keys missing from the template: {missing:?}"
        );
    }
}
