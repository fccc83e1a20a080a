//! The SMTP probe against the lab's postfix (25 STARTTLS, 587 STARTTLS +
//! AUTH, 465 implicit TLS + AUTH; listeners with an expired, a rogue-CA and
//! a wrong-name certificate; one without TLS) and the tarpit.

use std::time::Duration;

use crate::harness::lab::{services, Lab, Timed};
use crate::harness::Sandbox;

const ONE: Duration = Duration::from_secs(1);

fn relay(sb: &Sandbox, lab: &Lab, relay: &str, extra: &[&str]) -> Timed {
    let yaml = lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\nsmtp:\n  - {relay}\n",
        lab.var("DNS_AUTH_ADDR")
    ));
    services(sb, &yaml, "1s", extra)
}

#[test]
fn smtp_pass_on_25_587_and_465() {
    let sb = Sandbox::new("smtp::pass");
    let lab = Lab::get();
    let h = lab.var("SMTP_HOST");
    let z = lab.var("LAB_ZONE");

    let t = relay(&sb, &lab, &format!("{{host: {h}, port: 25}}"), &[]);
    let r = t.within(ONE);
    r.code(0).clean();
    let f = r.has("smtp:ready", "pass", &format!("{h}:25"));
    let ev = f.evidence.to_string();
    assert!(
        ev.contains("STARTTLS"),
        "extensions before TLS listed: {ev}"
    );
    let f = r.has("tls:verified", "pass", &format!("{h}:25"));
    assert!(f.evidence["chain"][0]["sans"].to_string().contains(h));

    let t = relay(
        &sb,
        &lab,
        &format!("{{host: {h}, port: 587, username: probe, password_env: SMTP_PASSWORD, mail_from: probe@{z}, rcpt_to: soc@{z}}}"),
        &[],
    );
    let r = t.within(ONE);
    r.code(0).clean();
    r.has("smtp:ready", "pass", &format!("{h}:587"));
    r.has("smtp:auth-ok", "pass", &format!("{h}:587"));
    r.has("smtp:relay-accepted", "pass", &format!("{h}:587"));
    r.lacks("smtp:test-mail-sent").lacks("smtp:auth-in-clear");

    let t = relay(
        &sb,
        &lab,
        &format!(
            "{{host: {h}, port: 465, tls: true, username: probe, password_env: SMTP_PASSWORD}}"
        ),
        &[],
    );
    let r = t.within(ONE);
    r.code(0).clean();
    r.has("tls:verified", "pass", &format!("{h}:465"));
    r.has("smtp:auth-ok", "pass", &format!("{h}:465"));
}

#[test]
fn smtp_faults_starttls_password_relay() {
    let sb = Sandbox::new("smtp::faults");
    let lab = Lab::get();
    let h = lab.var("SMTP_HOST");
    let plain = lab.var("SMTP_PLAIN_HOST");

    // STARTTLS required but missing.
    let t = relay(&sb, &lab, &format!("{{host: {plain}, port: 25}}"), &[]);
    t.within(ONE)
        .code(1)
        .has("smtp:no-starttls", "fail", &format!("{plain}:25"));

    // AUTH offered before TLS: reported, and the password is not sent.
    let t = relay(
        &sb,
        &lab,
        &format!("{{host: {plain}, port: 587, username: probe, password_env: SMTP_PASSWORD}}"),
        &[],
    );
    let r = t.within(ONE);
    r.code(1)
        .has("smtp:auth-in-clear", "fail", &format!("{plain}:587"));
    r.lacks("smtp:auth-ok").lacks("smtp:auth-failed");

    // A wrong password.
    let yaml = lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\nsmtp: {{host: {h}, port: 587, username: probe, password_env: LAB_WRONG_PW}}\n",
        lab.var("DNS_AUTH_ADDR")
    ));
    let t = crate::harness::lab::services_env(
        &sb,
        &yaml,
        "1s",
        &[],
        &[("LAB_WRONG_PW", "not-the-password")],
    );
    t.within(ONE)
        .code(1)
        .has("smtp:auth-failed", "fail", &format!("{h}:587"));

    // Relay refused for an outside recipient without authentication.
    let t = relay(
        &sb,
        &lab,
        &format!(
            "{{host: {h}, port: 25, mail_from: probe@{}, rcpt_to: someone@outside.example}}",
            lab.var("LAB_ZONE")
        ),
        &[],
    );
    let f = t
        .within(ONE)
        .code(1)
        .has("smtp:relay-refused", "fail", &format!("{h}:25"));
    assert!(f.message.contains("554"), "{}", f.message);
}

#[test]
fn smtp_tls_faults_rogue_expired_wrong_name() {
    let sb = Sandbox::new("smtp::tls_faults");
    let lab = Lab::get();
    for (host_var, code) in [
        ("SMTP_ROGUE_HOST", "tls:unknown-issuer"),
        ("SMTP_EXPIRED_HOST", "tls:expired"),
        ("SMTP_WRONGNAME_HOST", "tls:name-mismatch"),
    ] {
        let host = lab.var(host_var);
        for port in ["25", "465"] {
            let tls = if port == "465" { ", tls: true" } else { "" };
            let t = relay(&sb, &lab, &format!("{{host: {host}, port: {port}{tls}, username: probe, password_env: SMTP_PASSWORD}}"), &[]);
            let r = t.within(ONE);
            let f = r.code(1).has(code, "fail", &format!("{host}:{port}"));
            assert!(
                f.evidence["chain"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()),
                "the chain is reported: {:?}",
                f.evidence
            );
            // Nothing is sent over a connection that failed verification.
            r.lacks("smtp:auth-ok").lacks("smtp:auth-failed");
        }
    }
    // The good server with the wrong CA bundle.
    let h = lab.var("SMTP_HOST");
    let t = relay(
        &sb,
        &lab,
        &format!("{{host: {h}, port: 465, tls: true}}"),
        &["--ca-bundle", lab.var("ROGUE_CA_PEM")],
    );
    t.within(ONE)
        .code(1)
        .has("tls:unknown-issuer", "fail", &format!("{h}:465"));
}

#[test]
fn smtp_tarpit_fails_at_its_deadline() {
    let sb = Sandbox::new("smtp::tarpit");
    let lab = Lab::get();
    let tarpit = lab.var("TARPIT_ADDR");
    let h = lab.var("SMTP_HOST");
    let yaml = lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\nsmtp:\n  - {{host: {tarpit}, port: 25}}\n  - {{host: {h}, port: 25}}\n",
        lab.var("DNS_AUTH_ADDR")
    ));
    let t = services(&sb, &yaml, "2s", &[]);
    let r = t.within(Duration::from_secs(2));
    let f = r
        .code(1)
        .has("net:no-reply", "fail", &format!("{tarpit}:25"));
    assert_eq!(f.evidence["deadline_ms"], 2000);
    r.has("smtp:ready", "pass", &format!("{h}:25"));
    assert!(t.elapsed >= Duration::from_millis(1900), "{:?}", t.elapsed);
}
