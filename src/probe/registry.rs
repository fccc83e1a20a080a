//! OCI registry probe: the registry the installer pushes the release's
//! images to (OCI Distribution API).
//!
//! Guarantees:
//! - `/v2/` is asked first, without credentials, to learn the scheme
//!   (Basic, or Bearer with its realm and service); credentials go only to
//!   a server whose certificate verified, and for Bearer only to the realm
//!   the registry named, which must itself be inside the perimeter;
//! - push access is proven without writing: an upload session is opened in
//!   the project's namespace and cancelled;
//! - `--write-probe` pushes a unique config blob (it carries the probe id,
//!   so it can never be shared with a real image) and a manifest under a
//!   throwaway tag, reads the manifest back, then deletes the manifest and
//!   the blob. Whatever could not be deleted is named in `registry:leftover`;
//! - images are checked with `HEAD` on their manifest (present, different
//!   digest, missing); nothing is pulled.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::context::ProbeContext;
use super::http::{endpoint, request_error, Endpoint};
use crate::config::{ImageRef, RegistryPlan};
use crate::finding::{Code, Finding};

/// Manifest media types a HEAD accepts, so the registry answers with the
/// digest of what it stores instead of converting.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// How the registry wants to be authenticated, from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, params) = h.split_once(' ').unwrap_or((h, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let mut map = HashMap::new();
            let mut rest = params;
            // key="value" pairs separated by commas; values may hold commas.
            while let Some((k, r)) = rest.split_once('=') {
                let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
                let r = r.trim_start();
                let (v, r) = if let Some(q) = r.strip_prefix('"') {
                    let end = q.find('"')?;
                    (&q[..end], &q[end + 1..])
                } else {
                    let end = r.find(',').unwrap_or(r.len());
                    (&r[..end], &r[end..])
                };
                map.insert(k, v.to_string());
                rest = r;
            }
            Some(Challenge::Bearer {
                realm: map.remove("realm")?,
                service: map.remove("service"),
            })
        }
        _ => None,
    }
}

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// One registry conversation, owned (with its token cache) so that a
/// clean-up can outlive the probe that started it (see `probe::cleanup`).
#[derive(Clone)]
struct Registry {
    ctx: Arc<ProbeContext>,
    plan: RegistryPlan,
    ep: Endpoint,
    target: String,
    challenge: Challenge,
    /// Bearer tokens per scope.
    tokens: HashMap<String, String>,
    /// Token server endpoint, prepared once.
    token_ep: Option<Endpoint>,
}

enum Auth {
    Ok(Option<String>),
    Refused(Finding),
}

impl Registry {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.plan.url)
    }

    fn basic(&self) -> Option<String> {
        let (u, p) = (self.plan.username.as_ref()?, self.plan.password.as_ref()?);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()))
        ))
    }

    fn io(&self) -> std::time::Duration {
        self.ctx.plan.deadlines.io
    }

    /// The Authorization header for `scope`, fetching a token if needed.
    async fn authorization(&mut self, scope: &str) -> Auth {
        match self.challenge.clone() {
            Challenge::None => Auth::Ok(None),
            Challenge::Basic => Auth::Ok(self.basic()),
            Challenge::Bearer { realm, service } => {
                if let Some(t) = self.tokens.get(scope) {
                    return Auth::Ok(Some(format!("Bearer {t}")));
                }
                match self.fetch_token(&realm, service.as_deref(), scope).await {
                    Ok(t) => {
                        self.tokens.insert(scope.to_string(), t.clone());
                        Auth::Ok(Some(format!("Bearer {t}")))
                    }
                    Err(f) => Auth::Refused(f),
                }
            }
        }
    }

    async fn fetch_token(
        &mut self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, Finding> {
        if self.token_ep.is_none() {
            // The realm is another server: same perimeter, same CA, same
            // deadlines; credentials go there only after its TLS verified.
            let ep = endpoint(&self.ctx, realm, &self.target)
                .await
                .map_err(|mut f| {
                    f.truncate(1);
                    f.pop().unwrap_or_else(|| {
                        Finding::new(
                            Code::RegistryProtocolError,
                            self.target.clone(),
                            "token server unreachable",
                        )
                    })
                })?;
            self.token_ep = Some(ep);
        }
        let ep = self.token_ep.as_ref().expect("set above");
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            Finding::new(
                Code::RegistryProtocolError,
                self.target.clone(),
                format!("token realm `{realm}` is not a URL: {e}"),
            )
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut rb = ep.client.get(url);
        if let Some(b) = self.basic() {
            rb = rb.header("Authorization", b);
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| request_error(&e, &self.target, "token server", self.io()))?;
        let status = resp.status().as_u16();
        if status == 429 || (500..=599).contains(&status) {
            return Err(unavailable(
                &self.target,
                &format!("the token server {realm}"),
                status,
                retry_after(&resp),
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| request_error(&e, &self.target, "token server", self.io()))?;
        if status == 401 || status == 403 {
            return Err(Finding::new(
                Code::RegistryAuthFailed,
                self.target.clone(),
                format!(
                    "the token server {realm} refused {} ({status})",
                    if self.basic().is_some() {
                        "the configured credentials"
                    } else {
                        "an anonymous request (no credentials configured)"
                    }
                ),
            )
            .evidence("http_status", status)
            .evidence("realm", realm));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            Finding::new(
                Code::RegistryProtocolError,
                self.target.clone(),
                format!("the token server answered {status} without a JSON token"),
            )
        })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| {
                Finding::new(
                    Code::RegistryProtocolError,
                    self.target.clone(),
                    format!("the token server answered {status} without a token"),
                )
            })
    }

    async fn request(
        &mut self,
        method: reqwest::Method,
        path_or_url: &str,
        scope: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Finding> {
        let auth = match self.authorization(scope).await {
            Auth::Ok(a) => a,
            Auth::Refused(f) => return Err(f),
        };
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        let what = format!("{method} {}", request_path(&url));
        let mut rb = self.ep.client.request(method, url);
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        let resp = build(rb)
            .send()
            .await
            .map_err(|e| request_error(&e, &self.target, "registry", self.io()))?;
        // Overloaded or throttling, at any step (not only the ping): the
        // registry's own state, reported as such rather than as a refused
        // push or a missing image; never retried or slept on.
        let status = resp.status().as_u16();
        if status == 429 || (500..=599).contains(&status) {
            return Err(unavailable(&self.target, &what, status, retry_after(&resp)));
        }
        Ok(resp)
    }

    /// Removes what `path` names (a manifest or blob by digest, or an upload
    /// session's URL), for the clean-up ledger. Idempotent: something that
    /// is not there (404) is removed; with `head_first`, a HEAD tells whether
    /// there is anything to delete before a DELETE a registry may refuse.
    async fn remove(&mut self, path: &str, scope: &str, head_first: bool) -> Result<(), String> {
        if head_first {
            match self
                .request(reqwest::Method::HEAD, path, scope, |r| r)
                .await
            {
                Ok(r) if r.status().as_u16() == 404 => return Ok(()),
                Ok(_) => {}
                Err(f) => return Err(format!("{path}: {}", f.message)),
            }
        }
        match self
            .request(reqwest::Method::DELETE, path, scope, |r| r)
            .await
        {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => Ok(()),
            Ok(r) => Err(format!(
                "{path}: the delete answered {}",
                r.status().as_u16()
            )),
            Err(f) => Err(format!("{path}: {}", f.message)),
        }
    }

    fn repo(&self) -> String {
        if self.plan.check_repo.contains('/') || self.plan.project.is_empty() {
            self.plan.check_repo.clone()
        } else {
            format!("{}/{}", self.plan.project, self.plan.check_repo)
        }
    }

    /// Resolves an upload `Location` against the registry; refuses another host.
    fn location(&self, resp: &reqwest::Response) -> Result<String, Finding> {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Finding::new(
                    Code::RegistryProtocolError,
                    self.target.clone(),
                    "upload accepted without a Location header",
                )
            })?;
        let url = self.ep.base.join(loc).map_err(|e| {
            Finding::new(
                Code::RegistryProtocolError,
                self.target.clone(),
                format!("bad upload Location `{loc}`: {e}"),
            )
        })?;
        if url.host_str() != self.ep.base.host_str()
            || url.port_or_known_default() != self.ep.base.port_or_known_default()
        {
            return Err(Finding::new(
                Code::RegistryProtocolError,
                self.target.clone(),
                format!("the upload Location points at another server ({}); set the registry's http.host to its own name", url.host_str().unwrap_or("?")),
            ));
        }
        Ok(url.to_string())
    }
}

/// `registry:unavailable` for a 429 or 5xx answer to `what`.
fn unavailable(target: &str, what: &str, status: u16, retry_after: Option<String>) -> Finding {
    let why = if status == 429 {
        "the registry is rate-limiting this client"
    } else {
        "the registry has a server error"
    };
    let mut f = Finding::new(
        Code::RegistryUnavailable,
        target,
        format!(
            "{what} answered {status}: {why}{}; not retried",
            retry_after
                .as_deref()
                .map(|r| format!(" (Retry-After {r})"))
                .unwrap_or_default()
        ),
    )
    .evidence("http_status", status);
    if let Some(r) = retry_after {
        f = f.evidence("retry_after", r.chars().take(64).collect::<String>());
    }
    f
}

/// A response's `Retry-After`, as sent (seconds or an HTTP date).
fn retry_after(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// The path of a request URL for messages, without the query: an upload
/// session's `_state` is long and says nothing to the reader.
fn request_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

pub async fn probe(ctx: &Arc<ProbeContext>, plan: &RegistryPlan) -> Vec<Finding> {
    let target = plan.url.clone();
    let mut out = Vec::new();
    if plan.url.starts_with("http://") {
        out.push(Finding::new(
            Code::RegistryPlainHttp,
            target.clone(),
            format!("{} is plain HTTP: images are pulled over HTTPS only, and credentials would cross in clear", plan.url),
        ));
    }
    let ep = match endpoint(ctx, &format!("{}/v2/", plan.url), &target).await {
        Ok(ep) => ep,
        Err(f) => {
            out.extend(f);
            return out;
        }
    };
    out.extend(ep.tls.iter().cloned());

    // 1. The ping, anonymous.
    let io = ctx.plan.deadlines.io;
    let resp = match ep.client.get(format!("{}/v2/", plan.url)).send().await {
        Ok(r) => r,
        Err(e) => {
            out.push(request_error(&e, &target, "registry", io));
            return out;
        }
    };
    let status = resp.status().as_u16();
    let api = resp
        .headers()
        .get("docker-distribution-api-version")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let www = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let retry_after = retry_after(&resp);
    let challenge = match (status, &www) {
        (200, _) => Challenge::None,
        // Overloaded or throttling: reported as it is, not retried, and a
        // Retry-After is never slept on (it could exceed every deadline).
        (429 | 500..=599, _) => {
            out.push(unavailable(&target, "GET /v2/", status, retry_after));
            return out;
        }
        (401, Some(h)) => match parse_challenge(h) {
            Some(c) => c,
            None => {
                out.push(Finding::new(
                    Code::RegistryProtocolError,
                    target.clone(),
                    format!("unsupported authentication challenge `{h}`"),
                ));
                return out;
            }
        },
        _ => {
            out.push(
                Finding::new(
                    Code::RegistryProtocolError,
                    target.clone(),
                    format!("GET /v2/ answered {status}: this is not an OCI Distribution registry endpoint"),
                )
                .evidence("http_status", status),
            );
            return out;
        }
    };
    let scheme = match &challenge {
        Challenge::None => "none".to_string(),
        Challenge::Basic => "basic".to_string(),
        Challenge::Bearer { .. } => "bearer".to_string(),
    };
    let mut reachable = Finding::new(
        Code::RegistryReachable,
        target.clone(),
        format!("{} answers /v2/ (authentication: {scheme})", plan.url),
    )
    .evidence("auth_scheme", scheme)
    .evidence("api_version", api.unwrap_or_default());
    if let Challenge::Bearer { realm, service } = &challenge {
        reachable = reachable
            .evidence("realm", realm.clone())
            .evidence("service", service.clone().unwrap_or_default());
    }
    out.push(reachable);

    let mut reg = Registry {
        ctx: ctx.clone(),
        plan: plan.clone(),
        ep,
        target: target.clone(),
        challenge: challenge.clone(),
        tokens: HashMap::new(),
        token_ep: None,
    };
    let repo = reg.repo();
    let push_scope = format!("repository:{repo}:pull,push");
    // Distribution asks for the `delete` action on every DELETE, upload
    // cancels included; asked separately so a push-only grant still pushes.
    let delete_scope = format!("repository:{repo}:pull,push,delete");

    // 2. Credentials.
    if challenge != Challenge::None {
        let resp = reg
            .request(reqwest::Method::GET, "/v2/", &push_scope, |r| r)
            .await;
        match resp {
            Ok(r) if r.status().as_u16() == 200 => out.push(
                Finding::new(
                    Code::RegistryAuthOk,
                    target.clone(),
                    format!(
                        "the registry accepted {}",
                        plan.username
                            .as_deref()
                            .map(|u| format!("user {u}"))
                            .unwrap_or_else(|| "the anonymous token".into())
                    ),
                )
                .evidence("user", plan.username.clone().unwrap_or_default()),
            ),
            Ok(r) => {
                let s = r.status().as_u16();
                out.push(
                    Finding::new(
                        Code::RegistryAuthFailed,
                        target.clone(),
                        if plan.username.is_some() {
                            format!("the registry refused the configured credentials ({s})")
                        } else {
                            format!("the registry needs credentials ({s}) and none are configured")
                        },
                    )
                    .evidence("http_status", s),
                );
                return out;
            }
            Err(f) => {
                out.push(f);
                return out;
            }
        }
    }

    // 3. Push access: open an upload session, cancel it.
    if plan.username.is_some() || challenge == Challenge::None {
        match reg
            .request(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &push_scope,
                |r| r.header("Content-Length", "0"),
            )
            .await
        {
            Ok(r) if r.status().as_u16() == 202 => {
                let loc = reg.location(&r);
                match loc {
                    Ok(loc) => {
                        let session = loc.split('?').next().unwrap_or(&loc).to_string();
                        let ticket = ctx.ledger.record(
                            &target,
                            format!("the upload session {session}"),
                            Box::pin({
                                let (mut reg, loc, scope) =
                                    (reg.clone(), loc.clone(), delete_scope.clone());
                                async move { reg.remove(&loc, &scope, false).await }
                            }),
                        );
                        let cancelled = matches!(
                            reg.request(reqwest::Method::DELETE, &loc, &delete_scope, |r| r).await,
                            Ok(r) if r.status().is_success()
                        );
                        ctx.ledger.done(ticket);
                        out.push(
                            Finding::new(
                                Code::RegistryPushAllowed,
                                target.clone(),
                                format!(
                                    "an upload session in {repo} was opened and {}",
                                    if cancelled {
                                        "cancelled"
                                    } else {
                                        "left to expire"
                                    }
                                ),
                            )
                            .evidence("repository", repo.clone()),
                        );
                        if !cancelled {
                            out.push(
                                Finding::new(Code::RegistryLeftover, target.clone(), format!("the upload session {session} could not be cancelled; it expires on the registry's schedule"))
                                    .evidence("left_behind", vec![format!("upload session {session}")]),
                            );
                        }
                    }
                    Err(f) => out.push(f),
                }
            }
            Ok(r) => {
                let s = r.status().as_u16();
                out.push(
                    Finding::new(
                        Code::RegistryPushRefused,
                        target.clone(),
                        format!("opening an upload in {repo} was refused ({s})"),
                    )
                    .evidence("http_status", s)
                    .evidence("repository", repo.clone()),
                );
            }
            Err(f) => {
                // A token refused for the push scope is a refused push.
                let f = if f.code == Code::RegistryAuthFailed {
                    Finding {
                        code: Code::RegistryPushRefused,
                        ..f
                    }
                } else {
                    f
                };
                out.push(f);
            }
        }
        if ctx.plan.write_probe && out.iter().any(|f| f.code == Code::RegistryPushAllowed) {
            out.extend(write_probe(&mut reg, &repo, &push_scope, &delete_scope).await);
        }
    }

    // 4. The release's images.
    for img in &plan.images {
        out.push(check_image(&mut reg, img).await);
    }
    out
}

async fn check_image(reg: &mut Registry, img: &ImageRef) -> Finding {
    let target = format!("{} {}:{}", reg.target, img.repo, img.tag);
    let scope = format!("repository:{}:pull", img.repo);
    let resp = reg
        .request(
            reqwest::Method::HEAD,
            &format!("/v2/{}/manifests/{}", img.repo, img.tag),
            &scope,
            |r| r.header("Accept", MANIFEST_ACCEPT),
        )
        .await;
    let r = match resp {
        Ok(r) => r,
        Err(f) => return Finding { target, ..f },
    };
    let status = r.status().as_u16();
    let digest = r
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match (status, &img.digest, digest) {
        (200, Some(want), Some(got)) if *want == got => Finding::new(
            Code::RegistryImagePresent,
            target,
            format!("{img} is present with the release's digest"),
        )
        .evidence("digest", got),
        (200, Some(want), Some(got)) => Finding::new(
            Code::RegistryImageDifferent,
            target,
            format!(
                "{}:{} points at {got}, the release has {want}",
                img.repo, img.tag
            ),
        )
        .evidence("digest", got)
        .evidence("expected_digest", want.clone()),
        (200, _, got) => Finding::new(
            Code::RegistryImagePresent,
            target,
            format!("{}:{} is present", img.repo, img.tag),
        )
        .evidence("digest", got.unwrap_or_default()),
        (404, _, _) => Finding::new(
            Code::RegistryImageMissing,
            target,
            format!("{}:{} is not in the registry", img.repo, img.tag),
        ),
        (401 | 403, _, _) => Finding::new(
            Code::RegistryAuthFailed,
            target,
            format!("reading {}:{} was refused ({status})", img.repo, img.tag),
        )
        .evidence("http_status", status),
        _ => Finding::new(
            Code::RegistryProtocolError,
            target,
            format!("HEAD of {}:{} answered {status}", img.repo, img.tag),
        )
        .evidence("http_status", status),
    }
}

async fn write_probe(
    reg: &mut Registry,
    repo: &str,
    scope: &str,
    delete_scope: &str,
) -> Vec<Finding> {
    let target = reg.target.clone();
    let id = super::net::probe_id();
    let tag = format!("airgap-verify-probe-{id}");
    // Unique content: a config no real image shares, so deleting the blob
    // can never break anything else.
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"io.airgap-verify.probe": id}},
        "rootfs": {"type": "layers", "diff_ids": []},
    })
    .to_string()
    .into_bytes();
    let config_digest = sha256_digest(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = sha256_digest(&manifest);
    // Recorded before anything is sent: a push cut off in flight may still
    // have landed. Both digests are known in advance, so the undo needs no
    // reply from the push.
    let ticket = reg.ctx.ledger.record(
        &target,
        format!(
            "the manifest {repo}@{manifest_digest} (tag {tag}) and the blob {repo}@{config_digest}"
        ),
        Box::pin({
            let mut reg = reg.clone();
            let paths = [
                format!("/v2/{repo}/manifests/{manifest_digest}"),
                format!("/v2/{repo}/blobs/{config_digest}"),
            ];
            let scope = delete_scope.to_string();
            async move {
                let mut left = Vec::new();
                for p in &paths {
                    if let Err(e) = reg.remove(p, &scope, true).await {
                        left.push(e);
                    }
                }
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(left.join("; "))
                }
            }
        }),
    );
    let out = write_probe_steps(
        reg,
        repo,
        scope,
        delete_scope,
        &tag,
        (&config, &config_digest),
        (&manifest, &manifest_digest),
    )
    .await;
    reg.ctx.ledger.done(ticket);
    out
}

/// The write probe proper: push, read back, clean up, report.
async fn write_probe_steps(
    reg: &mut Registry,
    repo: &str,
    scope: &str,
    delete_scope: &str,
    tag: &str,
    (config, config_digest): (&[u8], &str),
    (manifest, manifest_digest): (&[u8], &str),
) -> Vec<Finding> {
    let target = reg.target.clone();
    let mut written: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();

    // Blob: POST then PUT ?digest= (the two-step upload every registry supports).
    let refused = |m: String| Finding::new(Code::RegistryPushRefused, target.clone(), m);
    let step = async {
        let r = reg
            .request(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                scope,
                |r| r.header("Content-Length", "0"),
            )
            .await?;
        if r.status().as_u16() != 202 {
            return Err(refused(format!(
                "opening the blob upload answered {}",
                r.status().as_u16()
            )));
        }
        let loc = reg.location(&r)?;
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={config_digest}");
        let body = config.to_vec();
        let r = reg
            .request(reqwest::Method::PUT, &put, scope, |r| {
                r.header("Content-Type", "application/octet-stream")
                    .body(body)
            })
            .await?;
        if r.status().as_u16() != 201 {
            return Err(refused(format!(
                "storing the blob answered {}",
                r.status().as_u16()
            )));
        }
        Ok(())
    }
    .await;
    if let Err(f) = step {
        // An unavailable or unreachable registry keeps its own code; any
        // other failure to store is a refused push.
        let code = if f.code == Code::RegistryUnavailable || f.code.family() == "net" {
            f.code
        } else {
            Code::RegistryPushRefused
        };
        return vec![Finding {
            code,
            message: format!("write probe: {}", f.message),
            ..f
        }];
    }
    written.push(format!("blob {repo}@{config_digest}"));

    // A 429 or 5xx on the way is the registry's state, not a refusal.
    let mut unavailable = false;
    let body = manifest.to_vec();
    let put = reg
        .request(
            reqwest::Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            scope,
            |r| {
                r.header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .body(body)
            },
        )
        .await;
    let manifest_ok = matches!(&put, Ok(r) if r.status().as_u16() == 201);
    if manifest_ok {
        written.push(format!("manifest {repo}:{tag} ({manifest_digest})"));
        // Read it back.
        let got = reg
            .request(
                reqwest::Method::GET,
                &format!("/v2/{repo}/manifests/{manifest_digest}"),
                scope,
                |r| r.header("Accept", "application/vnd.oci.image.manifest.v1+json"),
            )
            .await;
        match got {
            Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                Ok(b) if b.as_ref() == manifest => {}
                _ => problems.push("the manifest read back differs from the one pushed".into()),
            },
            Ok(r) => problems.push(format!(
                "reading the manifest back answered {}",
                r.status().as_u16()
            )),
            Err(f) => {
                unavailable |= f.code == Code::RegistryUnavailable;
                problems.push(f.message)
            }
        }
    } else {
        match &put {
            Ok(r) => problems.push(format!(
                "storing the manifest answered {}",
                r.status().as_u16()
            )),
            Err(f) => {
                unavailable |= f.code == Code::RegistryUnavailable;
                problems.push(format!("storing the manifest: {}", f.message))
            }
        }
    }

    // Clean up, whatever happened above.
    let mut left = Vec::new();
    let mut refused_delete = false;
    let mut denied_delete = false;
    let mut targets = Vec::new();
    if manifest_ok {
        targets.push((
            format!("/v2/{repo}/manifests/{manifest_digest}"),
            format!("manifest {repo}@{manifest_digest} (tag {tag})"),
        ));
    }
    targets.push((
        format!("/v2/{repo}/blobs/{config_digest}"),
        format!("blob {repo}@{config_digest}"),
    ));
    for (path, what) in targets {
        // A token refused for the delete scope is a refused delete.
        match reg
            .request(reqwest::Method::DELETE, &path, delete_scope, |r| r)
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let s = r.status().as_u16();
                refused_delete |= s == 405;
                denied_delete |= s == 401 || s == 403;
                left.push(format!("{what}: delete answered {s}"));
            }
            Err(f) => {
                denied_delete |= f.code == Code::RegistryAuthFailed;
                left.push(format!("{what}: {}", f.message));
            }
        }
    }

    let mut out = Vec::new();
    if problems.is_empty() {
        out.push(
            Finding::new(
                Code::RegistryWriteProbe,
                target.clone(),
                format!(
                    "pushed {repo}:{tag} ({manifest_digest}), read it back{}",
                    if left.is_empty() {
                        " and deleted it"
                    } else {
                        ""
                    }
                ),
            )
            .evidence("written", written.clone()),
        );
    } else {
        out.push(
            Finding::new(
                if unavailable {
                    Code::RegistryUnavailable
                } else {
                    Code::RegistryPushRefused
                },
                target.clone(),
                format!("write probe: {}", problems.join("; ")),
            )
            .evidence("written", written.clone()),
        );
    }
    if !left.is_empty() {
        out.push(
            Finding::new(
                Code::RegistryLeftover,
                target,
                format!(
                    "{}left behind: {}",
                    if refused_delete {
                        "the registry refuses deletes (405); "
                    } else if denied_delete {
                        "deleting is not permitted for this user; "
                    } else {
                        ""
                    },
                    left.join("; ")
                ),
            )
            .evidence("left_behind", left)
            .evidence("deletes_refused", refused_delete)
            .evidence("deletes_denied", denied_delete),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://t.corp/token",service="reg.corp",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://t.corp/token".into(),
                service: Some("reg.corp".into())
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn request_paths_drop_the_query() {
        assert_eq!(
            request_path("https://r.corp:5000/v2/a/b/blobs/uploads/u1?_state=xyz&digest=sha256:00"),
            "/v2/a/b/blobs/uploads/u1"
        );
        assert_eq!(request_path("https://r.corp"), "/");
        assert_eq!(request_path("/v2/"), "/v2/");
    }
}
