//! Git probe: the repository the installer pushes to, over smart HTTP.
//!
//! The protocol is spoken directly (pkt-lines over our HTTP client) rather
//! than through libgit2: libgit2's HTTPS needs OpenSSL, a second TLS stack
//! with a process-global CA setting and its own timeouts, whereas here the
//! same rustls trust, chain report and deadlines apply as for every probe.
//!
//! Guarantees:
//! - reading: the ref advertisement of `git-upload-pack` (what `git
//!   ls-remote` sees); the expected branch must be in it;
//! - push access: the `git-receive-pack` advertisement with the configured
//!   credentials (what `git push` opens), never sending credentials before
//!   the server's certificate verified;
//! - `--write-probe`: a throwaway ref `refs/airgap-verify/probe-<id>` is
//!   created at the branch's existing commit (an empty pack: no object is
//!   written), deleted, and the advertisement is read again to confirm it is
//!   gone; a ref that could not be deleted is reported by name
//!   (`git:leftover`).

use base64::Engine;

use super::context::ProbeContext;
use super::http::{endpoint, request_error, Endpoint};
use crate::config::GitPlan;
use crate::finding::{Code, Finding};

const ZERO_ID: &str = "0000000000000000000000000000000000000000";
/// A version-2 pack with no objects, and its SHA-1 trailer.
const EMPTY_PACK: &[u8] = b"PACK\0\0\0\x02\0\0\0\0\x02\x9d\x08\x82\x3b\xd8\xa8\xea\xb5\x10\xad\x6a\xc7\x5c\x82\x3c\xfd\x3e\xd3\x1e";

/// One advertised ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedRef {
    pub id: String,
    pub name: String,
}

/// A parsed smart-HTTP ref advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advertisement {
    pub refs: Vec<AdvertisedRef>,
    pub capabilities: Vec<String>,
}

/// Splits pkt-lines; `None` stands for a flush packet.
pub fn pkt_lines(mut b: &[u8]) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err("truncated pkt-line length".into());
        }
        let len = std::str::from_utf8(&b[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or("pkt-line length is not hexadecimal")?;
        match len {
            0 => {
                out.push(None);
                b = &b[4..];
            }
            1..=3 => return Err(format!("invalid pkt-line length {len}")),
            _ => {
                if len > b.len() {
                    return Err(format!("pkt-line of {len} bytes runs past the reply"));
                }
                out.push(Some(b[4..len].to_vec()));
                b = &b[len..];
            }
        }
    }
    Ok(out)
}

pub fn pkt(line: &str) -> Vec<u8> {
    let mut v = format!("{:04x}", line.len() + 4).into_bytes();
    v.extend_from_slice(line.as_bytes());
    v
}

/// Parses `GET info/refs?service=...` (protocol v0/v1).
pub fn parse_advertisement(body: &[u8], service: &str) -> Result<Advertisement, String> {
    let lines = pkt_lines(body)?;
    let mut it = lines.into_iter();
    let first = it.next().flatten().ok_or("empty advertisement")?;
    let want = format!("# service={service}");
    if String::from_utf8_lossy(&first).trim_end() != want {
        return Err(format!("the reply does not start with `{want}`"));
    }
    let mut adv = Advertisement::default();
    for line in it.flatten() {
        let line = String::from_utf8_lossy(&line)
            .trim_end_matches('\n')
            .to_string();
        if line.starts_with("version ") {
            continue;
        }
        let (refpart, caps) = match line.split_once('\0') {
            Some((r, c)) => (r.to_string(), Some(c.to_string())),
            None => (line.clone(), None),
        };
        if let Some(c) = caps {
            adv.capabilities = c
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        let (id, name) = refpart
            .split_once(' ')
            .ok_or_else(|| format!("malformed ref line `{refpart}`"))?;
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("malformed object id `{id}`"));
        }
        // An empty repository advertises `capabilities^{}` with a zero id.
        if name != "capabilities^{}" {
            adv.refs.push(AdvertisedRef {
                id: id.to_string(),
                name: name.to_string(),
            });
        }
    }
    Ok(adv)
}

/// One repository, owned so that a clean-up can outlive the probe that
/// started it (see `probe::cleanup`).
#[derive(Clone)]
struct Repo {
    plan: GitPlan,
    io: std::time::Duration,
    ep: Endpoint,
    target: String,
}

enum Reply {
    Ok(Vec<u8>),
    Status(u16, String),
}

impl Repo {
    fn url(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.plan.url.trim_end_matches('/'))
    }

    fn auth(&self, rb: reqwest::RequestBuilder, with_credentials: bool) -> reqwest::RequestBuilder {
        match (&self.plan.username, &self.plan.password, with_credentials) {
            (Some(u), Some(p), true) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()));
                rb.header("Authorization", format!("Basic {token}"))
            }
            _ => rb,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder, what: &str) -> Result<Reply, Finding> {
        let io = self.io;
        let resp = rb
            .send()
            .await
            .map_err(|e| request_error(&e, &self.target, what, io))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| request_error(&e, &self.target, what, io))?;
        if status == 200 {
            Ok(Reply::Ok(body.to_vec()))
        } else {
            Ok(Reply::Status(
                status,
                String::from_utf8_lossy(&body[..body.len().min(200)])
                    .trim()
                    .to_string(),
            ))
        }
    }

    async fn advertisement(
        &self,
        service: &str,
        with_credentials: bool,
    ) -> Result<Result<Advertisement, (u16, String)>, Finding> {
        let rb = self
            .ep
            .client
            .get(self.url(&format!("info/refs?service={service}")));
        match self.send(self.auth(rb, with_credentials), service).await? {
            Reply::Ok(body) => parse_advertisement(&body, service).map(Ok).map_err(|m| {
                Finding::new(
                    Code::GitRepoMissing,
                    self.target.clone(),
                    format!("{} did not answer as a Git repository: {m}", self.plan.url),
                )
            }),
            Reply::Status(s, body) => Ok(Err((s, body))),
        }
    }

    async fn receive_pack(
        &self,
        body: Vec<u8>,
    ) -> Result<Result<Vec<String>, (u16, String)>, Finding> {
        let rb = self
            .ep
            .client
            .post(self.url("git-receive-pack"))
            .header("Content-Type", "application/x-git-receive-pack-request")
            .header("Accept", "application/x-git-receive-pack-result")
            .body(body);
        match self.send(self.auth(rb, true), "git-receive-pack").await? {
            Reply::Ok(b) => {
                let lines = pkt_lines(&b).map_err(|m| {
                    Finding::new(
                        Code::GitProtocolError,
                        self.target.clone(),
                        format!("push report: {m}"),
                    )
                })?;
                Ok(Ok(lines
                    .into_iter()
                    .flatten()
                    .map(|l| String::from_utf8_lossy(&l).trim_end().to_string())
                    .collect()))
            }
            Reply::Status(s, b) => Ok(Err((s, b))),
        }
    }
}

fn status_finding(
    target: &str,
    url: &str,
    what: &str,
    status: u16,
    body: &str,
    had_credentials: bool,
) -> Finding {
    let (code, why) = match status {
        401 if had_credentials => (
            Code::GitAuthFailed,
            "the credentials were refused (401)".to_string(),
        ),
        401 => (
            Code::GitAuthFailed,
            "the server asks for credentials (401) and none are configured".to_string(),
        ),
        403 => (
            Code::GitPushRefused,
            "access is forbidden (403)".to_string(),
        ),
        404 => (
            Code::GitRepoMissing,
            "there is no repository at this path (404)".to_string(),
        ),
        s => (
            Code::GitProtocolError,
            format!("unexpected HTTP status {s}"),
        ),
    };
    Finding::new(code, target, format!("{what} of {url}: {why}"))
        .evidence("http_status", status)
        .evidence("reply", body.chars().take(160).collect::<String>())
}

pub async fn probe(ctx: &ProbeContext, plan: &GitPlan) -> Vec<Finding> {
    let target = plan.url.clone();
    let mut out = Vec::new();
    if plan.url.starts_with("http://") {
        out.push(Finding::new(
            Code::GitPlainHttp,
            target.clone(),
            format!(
                "{} is plain HTTP: credentials and manifests would cross the network in clear",
                plan.url
            ),
        ));
    }
    let ep = match endpoint(ctx, &plan.url, &target).await {
        Ok(ep) => ep,
        Err(f) => {
            out.extend(f);
            return out;
        }
    };
    out.extend(ep.tls.iter().cloned());
    let repo = Repo {
        plan: plan.clone(),
        io: ctx.plan.deadlines.io,
        ep,
        target: target.clone(),
    };
    let has_creds = plan.username.is_some() && plan.password.is_some();

    // Read access, anonymously first (as the cluster's GitOps controller
    // may), then with credentials if the server insists.
    let adv = match repo.advertisement("git-upload-pack", false).await {
        Ok(Ok(a)) => a,
        Ok(Err((401, _))) if has_creds => match repo.advertisement("git-upload-pack", true).await {
            Ok(Ok(a)) => a,
            Ok(Err((s, b))) => {
                out.push(status_finding(&target, &plan.url, "reading", s, &b, true));
                return out;
            }
            Err(f) => {
                out.push(f);
                return out;
            }
        },
        Ok(Err((s, b))) => {
            out.push(status_finding(&target, &plan.url, "reading", s, &b, false));
            return out;
        }
        Err(f) => {
            out.push(f);
            return out;
        }
    };
    let branch_ref = format!("refs/heads/{}", plan.branch);
    let head = adv.refs.iter().find(|r| r.name == branch_ref).cloned();
    match &head {
        Some(h) => out.push(
            Finding::new(
                Code::GitRefsListed,
                target.clone(),
                format!(
                    "{} answered with {} refs; branch {} is at {}",
                    plan.url,
                    adv.refs.len(),
                    plan.branch,
                    &h.id[..12]
                ),
            )
            .evidence("refs", adv.refs.len())
            .evidence("branch", plan.branch.clone())
            .evidence("commit", h.id.clone())
            .evidence("capabilities", adv.capabilities.clone()),
        ),
        None => out.push(
            Finding::new(
                Code::GitBranchMissing,
                target.clone(),
                format!(
                    "{} has no branch {} ({} refs advertised)",
                    plan.url,
                    plan.branch,
                    adv.refs.len()
                ),
            )
            .evidence("branch", plan.branch.clone())
            .evidence(
                "branches",
                adv.refs
                    .iter()
                    .filter_map(|r| r.name.strip_prefix("refs/heads/"))
                    .take(20)
                    .map(String::from)
                    .collect::<Vec<_>>(),
            ),
        ),
    }

    // Push access: the advertisement `git push` opens.
    if !has_creds {
        return out;
    }
    match repo.advertisement("git-receive-pack", true).await {
        Ok(Ok(_)) => out.push(
            Finding::new(
                Code::GitPushAllowed,
                target.clone(),
                format!(
                    "{} offers a push connection to {}",
                    plan.url,
                    plan.username.as_deref().unwrap_or("")
                ),
            )
            .evidence("user", plan.username.clone().unwrap_or_default()),
        ),
        Ok(Err((s, b))) => {
            let mut f = status_finding(&target, &plan.url, "opening a push", s, &b, true);
            if s == 403 || s == 404 {
                f = Finding {
                    code: Code::GitPushRefused,
                    ..f
                };
            }
            out.push(f);
            return out;
        }
        Err(f) => {
            out.push(f);
            return out;
        }
    }

    if ctx.plan.write_probe {
        let Some(h) = head else { return out };
        out.extend(write_probe(ctx, &repo, &h.id).await);
    }
    out
}

async fn write_probe(ctx: &ProbeContext, repo: &Repo, commit: &str) -> Vec<Finding> {
    let target = repo.target.clone();
    let name = format!("refs/airgap-verify/probe-{}", super::net::probe_id());
    let mut create = pkt(&format!("{ZERO_ID} {commit} {name}\0report-status\n"));
    create.extend_from_slice(b"0000");
    create.extend_from_slice(EMPTY_PACK);
    // Recorded before the push is sent: a push cut off in flight may still
    // have created the ref.
    let ticket = ctx.ledger.record(
        &target,
        format!("the Git ref {name} in {}", repo.plan.url),
        Box::pin({
            let (repo, name, commit) = (repo.clone(), name.clone(), commit.to_string());
            async move { repo.remove_ref(&name, &commit).await }
        }),
    );
    let report = match repo.receive_pack(create).await {
        Ok(Ok(r)) => r,
        Ok(Err((s, b))) => {
            ctx.ledger.done(ticket);
            let f = status_finding(&target, &repo.plan.url, "pushing a probe ref", s, &b, true);
            return vec![Finding {
                code: Code::GitPushRefused,
                ..f
            }];
        }
        Err(f) => {
            // No reply: the ref may exist; the ledger removes it at the end.
            return vec![f];
        }
    };
    if !report.iter().any(|l| l == &format!("ok {name}")) {
        ctx.ledger.done(ticket);
        return vec![Finding::new(
            Code::GitPushRefused,
            target,
            format!("the server refused the probe ref: {}", report.join("; ")),
        )
        .evidence("report", report)];
    }
    // Created: from here on the ref must go, whatever happens.
    let removed = repo.remove_ref(&name, commit).await;
    ctx.ledger.done(ticket);
    match removed {
        Ok(()) => vec![Finding::new(
            Code::GitWriteProbe,
            target,
            format!("pushed {name} at {} and deleted it", &commit[..12]),
        )
        .evidence("ref", name)],
        Err(why) => vec![Finding::new(
            Code::GitLeftover,
            target,
            format!(
                "the probe ref {name} was pushed but could not be deleted ({why}); remove it by hand"
            ),
        )
        .evidence("ref", name)],
    }
}

impl Repo {
    /// Deletes `name` (pointing at `commit`) and checks the ref list no
    /// longer has it. Idempotent: a ref that is already gone is removed.
    async fn remove_ref(&self, name: &str, commit: &str) -> Result<(), String> {
        let mut delete = pkt(&format!(
            "{commit} {ZERO_ID} {name}\0report-status delete-refs\n"
        ));
        delete.extend_from_slice(b"0000");
        let report = match self.receive_pack(delete).await {
            Ok(Ok(r)) => r.join("; "),
            Ok(Err((s, _))) => format!("the delete answered {s}"),
            Err(f) => f.message,
        };
        // The ref list decides: a delete that "failed" because the ref was
        // never created still leaves nothing behind.
        match self.advertisement("git-upload-pack", true).await {
            Ok(Ok(a)) if !a.refs.iter().any(|r| r.name == name) => Ok(()),
            Ok(Ok(_)) => Err(format!("still listed after the delete: {report}")),
            Ok(Err((s, _))) => Err(format!("listing the refs answered {s}")),
            Err(f) => Err(f.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_parses() {
        let mut body = pkt("# service=git-upload-pack\n");
        body.extend_from_slice(b"0000");
        body.extend(pkt(&format!(
            "{} HEAD\0multi_ack side-band-64k\n",
            "a".repeat(40)
        )));
        body.extend(pkt(&format!("{} refs/heads/main\n", "a".repeat(40))));
        body.extend_from_slice(b"0000");
        let a = parse_advertisement(&body, "git-upload-pack").unwrap();
        assert_eq!(a.refs.len(), 2);
        assert_eq!(a.refs[1].name, "refs/heads/main");
        assert_eq!(a.capabilities, ["multi_ack", "side-band-64k"]);
        assert!(parse_advertisement(&body, "git-receive-pack").is_err());
        assert!(parse_advertisement(b"<html>", "git-upload-pack").is_err());
        assert!(pkt_lines(b"0003").is_err());
        assert!(pkt_lines(b"00ffabc").is_err());
    }

    #[test]
    fn empty_pack_trailer_is_its_sha1() {
        let digest = sha1_smol::Sha1::from(&EMPTY_PACK[..12]).digest().bytes();
        assert_eq!(&EMPTY_PACK[12..], &digest[..]);
    }
}
