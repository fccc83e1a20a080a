//! The Git probe against the lab's nginx + git-http-backend.

use std::process::Command;
use std::time::Duration;

use crate::harness::lab::{services_env, Lab};
use crate::harness::slowlink::{interrupt, spawn_services, wait_for, SlowLink};
use crate::harness::Sandbox;

const ONE: Duration = Duration::from_secs(1);

fn git_yaml(lab: &Lab, url: &str, branch: &str, user: bool) -> String {
    let creds = if user {
        format!(
            "  username: {}\n  password_env: LAB_GIT_PASSWORD\n",
            lab.var("GIT_USER")
        )
    } else {
        String::new()
    };
    lab.config(&format!(
        "dns: {{servers: [{}], public_names: []}}\ngit:\n  url: {url}\n  branch: {branch}\n{creds}",
        lab.var("DNS_AUTH_ADDR")
    ))
}

fn run(sb: &Sandbox, yaml: &str, password: &str, extra: &[&str]) -> crate::harness::lab::Timed {
    services_env(sb, yaml, "1s", extra, &[("LAB_GIT_PASSWORD", password)])
}

/// Refs under refs/airgap-verify/ in the server's repository, read from disk.
fn probe_refs(lab: &Lab, repo: &str) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(format!("{}/{repo}", lab.var("GIT_REPOS_DIR")))
        .args(["for-each-ref", "refs/airgap-verify/"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts no probe ref is left in `repo` (see `harness::settled`).
fn assert_no_probe_refs(lab: &Lab, repo: &str) {
    let left = crate::harness::settled(|| {
        probe_refs(lab, repo)
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    });
    assert!(
        left.is_empty(),
        "probe refs left behind in {repo}: {left:?}"
    );
}

#[test]
fn git_pass_reads_pushes_and_cleans_up() {
    let sb = Sandbox::new("git::pass");
    let lab = Lab::get();
    let url = lab.var("GIT_REPO_URL");
    let yaml = git_yaml(&lab, url, lab.var("GIT_BRANCH"), true);
    let t = run(&sb, &yaml, lab.var("GIT_PASSWORD"), &["--write-probe"]);
    let r = t.within(ONE);
    r.code(0).clean();
    let f = r.has("git:refs-listed", "pass", url);
    assert_eq!(f.evidence["commit"], lab.var("GIT_MAIN_COMMIT"));
    r.has("tls:verified", "pass", url);
    r.has("git:push-allowed", "pass", url);
    let f = r.has("git:write-probe", "pass", url);
    let name = f.evidence["ref"].as_str().unwrap().to_string();
    assert!(name.starts_with("refs/airgap-verify/probe-"), "{name}");
    assert_no_probe_refs(&lab, lab.var("GIT_REPO"));
    // Without --write-probe nothing is written at all.
    let r = run(&sb, &yaml, lab.var("GIT_PASSWORD"), &[]);
    r.run.code(0).lacks("git:write-probe");
    // The release branch is found too.
    let yaml = git_yaml(&lab, url, lab.var("GIT_RELEASE_BRANCH"), false);
    let r = run(&sb, &yaml, "", &[]);
    let f = r.within(ONE).code(0).has("git:refs-listed", "pass", url);
    assert_eq!(f.evidence["commit"], lab.var("GIT_RELEASE_COMMIT"));
}

#[test]
fn git_faults_each_have_their_code() {
    let sb = Sandbox::new("git::faults");
    let lab = Lab::get();
    let url = lab.var("GIT_REPO_URL");

    // Wrong password: reading is anonymous, opening a push is refused.
    let yaml = git_yaml(&lab, url, "main", true);
    let r = run(&sb, &yaml, "not-the-password", &["--write-probe"]);
    let f = r.within(ONE).code(1).has("git:auth-failed", "fail", url);
    assert_eq!(f.evidence["http_status"], 401);
    r.run.lacks("git:push-allowed").lacks("git:write-probe");
    assert_no_probe_refs(&lab, lab.var("GIT_REPO"));

    // Missing repository, missing branch.
    let missing = format!("{}/sekoia/nope.git", lab.var("GIT_URL"));
    let r = run(&sb, &git_yaml(&lab, &missing, "main", false), "", &[]);
    r.within(ONE)
        .code(1)
        .has("git:repo-missing", "fail", &missing);
    let r = run(
        &sb,
        &git_yaml(&lab, url, "no-such-branch", true),
        lab.var("GIT_PASSWORD"),
        &["--write-probe"],
    );
    let f = r.within(ONE).code(1).has("git:branch-missing", "fail", url);
    assert!(f.evidence["branches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b == "main"));
    assert_no_probe_refs(&lab, lab.var("GIT_REPO"));

    // Push refused for everyone on the read-only repository.
    let ro = lab.var("GIT_READONLY_REPO_URL");
    let r = run(
        &sb,
        &git_yaml(&lab, ro, "main", true),
        lab.var("GIT_PASSWORD"),
        &["--write-probe"],
    );
    r.within(ONE).code(1).has("git:push-refused", "fail", ro);
    assert_no_probe_refs(&lab, lab.var("GIT_READONLY_REPO"));

    // Wrong CA: the TLS check fails and no request (no credential) is sent.
    let r = run(
        &sb,
        &yaml,
        lab.var("GIT_PASSWORD"),
        &["--ca-bundle", lab.var("ROGUE_CA_PEM"), "--write-probe"],
    );
    let f = r.within(ONE).code(1).has("tls:unknown-issuer", "fail", url);
    assert!(
        f.evidence["chain"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("airgap-lab"),
        "{:?}",
        f.evidence
    );
    r.run.lacks("git:refs-listed").lacks("git:auth-failed");
    assert_no_probe_refs(&lab, lab.var("GIT_REPO"));
}

#[test]
fn git_over_plain_http_is_reported() {
    let sb = Sandbox::new("git::plain_http");
    let lab = Lab::get();
    let url = format!("{}/{}", lab.var("GIT_HTTP_URL"), lab.var("GIT_REPO"));
    let r = run(
        &sb,
        &git_yaml(&lab, &url, "main", false),
        "",
        &["--write-probe"],
    );
    let r = r.within(ONE);
    r.code(1).has("git:plain-http", "fail", &url);
    // It still answers, and the refs are still checked.
    r.has("git:refs-listed", "pass", &url);
    assert_no_probe_refs(&lab, lab.var("GIT_REPO"));
}

/// SIGTERM while the probe ref exists on the server and the probe waits for
/// the reply: the ref is still deleted, the report is marked interrupted,
/// and the exit code is 143.
#[test]
fn git_terminate_mid_write_probe_removes_the_ref() {
    let sb = Sandbox::new("git::terminate");
    let lab = Lab::get();
    let upstream = format!("{}:443", lab.var("GIT_ADDR")).parse().unwrap();
    let link = SlowLink::start(lab.var("GIT_ADDR"), upstream, Duration::from_millis(300));
    let url = format!("https://{}/sekoia/stacks.git", link.addr);
    let yaml = git_yaml(&lab, &url, lab.var("GIT_BRANCH"), true);
    let before = probe_refs(&lab, "sekoia/stacks.git");
    let child = spawn_services(
        &sb,
        &yaml,
        &["--write-probe", "--timeout", "10s"],
        &[("LAB_GIT_PASSWORD", lab.var("GIT_PASSWORD"))],
    );
    wait_for("the probe ref", Duration::from_secs(20), || {
        probe_refs(&lab, "sekoia/stacks.git") != before
    });
    let r = interrupt(child, "TERM");
    r.code(143);
    assert_eq!(r.json()["interrupted"], "SIGTERM", "{}", r.stdout);
    r.has("run:interrupted", "fail", &url);
    let f = r.has("cleanup:removed", "pass", &url);
    assert!(
        f.evidence["object"]
            .as_str()
            .unwrap()
            .contains("refs/airgap-verify/probe-"),
        "{f:?}"
    );
    assert_eq!(probe_refs(&lab, "sekoia/stacks.git"), before);
}
