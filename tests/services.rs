//! `airgap-verify services` against the lab's real servers: unbound (auth,
//! forwarder, leaky), chrony (synced, unsynced), postfix, the nft blackhole
//! and the tarpit. Every case asserts its code, its target and that it came
//! within its deadline plus one second.

use std::time::Duration;

use crate::harness::lab::{services, Lab};
use crate::harness::{av, Sandbox};

const ONE: Duration = Duration::from_secs(1);

#[test]
fn dns_pass_over_udp_and_tcp_on_auth_and_forwarder() {
    let sb = Sandbox::new("services::dns_pass");
    let lab = Lab::get();
    let yaml = lab.config(&format!(
        "dns:\n  servers: [{}, {}]\n  expect:\n    - {{name: {}, addresses: [{}]}}\n    - {{name: {}, addresses: [{}]}}\n    - {{name: {}}}\n",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("DNS_FORWARDER_ADDR"),
        lab.var("SMTP_HOST"),
        lab.var("SMTP_ADDR"),
        lab.var("DNS_CNAME_NAME"),
        lab.var("DNS_CNAME_ADDR"),
        lab.var("NTP_HOST"),
    ));
    let t = services(&sb, &yaml, "1s", &[]);
    let run = t.within(ONE);
    run.code(0).clean();
    for server in [lab.var("DNS_AUTH_ADDR"), lab.var("DNS_FORWARDER_ADDR")] {
        for tr in ["udp", "tcp"] {
            let f = run.has(
                "dns:answer",
                "pass",
                &format!("{server}:53/{tr} {}", lab.var("SMTP_HOST")),
            );
            assert_eq!(f.evidence["transport"], tr);
            assert_eq!(f.evidence["rcode"], "NOERROR");
            assert_eq!(f.evidence["answers"][0], lab.var("SMTP_ADDR"));
            run.has(
                "dns:no-recursion",
                "pass",
                &format!("{server}:53/{tr} example.com"),
            );
        }
    }
    // The authoritative server says so; the forwarder does not.
    let auth = run.has(
        "dns:answer",
        "pass",
        &format!(
            "{}:53/udp {}",
            lab.var("DNS_AUTH_ADDR"),
            lab.var("SMTP_HOST")
        ),
    );
    assert!(
        auth.evidence["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "aa"),
        "{:?}",
        auth.evidence
    );
    // The forwarder chases the CNAME through the zone.
    let cname = run.has(
        "dns:answer",
        "pass",
        &format!(
            "{}:53/udp {}",
            lab.var("DNS_FORWARDER_ADDR"),
            lab.var("DNS_CNAME_NAME")
        ),
    );
    assert_eq!(
        cname.evidence["cname_chain"][0],
        lab.var("DNS_CNAME_TARGET")
    );
}

#[test]
fn dns_faults_missing_name_wrong_address_public_address() {
    let sb = Sandbox::new("services::dns_faults");
    let lab = Lab::get();
    let yaml = lab.config(&format!(
        "dns:\n  servers: [{}]\n  transports: [udp]\n  expect:\n    - {{name: ghost.{zone}}}\n    - {{name: {}, addresses: [127.0.0.99]}}\n    - {{name: {}}}\n",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("SMTP_HOST"),
        lab.var("DNS_LEAK_NAME"),
        zone = lab.var("LAB_ZONE"),
    ));
    let t = services(&sb, &yaml, "1s", &[]);
    let run = t.within(ONE);
    run.code(1);
    let f = run.has("dns:no-answer", "fail", "ghost.");
    assert_eq!(f.evidence["rcode"], "NXDOMAIN");
    let f = run.has("dns:wrong-address", "fail", lab.var("SMTP_HOST"));
    assert_eq!(f.evidence["expected"][0], "127.0.0.99");
    let f = run.has("dns:outside-perimeter", "fail", lab.var("DNS_LEAK_NAME"));
    assert_eq!(f.evidence["outside"][0], lab.var("DNS_LEAK_ADDR"));
}

#[test]
fn dns_resolver_that_recurses_warns_and_fails_when_strict() {
    let sb = Sandbox::new("services::dns_recursion");
    let lab = Lab::get();
    let yaml = lab.config(&format!(
        "dns:\n  servers: [{}]\n  public_names: [{}]\n",
        lab.var("DNS_LEAKY_ADDR"),
        lab.var("DNS_PUBLIC_NAME"),
    ));
    let t = services(&sb, &yaml, "1s", &[]);
    let run = t.within(ONE);
    run.code(0);
    let f = run.has(
        "dns:recursion-leak",
        "warn",
        &format!("{}:53/udp", lab.var("DNS_LEAKY_ADDR")),
    );
    assert_eq!(f.evidence["answers"][0], lab.var("DNS_PUBLIC_LEAK_ADDR"));
    run.has(
        "dns:recursion-leak",
        "warn",
        &format!("{}:53/tcp", lab.var("DNS_LEAKY_ADDR")),
    );

    let strict = services(&sb, &yaml, "1s", &["--strict-airgap"]);
    strict
        .within(ONE)
        .code(1)
        .has("dns:recursion-leak", "fail", lab.var("DNS_LEAKY_ADDR"));
    // --fail-on warn turns the warning into a failing exit too.
    services(&sb, &yaml, "1s", &["--fail-on", "warn"])
        .run
        .code(1);
}

#[test]
fn ntp_synchronised_server_passes_with_its_numbers() {
    let sb = Sandbox::new("services::ntp_pass");
    let lab = Lab::get();
    // By name: resolved through the lab's DNS, not the machine's resolver.
    let yaml = lab.config(&format!(
        "dns:\n  servers: [{}]\n  public_names: []\nntp:\n  servers: [{}]\n",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("NTP_HOST")
    ));
    let t = services(&sb, &yaml, "1s", &[]);
    let run = t.within(ONE);
    run.code(0).clean();
    let f = run.has("ntp:synchronised", "pass", lab.var("NTP_HOST"));
    assert_eq!(
        f.evidence["stratum"].as_u64().unwrap().to_string(),
        lab.var("NTP_STRATUM")
    );
    assert_eq!(f.evidence["leap_indicator"], 0);
    assert_eq!(
        f.evidence["address"],
        format!("{}:123", lab.var("NTP_ADDR"))
    );
    for k in ["offset_ms", "delay_ms", "root_distance_ms", "reference_id"] {
        assert!(!f.evidence[k].is_null(), "{k} missing: {:?}", f.evidence);
    }
    assert!(f.evidence["offset_ms"].as_f64().unwrap().abs() < 500.0);
}

#[test]
fn ntp_faults_unsynchronised_offset_and_stratum() {
    let sb = Sandbox::new("services::ntp_faults");
    let lab = Lab::get();
    let yaml = lab.config(&format!(
        "ntp:\n  servers: [{}]\n",
        lab.var("NTP_UNSYNC_ADDR")
    ));
    let run = services(&sb, &yaml, "1s", &[]);
    let f = run
        .within(ONE)
        .code(1)
        .has("ntp:unsynchronised", "fail", lab.var("NTP_UNSYNC_ADDR"));
    assert_eq!(f.evidence["leap_indicator"], 3);
    run.run.lacks("ntp:synchronised");

    // A threshold no real clock meets: the offset check must fire.
    let yaml = lab.config(&format!(
        "ntp:\n  servers: [{}]\n  max_offset: 1ns\n",
        lab.var("NTP_ADDR")
    ));
    let run = services(&sb, &yaml, "1s", &[]);
    run.within(ONE)
        .code(1)
        .has("ntp:offset-too-large", "fail", lab.var("NTP_ADDR"));
    run.run.lacks("ntp:synchronised");

    let yaml = lab.config(&format!(
        "ntp:\n  servers: [{}]\n  max_stratum: 5\n",
        lab.var("NTP_ADDR")
    ));
    let run = services(&sb, &yaml, "1s", &[]);
    let f = run
        .within(ONE)
        .code(1)
        .has("ntp:stratum-too-high", "fail", lab.var("NTP_ADDR"));
    assert_eq!(f.evidence["max_stratum"], 5);
}

#[test]
fn blackholed_targets_fail_at_their_deadline_and_do_not_delay_the_rest() {
    let sb = Sandbox::new("services::blackhole");
    let lab = Lab::get();
    let hole = lab.var("BLACKHOLE_ADDR");
    let yaml = lab.config(&format!(
        "dns:\n  servers: [{hole}, {}]\n  public_names: []\n  expect: [{{name: {}}}]\nntp:\n  servers: [{hole}, {}]\n",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("NTP_HOST"),
        lab.var("NTP_ADDR"),
    ));
    let t = services(&sb, &yaml, "2s", &[]);
    let run = t.within(Duration::from_secs(2));
    run.code(1);
    let f = run.has("net:timeout", "fail", &format!("{hole}:53/udp"));
    assert_eq!(f.evidence["deadline_ms"], 2000);
    run.has("net:timeout", "fail", &format!("{hole}:53/tcp"));
    run.has("net:timeout", "fail", &format!("{hole}:123"));
    // The healthy servers still answered, concurrently.
    run.has("ntp:synchronised", "pass", lab.var("NTP_ADDR"));
    run.has("dns:answer", "pass", lab.var("DNS_AUTH_ADDR"));
    assert!(
        t.elapsed >= Duration::from_millis(1900),
        "the blackhole answered? {:?}",
        t.elapsed
    );
}

#[test]
fn targets_outside_the_perimeter_are_reported_and_never_contacted() {
    let sb = Sandbox::new("services::outside");
    let lab = Lab::get();
    // 192.0.2.1 (TEST-NET-1) would time out if it were contacted; the run
    // must end at once instead.
    let yaml = lab.config(&format!(
        "dns:\n  servers: [{}, 192.0.2.1]\n  public_names: []\nntp:\n  servers: [192.0.2.1, {}, ghost.{}]\n",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("DNS_LEAK_NAME"),
        lab.var("LAB_ZONE"),
    ));
    let t = services(&sb, &yaml, "3s", &[]);
    assert!(
        t.elapsed < Duration::from_secs(2),
        "something was contacted: {:?}",
        t.elapsed
    );
    let run = &t.run;
    run.code(1);
    run.has("config:outside-perimeter", "fail", "192.0.2.1:53");
    run.has("config:outside-perimeter", "fail", "192.0.2.1:123");
    // A name that resolves outside: not contacted either.
    let f = run.has("net:outside-perimeter", "fail", lab.var("DNS_LEAK_NAME"));
    assert_eq!(f.evidence["address"], lab.var("DNS_LEAK_ADDR"));
    // A name the perimeter's DNS does not know (the machine's resolver is not asked).
    run.has(
        "net:unresolved",
        "fail",
        &format!("ghost.{}", lab.var("LAB_ZONE")),
    );
}

#[test]
fn configuration_errors_name_file_line_column_and_exit_2() {
    let sb = Sandbox::new("services::config_errors");
    let cases: &[(&str, &str)] = &[
        (
            "ntp:\n  servers: [a]\n  max_offset: soon\n",
            ":3:15: ntp.max_offset: `soon` is not a duration",
        ),
        (
            "allowed_networks: [10.0.0.0/33]\n",
            ":1:20: allowed_networks[0]: `10.0.0.0/33` is not a CIDR",
        ),
        (
            "dns:\n  servers: [ns.example]\n",
            ":2:13: dns.servers[0]: `ns.example` is not an IP address",
        ),
        (
            "smtp:\n  host: a\n  prot: 25\n",
            ":3:3: smtp.prot: unknown field `prot`",
        ),
        (
            "smtp:\n  - host: a\n  - host: b\n    port: x\n",
            ":4:11: smtp[1].port: invalid type",
        ),
        ("dsn: {}\n", ":1:1: dsn: unknown field `dsn`"),
        ("ntp: [unclosed\n", "perimeter.yml:"),
        (
            "ntp:\n  servers: [a]\n  max_stratum: 16\n",
            "ntp.max_stratum: 16 is not a stratum",
        ),
        (
            "smtp: {host: a, password_env: X, password_file: y}\n",
            "set password_env or password_file, not both",
        ),
        (
            "smtp: {host: a, rcpt_to: \"a@b\\r\\nDATA\"}\n",
            ":1:26: smtp[0].rcpt_to: `a@b\\r\\nDATA` must be a single word",
        ),
    ];
    for (yaml, want) in cases {
        let p = sb.write("perimeter.yml", yaml);
        let r = av(["services", "--config", p.to_str().unwrap()]);
        r.code(2);
        let line = r.stderr.trim();
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        assert!(line.contains(want), "for {yaml:?}: want {want:?} in {line}");
        assert!(line.contains("perimeter.yml"), "{line}");
    }
    // A CA bundle that is not PEM is a configuration error before any probe.
    let bad_ca = sb.write("ca.pem", "not a certificate");
    let p = sb.write(
        "perimeter.yml",
        format!(
            "ca_bundle: {}\nntp: {{servers: [127.0.0.20]}}\n",
            bad_ca.display()
        ),
    );
    let r = av(["services", "--config", p.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr.contains("ca.pem: holds no PEM certificate"),
        "{}",
        r.stderr
    );
    // Missing file, no config at all, bad --timeout.
    av(["services", "--config", "/nonexistent/perimeter.yml"]).code(2);
    let r = av(["services"]);
    r.code(2);
    assert!(r.stderr.contains("--config"), "{}", r.stderr);
    av([
        "services",
        "--config",
        p.to_str().unwrap(),
        "--timeout",
        "0s",
    ])
    .code(2);
}

#[test]
fn init_writes_a_template_that_loads_and_never_overwrites() {
    let sb = Sandbox::new("services::init");
    let p = sb.path("perimeter.yml");
    av(["init", p.to_str().unwrap()]).code(0);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("password_env: SMTP_PASSWORD"));
    // The template names a CA that does not exist here; with --ca-bundle
    // pointing at a real one it loads. --dry-run lists the probes without
    // contacting the template's 10.x addresses.
    let lab = Lab::get();
    let r = av([
        "services",
        "--config",
        p.to_str().unwrap(),
        "--ca-bundle",
        &lab.ca(),
        "--dry-run",
    ]);
    r.code(0);
    assert!(
        r.stdout
            .contains("dns 10.0.0.53:53/udp: 2 expected name(s), 1 public name(s)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("smtp smtp.example.internal:587: STARTTLS required, AUTH"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("ntp ntp.example.internal:123: max offset 500 ms, max stratum 10"),
        "{}",
        r.stdout
    );
    let second = av(["init", p.to_str().unwrap()]);
    second.code(2);
    assert!(
        second.stderr.contains("already exists"),
        "{}",
        second.stderr
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
}

#[test]
fn json_schema_in_docs_matches_the_types() {
    let r = av(["init", "--schema"]);
    r.code(0);
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/perimeter.schema.json"
    ))
    .unwrap();
    assert!(r.stdout == docs, "docs/perimeter.schema.json is stale: regenerate with `airgap-verify init --schema > docs/perimeter.schema.json`");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for key in [
        "ca_bundle",
        "allowed_networks",
        "timeouts",
        "dns",
        "ntp",
        "smtp",
    ] {
        assert!(v["properties"][key].is_object(), "schema lacks {key}");
    }
}

#[test]
fn sekoia_templates_of_both_generations_are_flagged_and_never_contacted() {
    let sb = Sandbox::new("services::sekoia_placeholders");
    let root = env!("CARGO_MANIFEST_DIR");
    // The templates point at 10.0.0.53: a perimeter limited to loopback
    // drops it, so the test never leaves this machine.
    let p = sb.write("perimeter.yml", "allowed_networks: [127.0.0.0/8]\n");
    for (file, keys, secret_keys) in [
        (
            "config-1.0.0.yml",
            &[
                "global.host",
                "global.delivery_host",
                "global.platform_storage.endpoint",
                "utils.git.repo_url",
                "utils.oci_registry.host",
                "modules.platform_configuration.config.email.smtp.host",
                "modules.platform_configuration.config.email.smtp.user",
            ][..],
            &["modules.platform_configuration.config.email.smtp.password"][..],
        ),
        (
            "config-0.0.1.yml",
            &[
                "utils.oci_registry.url",
                "modules.k3s_install.registry_url",
                "modules.quickwit.s3.endpoint",
                "modules.platform_configuration.config.email.smtp.host",
                "modules.platform_configuration.config.email.smtp.user",
            ][..],
            &[][..],
        ),
    ] {
        let cfg = format!("{root}/testdata/sekoia/{file}");
        let t = std::time::Instant::now();
        let r = av([
            "services",
            "--config",
            p.to_str().unwrap(),
            "--sekoia-config",
            &cfg,
            "--format",
            "json",
            "--timeout",
            "3s",
        ]);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "something was contacted"
        );
        r.code(1);
        for key in keys {
            let f = r.has("config:placeholder", "fail", &format!("{file} {key}"));
            assert_eq!(f.evidence["key"], *key);
            assert!(
                f.evidence["value"].is_string(),
                "a non-secret value is quoted: {f:?}"
            );
        }
        for key in secret_keys {
            let f = r.has("config:placeholder", "fail", &format!("{file} {key}"));
            assert!(
                f.evidence.get("value").is_none(),
                "a secret is never quoted: {f:?}"
            );
        }
        let n = r
            .findings()
            .iter()
            .filter(|f| f.code == "config:placeholder")
            .count();
        assert_eq!(n, keys.len() + secret_keys.len(), "{}", r.stdout);
        // The DNS forwarders of the file are outside this perimeter.
        r.has("config:outside-perimeter", "fail", "10.0.0.53:53");
        r.lacks("smtp:ready").lacks("net:timeout");
    }
}

#[test]
fn sekoia_config_drives_the_probes_with_env_secrets() {
    let sb = Sandbox::new("services::sekoia_lab");
    let lab = Lab::get();
    let cfg = sb.write(
        "config.yml",
        format!(
            "global:\n  host: {git}\n  delivery_host: {reg}\n  kube_manager_host: 10.9.9.9\n  forward_dns: [{dns}]\n\
             utils:\n  git:\n    repo_url: https://{git}/sekoia/stacks.git\n  oci_registry:\n    host: {reg}\n\
             modules:\n  platform_configuration:\n    config:\n      email:\n        smtp:\n          host: {smtp}\n          port: 587\n          user: {user}\n          password: ${{env.LAB_SMTP_SECRET}}\n          tls: \"False\"\n          starttls: \"True\"\n",
            git = lab.var("GIT_HOST"),
            reg = lab.var("REGISTRY_HOST"),
            dns = lab.var("DNS_AUTH_ADDR"),
            smtp = lab.var("SMTP_HOST"),
            user = lab.var("SMTP_USER"),
        ),
    );
    let p = sb.write(
        "perimeter.yml",
        lab.config(&format!(
            "ntp:\n  servers: [{}]\ndns:\n  public_names: []\n",
            lab.var("NTP_HOST")
        )),
    );
    let t = std::time::Instant::now();
    let out = std::process::Command::new(crate::harness::BIN)
        .args([
            "services",
            "--config",
            p.to_str().unwrap(),
            "--sekoia-config",
            cfg.to_str().unwrap(),
        ])
        .args(["--format", "json", "--timeout", "1s"])
        .env("LAB_SMTP_SECRET", lab.var("SMTP_PASSWORD"))
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    let r = crate::harness::Run::from(out);
    r.code(1); // 10.9.9.9 is outside 127.0.0.0/8
    r.has(
        "config:outside-perimeter",
        "fail",
        "global.kube_manager_host",
    );
    let dns = lab.var("DNS_AUTH_ADDR");
    for name in [
        lab.var("GIT_HOST"),
        lab.var("REGISTRY_HOST"),
        lab.var("SMTP_HOST"),
    ] {
        r.has("dns:answer", "pass", &format!("{dns}:53/udp {name}"));
        r.has("dns:answer", "pass", &format!("{dns}:53/tcp {name}"));
    }
    r.has("ntp:synchronised", "pass", lab.var("NTP_HOST"));
    // The relay from config.yml is probed, with the secret from the environment.
    r.has(
        "smtp:auth-ok",
        "pass",
        &format!("{}:587", lab.var("SMTP_HOST")),
    );
}

#[test]
fn an_unreadable_secret_is_a_finding_that_names_the_reference() {
    let sb = Sandbox::new("services::unresolved_secret");
    let lab = Lab::get();
    let yaml = lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\nsmtp:\n  - {{host: {}, port: 587, username: probe, password_env: AIRGAP_TEST_UNSET_PW}}\n  - {{host: {}, port: 587, username: probe, password_file: missing-pw.txt}}\n",
        lab.var("DNS_AUTH_ADDR"),
        lab.var("SMTP_HOST"),
        lab.var("SMTP_ADDR"),
    ));
    let t = services(&sb, &yaml, "1s", &[]);
    let r = t.within(ONE);
    r.code(1);
    let f = r.has("config:unresolved-secret", "fail", "smtp[0]");
    assert!(
        f.message.contains("AIRGAP_TEST_UNSET_PW is not set"),
        "{}",
        f.message
    );
    let f = r.has("config:unresolved-secret", "fail", "smtp[1]");
    assert!(f.message.contains("missing-pw.txt"), "{}", f.message);
}

/// Secrets are never printed: sentinel passwords (one by environment, one in
/// a password file, one in clear in the vendor's config.yml) go through every
/// output format, the progress-free human report and stderr, and none of
/// them, nor their base64 forms (AUTH PLAIN / LOGIN), may appear.
#[test]
fn sentinel_secrets_appear_in_no_output_format() {
    use base64::Engine;
    let sb = Sandbox::new("services::sentinels");
    let lab = Lab::get();
    let env_secret = "SENTINEL-env-7f3a9c";
    let file_secret = "SENTINEL-file-51d2e8";
    let vendor_secret = "SENTINEL-vendor-c0ffee";
    sb.write("pw.txt", format!("{file_secret}\n"));
    let yaml = lab.config(&format!(
        "dns: {{servers: [{dns}], public_names: []}}\nsmtp:\n  - {{host: {h}, port: 587, username: probe, password_env: AIRGAP_SENTINEL_PW, mail_from: probe@{z}, rcpt_to: soc@{z}}}\n  - {{host: {h}, port: 465, tls: true, username: probe, password_file: pw.txt}}\n  - {{host: {plain}, port: 587, starttls: false, username: probe, password_env: AIRGAP_SENTINEL_PW}}\n",
        dns = lab.var("DNS_AUTH_ADDR"),
        h = lab.var("SMTP_HOST"),
        z = lab.var("LAB_ZONE"),
        plain = lab.var("SMTP_PLAIN_HOST"),
    )) + &format!(
        "git: {{url: {}, username: pusher, password_env: AIRGAP_SENTINEL_PW}}\nregistry: {{url: {}, project: sekoia, username: pusher, password_env: AIRGAP_SENTINEL_PW}}\ns3: {{endpoint: {}, buckets: [{}], access_key: {}, secret_key_env: AIRGAP_SENTINEL_PW}}\n",
        lab.var("GIT_REPO_URL"),
        lab.var("REGISTRY_TOKEN_URL"),
        lab.var("S3_ENDPOINT"),
        lab.var("S3_BUCKET"),
        lab.var("S3_ACCESS_KEY"),
    );
    let p = sb.write("perimeter.yml", yaml);
    let vendor = sb.write(
        "config.yml",
        format!(
            "global:\n  forward_dns: [{}]\nmodules:\n  platform_configuration:\n    config:\n      email:\n        smtp:\n          host: {}\n          port: 465\n          user: probe\n          password: {vendor_secret}\n          tls: \"True\"\n          starttls: \"False\"\n",
            lab.var("DNS_AUTH_ADDR"),
            lab.var("SMTP_HOST"),
        ),
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forbidden = Vec::new();
    for s in [env_secret, file_secret, vendor_secret] {
        forbidden.push(s.to_string());
        forbidden.push(b64.encode(s));
        forbidden.push(b64.encode(format!("\0probe\0{s}")));
        forbidden.push(b64.encode(format!("pusher:{s}")));
    }
    let mut reports = 0;
    for cfg_args in [
        vec!["--config", p.to_str().unwrap()],
        vec!["--sekoia-config", vendor.to_str().unwrap()],
    ] {
        for format in ["human", "json", "junit", "sarif", "html"] {
            let out = std::process::Command::new(crate::harness::BIN)
                .arg("services")
                .args(&cfg_args)
                .args([
                    "--format",
                    format,
                    "--timeout",
                    "1s",
                    "--color",
                    "always",
                    "--write-probe",
                ])
                .env("AIRGAP_SENTINEL_PW", env_secret)
                .output()
                .unwrap();
            let r = crate::harness::Run::from(out);
            assert_ne!(r.code, 2, "{}", r.stderr);
            assert!(r.stdout.len() > 200, "a real report: {}", r.stdout);
            for s in &forbidden {
                assert!(
                    !r.stdout.contains(s.as_str()),
                    "{format}: stdout holds a secret form {s}"
                );
                assert!(
                    !r.stderr.contains(s.as_str()),
                    "{format}: stderr holds a secret form {s}"
                );
            }
            reports += 1;
        }
    }
    assert_eq!(reports, 10);
}
