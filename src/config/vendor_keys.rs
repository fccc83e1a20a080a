//! The keys of a 1.0.0 `config.yml`, against what the vendor's 1.0.0
//! documentation names.
//!
//! Guarantees:
//! - a key the 1.0.0 release removed, which makes the vendor's own check
//!   reject the file, is a failing finding (`config:removed-key`) with its
//!   line;
//! - a key that the 1.0.0 pages do not name is a warning
//!   (`config:unknown-key`) with its line: the vendor's check rejects
//!   unsupported keys, but its full list is only known to its `config help`,
//!   so a sizing override can be legitimate;
//! - a setting whose vendor default is a placeholder, left out of the file,
//!   is a warning (`config:placeholder-default`) naming the key and the
//!   default that then applies (written in the file, a placeholder is a
//!   `config:placeholder` failure, like every other).
//!
//! The lists below follow the vendor's 1.0.0 pages "Configure the
//! deployment", "Technical requirements" and the 1.0.0 release notes.

use serde_norway::Value;

use super::Perimeter;
use crate::finding::{Code, Finding};

/// Removed in 1.0.0 (release notes, "Configuration changes").
pub const REMOVED_1_0_0: &[&str] = &[
    "utils.port_forward.keep_alive_interval",
    "utils.prometheus.query_window",
    "utils.prometheus.default_label_filters",
];

/// Settings whose default is a placeholder the vendor's check accepts
/// ("Settings with placeholder defaults"), with that default.
pub const PLACEHOLDER_DEFAULTS: &[(&str, &str)] = &[
    ("global.alternative_hosts", "api.sekoia.local"),
    (
        "modules.platform_configuration.config.grafana.root_url",
        "https://admin.sekoia.local/grafana",
    ),
    (
        "modules.platform_configuration.config.email.email_sender",
        "noreply@sekoia.local",
    ),
    (
        "modules.platform_configuration.config.email.smtp.host",
        "mail.server.local",
    ),
    (
        "modules.platform_configuration.config.email.smtp.user",
        "smtp-user",
    ),
    (
        "modules.platform_configuration.config.email.smtp.password",
        "smtp-password",
    ),
];

/// Keys the 1.0.0 pages name. A key is known when it is one of these or
/// leads to one.
const DOCUMENTED: &[&str] = &[
    "global.inherit_config",
    "global.host",
    "global.delivery_host",
    "global.kube_manager_host",
    "global.forward_dns",
    "global.alternative_hosts",
    "global.platform_storage.region",
    "global.platform_storage.endpoint",
    "global.platform_storage.access_key",
    "global.platform_storage.secret_key",
    "global.platform_storage.force_path_style_access",
    "global.version.platform.version",
    "global.version.platform.path",
    "global.version.fetch.offline",
    "global.version.fetch.endpoint",
    "global.version.fetch.connect-timeout",
    "global.version.fetch.read-timeout",
    "global.version.fetch.max-attempts",
    "utils.ansible.ssh-key",
    "utils.ansible.user",
    "utils.ansible.inventory.managers",
    "utils.ansible.inventory.workers",
    "modules.platform_configuration.config.global.instance_public_key",
    "modules.platform_configuration.config.email.email_sender",
    "modules.platform_configuration.config.email.smtp.host",
    "modules.platform_configuration.config.email.smtp.port",
    "modules.platform_configuration.config.email.smtp.user",
    "modules.platform_configuration.config.email.smtp.password",
    "modules.platform_configuration.config.email.smtp.tls",
    "modules.platform_configuration.config.email.smtp.starttls",
    "modules.platform_configuration.config.grafana.root_url",
    "modules.platform_configuration.config.traefik.custom_cert.crt",
    "modules.platform_configuration.config.traefik.custom_cert.key",
    "modules.platform_configuration.config.proxy.http_proxy",
    "modules.platform_configuration.config.proxy.https_proxy",
    "modules.platform_configuration.config.proxy.no_proxy",
    "modules.platform_configuration.config.storage-manager.s3_bucket_prefix",
    "modules.platform_configuration.config.assetmanagement.database.storage.size",
    "modules.platform_configuration.config.sicalertapi.database.storage.size",
    "modules.platform_configuration.config.hatchet.database.storage.size",
    "modules.platform_configuration.config.symphony.database.storage.size",
    "modules.k3s_install.pull_images_with_proxy",
    "modules.k3s_install.k3s_http_proxy",
    "modules.k3s_install.k3s_https_proxy",
    "modules.k3s_install.k3s_no_proxy",
    "modules.sync_rules_catalog.sync_timeout",
    "modules.sync_intake_formats.sync_timeout",
    "modules.platform_scale_down.enabled",
    "modules.platform_scale_down.grace_period",
    "modules.platform_scale_down.timeout",
    "modules.platform_scale_down.poll_interval",
    "modules.wipe_storage.enabled",
];

/// Sections whose keys the pages leave to the vendor's `config help`
/// (Git authentication, the registry's derived fields, the bundles of each
/// type): anything below them is accepted.
const OPEN: &[&str] = &["utils.git", "utils.oci_registry", "global.version.data"];

fn known(key: &str) -> bool {
    let under = |p: &str| key == p || key.starts_with(&format!("{p}."));
    OPEN.iter().any(|p| under(p))
        || DOCUMENTED
            .iter()
            .any(|d| *d == key || d.starts_with(&format!("{key}.")))
}

/// `key` is, or leads to, a key removed in 1.0.0.
fn leads_to_removed(key: &str) -> bool {
    REMOVED_1_0_0
        .iter()
        .any(|r| *r == key || r.starts_with(&format!("{key}.")))
}

/// Checks the keys of a 1.0.0 file (`root` parsed from `text`).
pub(crate) fn check(root: &Value, text: &str, file: &str, plan: &mut Perimeter) {
    let mut keys = Vec::new();
    collect(root, "", &mut keys);
    for key in &keys {
        let line = super::locate(text, key).map(|(l, _, _)| l);
        let at = |f: Finding| match line {
            Some(l) => f.evidence("line", l),
            None => f,
        };
        let where_ = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        if REMOVED_1_0_0.contains(&key.as_str()) {
            plan.findings.push(at(Finding::new(
                Code::ConfigRemovedKey,
                format!("{file} {key}"),
                format!("`{key}`{where_} was removed in Sekoia Self-Hosted 1.0.0: the vendor's check rejects the file until it is deleted"),
            )
            .evidence("key", key.as_str())));
        } else if !known(key) && !leads_to_removed(key) {
            plan.findings.push(at(Finding::new(
                Code::ConfigUnknownKey,
                format!("{file} {key}"),
                format!("`{key}`{where_} is not a setting the vendor's 1.0.0 documentation names; its check rejects unsupported keys: confirm it with `config help`, or remove it"),
            )
            .evidence("key", key.as_str())));
        }
    }
    for (key, default) in PLACEHOLDER_DEFAULTS {
        let set = super::sekoia::get(root, key).is_some_and(|v| !v.is_null());
        if !set {
            plan.findings.push(
                Finding::new(
                    Code::ConfigPlaceholderDefault,
                    format!("{file} {key}"),
                    format!("`{key}` is not set, so the vendor's default `{default}` applies: its check accepts it, but nothing in the perimeter answers to it"),
                )
                .evidence("key", *key)
                .evidence("default", *default),
            );
        }
    }
}

/// The keys of the file, stopping at the first one that is not known (its
/// children are not reported again) and at every leaf.
fn collect(v: &Value, prefix: &str, out: &mut Vec<String>) {
    let Value::Mapping(m) = v else { return };
    for (k, child) in m {
        let Some(k) = super::sekoia::text(k) else {
            continue;
        };
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        let stop =
            !(known(&key) || leads_to_removed(&key)) || REMOVED_1_0_0.contains(&key.as_str());
        out.push(key.clone());
        if !stop {
            collect(child, &key, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_follow_the_documentation() {
        assert!(known("global"));
        assert!(known("global.platform_storage.endpoint"));
        assert!(known("utils.git.http.username"));
        assert!(known("global.version.data.detection-rules.version"));
        assert!(!known("global.platform_storage.bucket"));
        assert!(!known("utils.prometheus"));
        assert!(!known("version"));
        for k in REMOVED_1_0_0 {
            assert!(!known(k), "{k}");
        }
        for (k, _) in PLACEHOLDER_DEFAULTS {
            assert!(known(k), "{k}");
        }
    }
}
