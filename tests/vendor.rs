//! The vendor's `config.yml` as its 1.0.0 documentation writes it
//! (`testdata/sekoia/config-vendor-1.0.0.yml`), against the lab's real
//! servers: `${env.VAR}` in any value, unset variables, the old `env.VAR`
//! syntax.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::lab::Lab;
use crate::harness::{Run, Sandbox, BIN};

/// Every variable the fixture references.
const VARS: &[&str] = &[
    "STORAGE_S3_REGION",
    "STORAGE_S3_ENDPOINT",
    "STORAGE_S3_ACCESS_KEY",
    "STORAGE_S3_SECRET_KEY",
    "SERVERS_SSH_KEY",
    "REGISTRY_USERNAME",
    "REGISTRY_PASSWORD",
    "SEKOIA_INSTANCE_PUBLIC_KEY",
    "GIT_USERNAME",
    "GIT_PASSWORD",
    "SMTP_PASSWORD",
];

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/sekoia/config-vendor-1.0.0.yml")
}

/// The variables the vendor's page lists, with the lab's values.
pub fn lab_vars(lab: &Lab) -> Vec<(&'static str, String)> {
    vec![
        ("STORAGE_S3_REGION", lab.var("S3_REGION").into()),
        ("STORAGE_S3_ENDPOINT", lab.var("S3_ENDPOINT").into()),
        ("STORAGE_S3_ACCESS_KEY", lab.var("S3_ACCESS_KEY").into()),
        ("STORAGE_S3_SECRET_KEY", lab.var("S3_SECRET_KEY").into()),
        // Read by the installer only; no probe uses them.
        ("SERVERS_SSH_KEY", "lab-no-ssh-key".into()),
        (
            "SEKOIA_INSTANCE_PUBLIC_KEY",
            "bGFiLWluc3RhbmNlLWtleQ==".into(),
        ),
        ("REGISTRY_USERNAME", lab.var("REGISTRY_USER").into()),
        ("REGISTRY_PASSWORD", lab.var("REGISTRY_PASSWORD").into()),
        ("GIT_USERNAME", lab.var("GIT_USER").into()),
        ("GIT_PASSWORD", lab.var("GIT_PASSWORD").into()),
        ("SMTP_PASSWORD", lab.var("SMTP_PASSWORD").into()),
    ]
}

/// `services --sekoia-config CFG --config <lab perimeter> --format json`
/// with exactly `vars` set among the fixture's variables.
pub fn run_vendor(
    sb: &Sandbox,
    cfg: &std::path::Path,
    vars: &[(&str, String)],
    extra: &[&str],
) -> Run {
    let lab = Lab::get();
    let p = sb.write("perimeter.yml", lab.config("dns:\n  public_names: []\n"));
    let mut cmd = Command::new(BIN);
    cmd.arg("services")
        .arg("--config")
        .arg(&p)
        .arg("--sekoia-config")
        .arg(cfg)
        .args(["--format", "json", "--no-progress", "--timeout", "3s"])
        .args(extra)
        .env("NO_COLOR", "1");
    for v in VARS {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run airgap-verify"))
}

/// The acceptance test of issue 15: the vendor's own example, with the
/// variables set, passes `services --write-probe` against the lab. Before
/// the fix, the S3 endpoint was the name `${env.STORAGE_S3_ENDPOINT}`
/// (`net:unresolved`) and the registry user the literal reference.
#[test]
fn the_vendors_example_passes_services_with_write_probe() {
    let sb = Sandbox::new("vendor::example_passes");
    let lab = Lab::get();
    let r = run_vendor(&sb, &fixture(), &lab_vars(&lab), &["--write-probe"]);
    let fails: Vec<_> = r
        .findings()
        .into_iter()
        .filter(|f| f.status == "fail")
        .map(|f| format!("{} {} {}", f.code, f.target, f.message))
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
    r.code(0);
    let dns = lab.var("DNS_AUTH_ADDR");
    for name in [
        lab.var("GIT_HOST"),
        lab.var("REGISTRY_HOST"),
        lab.var("S3_HOST"),
        lab.var("SMTP_HOST"),
    ] {
        r.has("dns:answer", "pass", &format!("{dns}:53/udp {name}"));
    }
    r.has("s3:write-probe", "pass", lab.var("S3_HOST"));
    r.has("registry:write-probe", "pass", lab.var("REGISTRY_HOST"));
    r.has("git:write-probe", "pass", lab.var("GIT_HOST"));
    r.has(
        "smtp:auth-ok",
        "pass",
        &format!("{}:587", lab.var("SMTP_HOST")),
    );
    assert!(!r.stdout.contains("${env."), "{}", r.stdout);
}

/// An unset variable in a plain field is named with its key; in a secret
/// field it is `config:unresolved-secret`. Neither reaches a probe as text.
#[test]
fn an_unset_variable_names_the_key_and_the_variable() {
    let sb = Sandbox::new("vendor::unset_variable");
    let lab = Lab::get();
    let vars: Vec<_> = lab_vars(&lab)
        .into_iter()
        .filter(|(k, _)| {
            ![
                "STORAGE_S3_ENDPOINT",
                "REGISTRY_USERNAME",
                "REGISTRY_PASSWORD",
            ]
            .contains(k)
        })
        .collect();
    let r = run_vendor(&sb, &fixture(), &vars, &[]);
    r.code(1);
    for (key, var) in [
        ("global.platform_storage.endpoint", "STORAGE_S3_ENDPOINT"),
        ("utils.oci_registry.username", "REGISTRY_USERNAME"),
    ] {
        let f = r.has("config:unresolved-variable", "fail", key);
        assert_eq!(f.evidence["key"], key);
        assert_eq!(f.evidence["variable"], var);
        assert!(f.message.contains(var), "{}", f.message);
    }
    let f = r.has(
        "config:unresolved-secret",
        "fail",
        "utils.oci_registry.password",
    );
    assert_eq!(
        f.evidence["reference"],
        "environment variable REGISTRY_PASSWORD"
    );
    // Nothing was probed with the literal reference.
    r.lacks("net:unresolved");
    assert!(!r.stdout.contains("${env."), "{}", r.stdout);
}

/// The bare `env.VAR` of earlier releases: refused in a 1.0.0 file, read as
/// before in a 0.0.1 file.
#[test]
fn the_old_env_syntax_fails_in_a_1_0_0_file_only() {
    let sb = Sandbox::new("vendor::old_env_syntax");
    let lab = Lab::get();
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("\"${env.SMTP_PASSWORD}\"", "env.SMTP_PASSWORD")
        .replace("\"${env.REGISTRY_USERNAME}\"", "env.REGISTRY_USERNAME");
    let cfg = sb.write("config.yml", text);
    let r = run_vendor(&sb, &cfg, &lab_vars(&lab), &[]);
    r.code(1);
    for key in [
        "modules.platform_configuration.config.email.smtp.password",
        "utils.oci_registry.username",
    ] {
        let f = r.has("config:legacy-env-syntax", "fail", key);
        assert!(f.message.contains("1.0.0"), "{}", f.message);
    }
    // The 0.0.1 template writes env.VAR for its secrets: no such finding.
    let old = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/sekoia/config-0.0.1.yml");
    let r = run_vendor(&sb, &old, &[], &[]);
    r.lacks("config:legacy-env-syntax");
    // ...and its secrets are still read as references.
    r.has(
        "config:unresolved-secret",
        "fail",
        "modules.platform_configuration.config.email.smtp.password",
    );
}

/// With no `allowed_networks` (here: no perimeter.yml at all), the
/// perimeter is the private and local ranges: a platform name the
/// perimeter's DNS resolves to a public address fails, and the report says
/// which default was used. (Before: any answer was accepted.)
#[test]
fn without_allowed_networks_a_public_answer_fails() {
    let sb = Sandbox::new("vendor::default_perimeter");
    let lab = Lab::get();
    let cfg = sb.write(
        "config.yml",
        format!(
            "global:\n  host: {leak}\n  delivery_host: {git}\n  forward_dns: \"{dns}\"\n  version:\n    platform:\n      version: \"v1.0.0\"\n",
            leak = lab.var("DNS_LEAK_NAME"),
            git = lab.var("GIT_HOST"),
            dns = lab.var("DNS_AUTH_ADDR"),
        ),
    );
    let out = Command::new(BIN)
        .args(["services", "--sekoia-config"])
        .arg(&cfg)
        .args(["--ca-bundle", &lab.ca()])
        .args(["--format", "json", "--no-progress", "--timeout", "2s"])
        .output()
        .unwrap();
    let r = Run::from(out);
    r.code(1);
    let dns = lab.var("DNS_AUTH_ADDR");
    let f = r.has(
        "dns:outside-perimeter",
        "fail",
        &format!("{dns}:53/udp {}", lab.var("DNS_LEAK_NAME")),
    );
    assert!(
        f.message.contains(lab.var("DNS_LEAK_ADDR")),
        "{}",
        f.message
    );
    // The lab's own names are inside the default (loopback).
    r.has(
        "dns:answer",
        "pass",
        &format!("{dns}:53/udp {}", lab.var("GIT_HOST")),
    );
    let f = r.has("config:default-perimeter", "warn", "allowed_networks");
    let nets: Vec<_> = f.evidence["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for n in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "fc00::/7",
    ] {
        assert!(nets.iter().any(|x| x == n), "{nets:?}");
    }
    assert!(f.message.contains("10.0.0.0/8"), "{}", f.message);
}

/// Keys the 1.0.0 release removed fail with their line; keys the 1.0.0
/// pages do not name are warnings with their line. Nothing is contacted:
/// the file names no service, only an address.
#[test]
fn removed_and_unknown_keys_are_reported_with_their_line() {
    let sb = Sandbox::new("vendor::keys");
    let cfg = sb.write(
        "config.yml",
        "global:\n  host: 127.0.0.1\n  version:\n    platform:\n      version: \"v1.0.0\"\n  platfrom_storage:\n    region: eu\nutils:\n  port_forward:\n    keep_alive_interval: 30\n  prometheus:\n    query_window: 5m\n    default_label_filters: []\n  git:\n    http:\n      username: u\n",
    );
    let r = crate::harness::av([
        "services",
        "--sekoia-config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    for (key, line) in [
        ("utils.port_forward.keep_alive_interval", 10),
        ("utils.prometheus.query_window", 12),
        ("utils.prometheus.default_label_filters", 13),
    ] {
        let f = r.has("config:removed-key", "fail", key);
        assert_eq!(f.evidence["line"], line, "{key}");
        assert!(f.message.contains(&format!("line {line}")), "{}", f.message);
    }
    let f = r.has("config:unknown-key", "warn", "global.platfrom_storage");
    assert_eq!(f.evidence["line"], 6);
    // Git's authentication keys are left to the vendor's `config help`.
    assert!(
        !r.findings()
            .iter()
            .any(|f| f.code == "config:unknown-key" && f.target.contains("utils.git")),
        "{}",
        r.stdout
    );
    // Only the misspelt key is unknown: the removed ones are not reported twice.
    let unknown = r
        .findings()
        .into_iter()
        .filter(|f| f.code == "config:unknown-key")
        .count();
    assert_eq!(unknown, 1, "{}", r.stdout);
}

/// The placeholder defaults of the vendor's page: written in the file they
/// fail like every placeholder; left out, the default that applies is a
/// warning naming it.
#[test]
fn the_new_placeholders_are_reported() {
    let sb = Sandbox::new("vendor::placeholders");
    let keys = [
        ("global.alternative_hosts", "api.sekoia.local"),
        (
            "modules.platform_configuration.config.grafana.root_url",
            "https://admin.sekoia.local/grafana",
        ),
        (
            "modules.platform_configuration.config.email.email_sender",
            "noreply@sekoia.local",
        ),
    ];
    let written = sb.write(
        "written.yml",
        "global:\n  host: 127.0.0.1\n  alternative_hosts: api.sekoia.local\nmodules:\n  platform_configuration:\n    config:\n      grafana:\n        root_url: https://admin.sekoia.local/grafana\n      email:\n        email_sender: noreply@sekoia.local\n",
    );
    let left_out = sb.write("left-out.yml", "global:\n  host: 127.0.0.1\n");
    let run = |p: &std::path::Path| {
        crate::harness::av([
            "services",
            "--sekoia-config",
            p.to_str().unwrap(),
            "--format",
            "json",
        ])
    };
    let r = run(&written);
    for (key, value) in keys {
        let f = r.has("config:placeholder", "fail", &format!("written.yml {key}"));
        assert_eq!(f.evidence["value"], value);
        assert!(
            !r.findings()
                .iter()
                .any(|f| f.code == "config:placeholder-default" && f.target.ends_with(key)),
            "{key} is set"
        );
    }
    let r = run(&left_out);
    for (key, value) in keys {
        let f = r.has(
            "config:placeholder-default",
            "warn",
            &format!("left-out.yml {key}"),
        );
        assert_eq!(f.evidence["default"], value);
        assert!(f.message.contains(value), "{}", f.message);
    }
    r.lacks("config:placeholder");
}

/// The cluster's fixed ranges (pods 10.42.0.0/16, services 10.43.0.0/16)
/// must not overlap anything the nodes must reach: each address the
/// configuration names there fails, naming the address and the range, and
/// so does a perimeter network inside them. Nothing is contacted: the
/// addresses are outside the loopback perimeter.
#[test]
fn an_overlap_with_the_cluster_networks_fails_naming_both() {
    let sb = Sandbox::new("vendor::cluster_overlap");
    let cfg = sb.write(
        "config.yml",
        "global:\n  host: 127.0.0.1\n  kube_manager_host: \"10.43.0.1\"\n  forward_dns: \"10.43.0.10\"\n  version:\n    platform:\n      version: \"v1.0.0\"\nutils:\n  ansible:\n    inventory:\n      managers: [10.42.0.5]\n      workers: [127.0.1.10]\n",
    );
    let p = sb.write(
        "perimeter.yml",
        "allowed_networks: [127.0.0.0/8, 10.42.7.0/24]\n",
    );
    let r = crate::harness::av([
        "services",
        "--config",
        p.to_str().unwrap(),
        "--sekoia-config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
        "--timeout",
        "1s",
    ]);
    r.code(1);
    for (target, addr, net) in [
        ("global.kube_manager_host", "10.43.0.1", "10.43.0.0/16"),
        ("dns server 10.43.0.10:53", "10.43.0.10", "10.43.0.0/16"),
        (
            "utils.ansible.inventory.managers[0]",
            "10.42.0.5",
            "10.42.0.0/16",
        ),
    ] {
        let f = r.has("config:cluster-network-overlap", "fail", target);
        assert_eq!(f.evidence["address"], addr);
        assert_eq!(f.evidence["cluster_network"], net);
        assert!(
            f.message.contains(addr) && f.message.contains(net),
            "{}",
            f.message
        );
    }
    let f = r.has(
        "config:cluster-network-overlap",
        "fail",
        "allowed_networks 10.42.7.0/24",
    );
    assert_eq!(f.evidence["cluster_network"], "10.42.0.0/16");
    // Each address once, the lab's own addresses never.
    let n = r
        .findings()
        .into_iter()
        .filter(|f| f.code == "config:cluster-network-overlap")
        .count();
    assert_eq!(n, 4, "{}", r.stdout);
}

fn pem(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The platform certificate, from TRAEFIK_PUBKEY and TRAEFIK_PRIVKEY, is
/// checked before the installation: it must match its key, chain to the
/// perimeter's CA and name global.host, global.delivery_host and
/// global.alternative_hosts. Unset, a warning says what forwarders will see.
#[test]
fn the_platform_certificate_must_name_every_host() {
    let sb = Sandbox::new("vendor::platform_cert");
    let lab = Lab::get();
    let vars = lab_vars(&lab);
    let with = |extra: &[(&'static str, String)]| {
        let mut v = vars.clone();
        v.extend(extra.iter().cloned());
        v
    };
    let (cert, key) = (pem(lab.var("SERVER_CERT")), pem(lab.var("SERVER_KEY")));

    // Unset: a warning, and the run still passes.
    let r = run_vendor(&sb, &fixture(), &vars, &[]);
    r.code(0);
    let f = r.has("tls:platform-cert-missing", "warn", "TRAEFIK_PUBKEY");
    assert!(f.message.contains("self-signed"), "{}", f.message);

    // The lab's server certificate names the fixture's three hosts.
    let good = with(&[
        ("TRAEFIK_PUBKEY", cert.clone()),
        ("TRAEFIK_PRIVKEY", key.clone()),
    ]);
    let r = run_vendor(&sb, &fixture(), &good, &[]);
    let f = r.has("tls:platform-cert-ok", "pass", "TRAEFIK_PUBKEY");
    assert_eq!(f.evidence["hosts"].as_array().unwrap().len(), 3, "{f:?}");
    r.lacks("tls:platform-cert-missing");

    // An alternative host the certificate does not name.
    let text = std::fs::read_to_string(fixture()).unwrap().replace(
        "alternative_hosts: \"mail.perimeter.test\"",
        "alternative_hosts: \"mirror.perimeter.test\"",
    );
    let cfg = sb.write("config.yml", text);
    let r = run_vendor(&sb, &cfg, &good, &[]);
    r.code(1);
    let f = r.has("tls:platform-cert-invalid", "fail", "TRAEFIK_PUBKEY");
    assert_eq!(
        f.evidence["missing_hosts"],
        serde_json::json!(["mirror.perimeter.test"])
    );
    assert!(f.message.contains("mirror.perimeter.test"), "{}", f.message);

    // Another certificate's key, and a certificate of another CA.
    let r = run_vendor(
        &sb,
        &fixture(),
        &with(&[
            ("TRAEFIK_PUBKEY", cert.clone()),
            ("TRAEFIK_PRIVKEY", pem(lab.var("EXPIRED_KEY"))),
        ]),
        &[],
    );
    let f = r.has("tls:platform-cert-invalid", "fail", "TRAEFIK_PUBKEY");
    assert!(f.message.contains("not the certificate's"), "{}", f.message);
    let r = run_vendor(
        &sb,
        &fixture(),
        &with(&[
            ("TRAEFIK_PUBKEY", pem(lab.var("ROGUE_CERT"))),
            ("TRAEFIK_PRIVKEY", pem(lab.var("ROGUE_KEY"))),
        ]),
        &[],
    );
    let f = r.has("tls:platform-cert-invalid", "fail", "TRAEFIK_PUBKEY");
    assert!(f.message.contains("CA bundle"), "{}", f.message);
    // The private keys never appear.
    assert!(!r.stdout.contains("PRIVATE KEY"), "{}", r.stdout);
}

/// The fixture with `edit` applied (a text replacement that must match).
fn edited(sb: &Sandbox, old: &str, new: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture()).unwrap();
    assert!(text.contains(old), "the fixture no longer contains {old:?}");
    sb.write("config.yml", text.replacen(old, new, 1))
}

/// The 16 event buckets, named as the deployment prerequisites name them.
fn event_buckets(prefix: &str) -> Vec<String> {
    (0..16)
        .map(|i| format!("{prefix}self-hosted-events-{i:x}"))
        .collect()
}

fn findings_with(r: &Run, code: &str) -> Vec<crate::harness::F> {
    r.findings()
        .into_iter()
        .filter(|f| f.code == code)
        .collect()
}

/// A 1.0.0 file implies the 16 event buckets of the default prefix: with
/// `--write-probe` each is listed, and written, read back and emptied, with
/// path-style addressing (the vendor's default). Nothing is left in any.
#[test]
fn the_sixteen_event_buckets_are_each_checked_and_written() {
    let sb = Sandbox::new("vendor::event_buckets");
    let lab = Lab::get();
    let r = run_vendor(&sb, &fixture(), &lab_vars(&lab), &["--write-probe"]);
    r.code(0);
    let ep = lab.var("S3_ENDPOINT");
    for b in event_buckets(lab.var("S3_EVENT_PREFIX")) {
        let f = r.has("s3:bucket-ok", "pass", &format!("{ep} {b}"));
        assert_eq!(f.evidence["bucket"], b.as_str());
        assert_eq!(f.evidence["addressing"], "path-style");
        r.has("s3:write-probe", "pass", &format!("{ep} {b}"));
    }
    assert_eq!(findings_with(&r, "s3:bucket-ok").len(), 16, "{}", r.stdout);
    assert_eq!(
        findings_with(&r, "s3:write-probe").len(),
        16,
        "{}",
        r.stdout
    );
    // The storage's own view: no probe object (nor its folder) anywhere.
    let left = crate::harness::settled(|| {
        event_buckets(lab.var("S3_EVENT_PREFIX"))
            .iter()
            .flat_map(|b| crate::s3::filer_entries(&lab, &format!("/buckets/{b}/")))
            .filter(|e| e.contains("airgap-verify-probe"))
            .collect()
    });
    assert!(left.is_empty(), "{left:?}");
}

/// Without `--write-probe` the event buckets are only listed: nothing is
/// written, and the report says so.
#[test]
fn without_write_probe_the_event_buckets_are_only_listed() {
    let sb = Sandbox::new("vendor::event_buckets_read_only");
    let lab = Lab::get();
    let r = run_vendor(&sb, &fixture(), &lab_vars(&lab), &[]);
    r.code(0);
    r.lacks("s3:write-probe");
    let ok = findings_with(&r, "s3:bucket-ok");
    assert_eq!(ok.len(), 16, "{}", r.stdout);
    assert!(
        ok.iter().all(|f| f.message.contains("add --write-probe")),
        "{ok:?}"
    );
}

/// One bucket missing among the 16 (the lab's `partial-` set lacks
/// `-7`): that one is named, the 15 others pass.
#[test]
fn a_missing_event_bucket_among_the_sixteen_is_named() {
    let sb = Sandbox::new("vendor::event_bucket_missing");
    let lab = Lab::get();
    let cfg = edited(
        &sb,
        "    config:\n      global:\n",
        &format!(
            "    config:\n      storage-manager:\n        s3_bucket_prefix: \"{}\"\n      global:\n",
            lab.var("S3_PARTIAL_PREFIX")
        ),
    );
    let r = run_vendor(&sb, &cfg, &lab_vars(&lab), &[]);
    r.code(1);
    let missing = lab.var("S3_PARTIAL_MISSING");
    let f = r.has("s3:bucket-missing", "fail", missing);
    assert!(f.message.contains(missing), "{}", f.message);
    assert_eq!(
        findings_with(&r, "s3:bucket-missing").len(),
        1,
        "{}",
        r.stdout
    );
    let ok = findings_with(&r, "s3:bucket-ok");
    assert_eq!(ok.len(), 15, "{}", r.stdout);
    assert!(ok.iter().all(|f| !f.target.contains(missing)));
    assert!(ok
        .iter()
        .all(|f| f.target.contains(lab.var("S3_PARTIAL_PREFIX"))));
}

/// A key that may read and write but not list (SeaweedFS identity without
/// `List`): every event bucket is denied at the listing, and the message
/// says that listing is what the key lacks.
#[test]
fn a_key_without_list_permission_is_denied_on_every_bucket() {
    let sb = Sandbox::new("vendor::event_bucket_nolist");
    let lab = Lab::get();
    let mut vars = lab_vars(&lab);
    for (k, v) in vars.iter_mut() {
        match *k {
            "STORAGE_S3_ACCESS_KEY" => *v = lab.var("S3_NOLIST_ACCESS_KEY").into(),
            "STORAGE_S3_SECRET_KEY" => *v = lab.var("S3_NOLIST_SECRET_KEY").into(),
            _ => {}
        }
    }
    let r = run_vendor(&sb, &fixture(), &vars, &["--write-probe"]);
    r.code(1);
    let denied = findings_with(&r, "s3:access-denied");
    assert_eq!(denied.len(), 16, "{}", r.stdout);
    for b in event_buckets(lab.var("S3_EVENT_PREFIX")) {
        let f = r.has("s3:access-denied", "fail", &b);
        assert!(
            f.message.contains(&format!("listing bucket {b}")) && f.message.contains("list"),
            "{}",
            f.message
        );
    }
    r.lacks("s3:write-probe").lacks("s3:bucket-ok");
    assert!(!r.stdout.contains(lab.var("S3_NOLIST_SECRET_KEY")));
}

/// `force_path_style_access: false` asks for virtual-host addressing,
/// which the lab's storage (no wildcard DNS) cannot serve: the mismatch
/// names the vendor's key to change.
#[test]
fn virtual_host_addressing_follows_force_path_style_access() {
    let sb = Sandbox::new("vendor::event_bucket_addressing");
    let lab = Lab::get();
    let cfg = edited(
        &sb,
        "    secret_key: \"${env.STORAGE_S3_SECRET_KEY}\"\n",
        "    secret_key: \"${env.STORAGE_S3_SECRET_KEY}\"\n    force_path_style_access: false\n",
    );
    let r = run_vendor(&sb, &cfg, &lab_vars(&lab), &[]);
    r.code(1);
    let f = r.has(
        "s3:addressing-mismatch",
        "fail",
        &format!("{}self-hosted-events-0", lab.var("S3_EVENT_PREFIX")),
    );
    assert_eq!(f.evidence["configured"], "virtual-host");
    assert_eq!(f.evidence["works"], "path-style");
    assert!(
        f.message
            .contains("global.platform_storage.force_path_style_access: true"),
        "{}",
        f.message
    );
    r.lacks("s3:bucket-ok");
}

/// `airgap-verify listen --role node` on each node of the fixture's
/// inventory (loopback addresses 127.0.1.x), stopped when dropped.
struct Nodes(Vec<std::process::Child>);

impl Nodes {
    const ADDRS: [&'static str; 6] = [
        "127.0.1.1",
        "127.0.1.2",
        "127.0.1.3",
        "127.0.1.10",
        "127.0.1.11",
        "127.0.1.12",
    ];

    fn start() -> Nodes {
        use std::io::BufRead;
        let mut nodes = Nodes(Vec::new());
        for a in Self::ADDRS {
            let mut child = Command::new(BIN)
                .args([
                    "listen",
                    "--role",
                    "node",
                    "--bind",
                    a,
                    "--deadline",
                    "120s",
                ])
                .arg("--sekoia-config")
                .arg(fixture())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start listen");
            let stderr = child.stderr.take().unwrap();
            nodes.0.push(child);
            // Ready once it says so (every port bound); a listener that
            // exits first (a port taken) fails the test here.
            let mut lines = std::io::BufReader::new(stderr).lines();
            let ready = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("listen: ready"));
            assert!(ready, "listen on {a} exited before it was ready");
            // Kept drained: a closed pipe would fail its later writes.
            std::thread::spawn(move || lines.for_each(drop));
        }
        nodes
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The main job on the vendor's example: `check` derives the services, the
/// event buckets and the orchestration node's flows to every node of the
/// inventory from the file, and is ready once the nodes answer.
#[test]
fn check_passes_on_the_vendors_example_when_the_nodes_answer() {
    let sb = Sandbox::new("vendor::check_example");
    let lab = Lab::get();
    let nodes = Nodes::start();
    let p = sb.write("perimeter.yml", lab.config("dns:\n  public_names: []\n"));
    let mut cmd = Command::new(BIN);
    cmd.arg("check")
        .arg("--config")
        .arg(&p)
        .arg("--sekoia-config")
        .arg(fixture())
        .args([
            "--write-probe",
            "--format",
            "json",
            "--no-progress",
            "--timeout",
            "3s",
        ])
        .env("NO_COLOR", "1");
    for v in VARS {
        cmd.env_remove(v);
    }
    for (k, v) in lab_vars(&lab) {
        cmd.env(k, v);
    }
    let r = Run::from(cmd.output().expect("run airgap-verify"));
    let fails: Vec<_> = r
        .findings()
        .into_iter()
        .filter(|f| f.status == "fail")
        .map(|f| format!("{} {} {}", f.code, f.target, f.message))
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
    r.code(0);
    for a in Nodes::ADDRS {
        r.has("flow:open", "pass", &format!("tcp {a}:22"));
    }
    r.has("flow:open", "pass", "tcp 127.0.1.1:6443");
    assert_eq!(
        findings_with(&r, "s3:write-probe").len(),
        16,
        "{}",
        r.stdout
    );
    r.has("run:archive-not-checked", "skip", "check");
    // Without the nodes, the same run fails on the flows, naming them.
    drop(nodes);
    let r = Run::from(cmd.output().expect("run airgap-verify"));
    r.code(1);
    r.has("flow:closed", "fail", "tcp 127.0.1.10:22");
}

/// The dry run lists every check the run makes: each finding of a real run
/// of the vendor's example against the lab belongs to a line of its
/// `--dry-run` (before the probes became one list, the platform
/// certificate was checked but never announced).
#[test]
fn the_dry_run_announces_every_check_the_run_makes() {
    let sb = Sandbox::new("vendor::dry_run_is_the_run");
    let lab = Lab::get();
    let run = run_vendor(&sb, &fixture(), &lab_vars(&lab), &[]);
    let dry = run_vendor(&sb, &fixture(), &lab_vars(&lab), &["--dry-run"]);
    assert!(dry.code == 0, "{}", dry.stderr);
    let plan = dry.stdout.to_lowercase();
    // Each family of the run, and the words its dry-run line starts with.
    let words = |code: &str| -> &'static str {
        match code.split(':').next().unwrap() {
            "dns" => "dns ",
            "ntp" => "ntp ",
            "smtp" => "smtp ",
            "git" => "git ",
            "registry" => "registry ",
            "s3" => "s3 ",
            "egress" => "egress",
            "config" => "config finding",
            _ if code.starts_with("tls:platform") => "platform certificate",
            _ => "",
        }
    };
    let mut missing = Vec::new();
    for f in run.findings() {
        let w = words(&f.code);
        if !w.is_empty() && !plan.contains(w) {
            missing.push(format!("{} ({})", f.code, w));
        }
    }
    assert!(
        run.findings()
            .iter()
            .any(|f| f.code.starts_with("tls:platform")),
        "the example has no platform certificate, so the run reports it"
    );
    assert!(
        missing.is_empty(),
        "checks the dry run did not announce: {missing:?}\n{plan}"
    );
}
