//! S3 probe: the platform's object storage, with the SDK the platform's
//! ecosystem uses (aws-sdk-s3), configured so it can only talk to the
//! configured endpoint.
//!
//! Guarantees:
//! - the SDK is built without aws-config: static credentials only, so no
//!   credential chain, profile file or instance-metadata lookup
//!   (169.254.169.254) can run; no proxy; retries off (one attempt per
//!   request, within the run's deadlines);
//! - names are resolved by the perimeter's DNS through our resolver, and an
//!   address outside `allowed_networks` is refused before any connection;
//!   TLS trusts only the configured CA (the handshake is first checked with
//!   our own TLS layer, which reports the chain);
//! - request checksums are computed and response checksums validated only
//!   "when required": the 2025 SDK defaults break many S3-compatible servers;
//! - errors are told apart: bad access key, bad secret, missing bucket,
//!   access denied, wrong region, path-style versus virtual-host mismatch;
//! - the write probe puts `airgap-verify-probe/<id>`, reads it back, compares
//!   the bytes, deletes it and lists the prefix to prove it is gone; with no
//!   bucket configured it lists the buckets and works in a temporary bucket
//!   `airgap-verify-probe-<id>` that it creates and removes. Anything left
//!   is named in `s3:leftover`. A storage that keeps folders (SeaweedFS)
//!   also loses the empty `airgap-verify-probe/` entry it would otherwise
//!   show in every listing. In a bucket that keeps versions (the put
//!   answers with a version id) the probe deletes that version, since a
//!   plain delete there leaves the data behind a delete marker;
//! - a put that gets no answer by its deadline may still land later (and,
//!   on some servers, bring a removed temporary bucket back): its key is
//!   watched for two more deadlines and deleted if it appears, before the
//!   bucket is removed.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};

use super::context::ProbeContext;
use super::http::endpoint;
use super::net::NetError;
use crate::config::S3Plan;
use crate::finding::{Code, Finding};

/// Resolves through the perimeter's DNS and refuses addresses outside it.
#[derive(Clone)]
struct PerimeterDns(Arc<ProbeContext>);

impl std::fmt::Debug for PerimeterDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PerimeterDns")
    }
}

impl ResolveDns for PerimeterDns {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move {
            self.0
                .resolver
                .resolve_inside(name)
                .await
                .map(|r| r.addrs)
                .map_err(|e| ResolveDnsError::new(e.describe()))
        })
    }
}

/// Maps an SDK error to a finding.
pub(super) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
    target: &str,
    what: &str,
    io: Duration,
) -> Finding {
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let region_hint = se
                .raw()
                .headers()
                .get("x-amz-bucket-region")
                .map(String::from);
            let (c, why) = match (code, status) {
                ("InvalidAccessKeyId", _) => (
                    Code::S3InvalidAccessKey,
                    "the storage does not know this access key",
                ),
                ("SignatureDoesNotMatch", _) => (
                    Code::S3SignatureMismatch,
                    "the signature does not match: the secret key is wrong",
                ),
                ("NoSuchBucket", _) => (Code::S3BucketMissing, "the bucket does not exist"),
                ("AccessDenied", _) | ("AllAccessDisabled", _) => {
                    (Code::S3AccessDenied, "access denied")
                }
                ("AuthorizationHeaderMalformed", _) | ("PermanentRedirect", _) | (_, 301) => (
                    Code::S3WrongRegion,
                    "the request was signed for another region",
                ),
                // Throttled or failing: one request reported, never
                // retried (the client's retries are disabled).
                ("SlowDown", _) => (
                    Code::S3Unavailable,
                    "the storage asks to slow down (throttling); not retried",
                ),
                ("ServiceUnavailable" | "InternalError", _) | (_, 429 | 500..=599) => (
                    Code::S3Unavailable,
                    "the storage cannot serve now; not retried",
                ),
                ("", 404) => (Code::S3BucketMissing, "not found (404)"),
                ("", 403) => (Code::S3AccessDenied, "forbidden (403)"),
                _ => (Code::S3ProtocolError, "unexpected reply"),
            };
            let mut f = Finding::new(
                c,
                target,
                format!(
                    "{what}: {why} ({status}{})",
                    if code.is_empty() {
                        String::new()
                    } else {
                        format!(" {code}")
                    }
                ),
            )
            .evidence("http_status", status)
            .evidence("s3_code", code);
            if let Some(msg) = se.err().message() {
                f = f.evidence("s3_message", msg.chars().take(200).collect::<String>());
            }
            if let Some(r) = se.raw().headers().get("retry-after") {
                f = f.evidence("retry_after", r.chars().take(64).collect::<String>());
            }
            if let Some(r) = region_hint {
                f = f.evidence("bucket_region", r);
            }
            f
        }
        SdkError::TimeoutError(_) => NetError::NoReply(io).finding(target, what),
        SdkError::DispatchFailure(d) => {
            let detail = aws_sdk_s3::error::DisplayErrorContext(err).to_string();
            let e = if d.is_timeout() {
                NetError::NoReply(io)
            } else if detail.contains("Connection refused") {
                NetError::Refused
            } else if detail.contains("outside allowed_networks")
                || detail.contains("did not resolve")
            {
                NetError::Unresolved(detail)
            } else {
                NetError::Io(detail)
            };
            e.finding(target, what)
        }
        other => Finding::new(
            Code::S3ProtocolError,
            target,
            format!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(other)),
        ),
    }
}

pub(super) fn client(
    ctx: &Arc<ProbeContext>,
    plan: &S3Plan,
    path_style: bool,
) -> Result<aws_sdk_s3::Client, String> {
    use aws_smithy_http_client::tls;
    let mut trust = tls::TrustStore::empty().with_native_roots(ctx.plan.system_roots);
    if let Some(ca) = &ctx.plan.ca_bundle {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        trust = trust.with_pem_certificate(pem);
    }
    let tls_ctx = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| e.to_string())?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_ctx)
        .build_with_resolver(PerimeterDns(ctx.clone()));
    let d = ctx.plan.deadlines;
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(d.connect)
        .read_timeout(d.io)
        .operation_attempt_timeout(d.connect + d.handshake + d.io * 2)
        .build();
    let creds = Credentials::new(
        plan.access_key.clone().unwrap_or_default(),
        plan.secret_key
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default(),
        None,
        None,
        "airgap-verify-config",
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(plan.region.clone()))
        .endpoint_url(plan.endpoint.clone())
        .force_path_style(path_style)
        .credentials_provider(creds)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(timeouts)
        .http_client(http)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(conf))
}

pub async fn probe(ctx: &Arc<ProbeContext>, plan: &S3Plan) -> Vec<Finding> {
    let target = plan.endpoint.clone();
    let io = ctx.plan.deadlines.io;
    let mut out = Vec::new();
    if plan.endpoint.starts_with("http://") {
        out.push(Finding::new(
            Code::S3ProtocolError,
            target.clone(),
            format!(
                "{} is plain HTTP: the storage's data and signatures would cross in clear",
                plan.endpoint
            ),
        ));
    }
    // Resolution, perimeter and TLS first, with the chain in the findings.
    match endpoint(ctx, &plan.endpoint, &target).await {
        Ok(ep) => out.extend(ep.tls),
        Err(f) => {
            out.extend(f);
            return out;
        }
    }
    if plan.access_key.is_none() || plan.secret_key.is_none() {
        out.push(Finding::new(
            Code::S3InvalidAccessKey,
            target,
            "no access key and secret key are configured (or they could not be read); the storage cannot be checked",
        ));
        return out;
    }
    let s3 = match client(ctx, plan, plan.path_style) {
        Ok(c) => c,
        Err(m) => {
            out.push(Finding::new(
                Code::S3ProtocolError,
                target,
                format!("cannot build the S3 client: {m}"),
            ));
            return out;
        }
    };

    if plan.buckets.is_empty() {
        match s3.list_buckets().send().await {
            Ok(r) => {
                let names: Vec<String> = r
                    .buckets()
                    .iter()
                    .filter_map(|b| b.name().map(String::from))
                    .collect();
                out.push(
                    Finding::new(
                        Code::S3BucketsListed,
                        target.clone(),
                        format!("the credentials list {} bucket(s)", names.len()),
                    )
                    .evidence("buckets", names),
                );
            }
            Err(e) => {
                out.push(classify(&e, &target, "listing the buckets", io));
                return out;
            }
        }
        if plan.always_write || ctx.plan.write_probe {
            out.extend(temporary_bucket_probe(ctx, &s3, &target, io).await);
        }
        return out;
    }

    // The buckets are checked a few at a time (16 event buckets one after
    // the other would multiply every round trip by 16), and reported in
    // the order the plan names them.
    let write = plan.always_write || ctx.plan.write_probe;
    let gate = Arc::new(tokio::sync::Semaphore::new(BUCKETS_IN_FLIGHT));
    let mut set = tokio::task::JoinSet::new();
    for (i, bucket) in plan.buckets.iter().enumerate() {
        let (ctx, s3, gate) = (ctx.clone(), s3.clone(), gate.clone());
        let (bucket, target) = (bucket.clone(), target.clone());
        set.spawn(async move {
            let _turn = gate.acquire_owned().await;
            let plan = ctx
                .plan
                .s3
                .as_ref()
                .expect("the probe runs only with an S3 plan");
            (
                i,
                check_bucket(&ctx, &s3, plan, &bucket, &target, write, io).await,
            )
        });
    }
    let mut per_bucket = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(r) => per_bucket.push(r),
            Err(e) => out.push(Finding::new(
                Code::S3ProtocolError,
                target.clone(),
                format!("a bucket check stopped: {e}"),
            )),
        }
    }
    per_bucket.sort_by_key(|(i, _)| *i);
    out.extend(per_bucket.into_iter().flat_map(|(_, f)| f));
    out
}

/// How many buckets are checked at once.
const BUCKETS_IN_FLIGHT: usize = 4;

/// How many buckets' checks may run one after the other within the probe's
/// budget: the run gives the S3 probe time for this many rounds.
pub fn rounds(buckets: usize) -> u32 {
    buckets.div_ceil(BUCKETS_IN_FLIGHT).max(1) as u32
}

/// One bucket: a listing (existence and list permission), HeadBucket, and
/// the write probe when `write`.
async fn check_bucket(
    ctx: &Arc<ProbeContext>,
    s3: &aws_sdk_s3::Client,
    plan: &S3Plan,
    bucket: &str,
    target: &str,
    write: bool,
    io: Duration,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let btarget = format!("{target} {bucket}");
    // A listing first: unlike HEAD, its error body names the cause.
    let listed = s3.list_objects_v2().bucket(bucket).max_keys(1).send().await;
    if let Err(e) = &listed {
        let mut f = classify(e, &btarget, &format!("listing bucket {bucket}"), io);
        if f.code == Code::S3AccessDenied {
            f.message.push_str(
                ": the key may not list this bucket (the platform needs read, write, list and delete on it)",
            );
        }
        // The other addressing style may be what the server wants.
        if matches!(
            f.code,
            Code::S3BucketMissing
                | Code::S3ProtocolError
                | Code::NetUnresolved
                | Code::NetNoReply
                | Code::NetRefused
        ) {
            if let Ok(other) = client(ctx, plan, !plan.path_style) {
                if other
                    .list_objects_v2()
                    .bucket(bucket)
                    .max_keys(1)
                    .send()
                    .await
                    .is_ok()
                {
                    f = Finding::new(
                        Code::S3AddressingMismatch,
                        btarget.clone(),
                        format!(
                            "bucket {bucket} answers with {} addressing, not the configured {}: set {}",
                            style(!plan.path_style),
                            style(plan.path_style),
                            if plan.event_prefix.is_some() {
                                format!(
                                    "global.platform_storage.force_path_style_access: {}",
                                    !plan.path_style
                                )
                            } else {
                                format!("path_style: {}", !plan.path_style)
                            }
                        ),
                    )
                    .evidence("configured", style(plan.path_style))
                    .evidence("works", style(!plan.path_style));
                }
            }
        }
        out.push(f);
        return out;
    }
    if let Err(e) = s3.head_bucket().bucket(bucket).send().await {
        out.push(classify(&e, &btarget, &format!("HeadBucket {bucket}"), io));
        return out;
    }
    let keys = listed.ok().map(|r| r.key_count().unwrap_or(0)).unwrap_or(0);
    out.push(
        Finding::new(
            Code::S3BucketOk,
            btarget.clone(),
            format!(
                "bucket {bucket} answers HeadBucket and a listing ({} addressing, region {}){}",
                style(plan.path_style),
                plan.region,
                if write {
                    ""
                } else {
                    "; writing was not tried (add --write-probe)"
                }
            ),
        )
        .evidence("bucket", bucket.to_string())
        .evidence("keys_in_first_page", keys)
        .evidence("addressing", style(plan.path_style))
        .evidence("region", plan.region.clone()),
    );
    if write {
        out.extend(write_probe(ctx, s3, bucket, &btarget, io).await);
    }
    out
}

fn style(path: bool) -> &'static str {
    if path {
        "path-style"
    } else {
        "virtual-host"
    }
}

/// Put, get, compare, delete, and check the prefix is empty again.
async fn write_probe(
    ctx: &ProbeContext,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    target: &str,
    io: Duration,
) -> Vec<Finding> {
    let id = super::net::probe_id();
    let key = format!("{PROBE_FOLDER}{id}");
    let body = format!("airgap-verify write probe {id}\n").into_bytes();
    // The version the put created, once its answer names one: the undo
    // below then deletes that version, not just the key.
    let version: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    // Recorded before the put is sent: a put cut off in flight may land.
    let ticket = ctx.ledger.record(
        target,
        format!("the probe object {bucket}/{key}"),
        Box::pin({
            let (s3, bucket, key) = (s3.clone(), bucket.to_string(), key.clone());
            let version = version.clone();
            async move {
                let v = version.lock().map(|v| v.clone()).unwrap_or_default();
                remove_version(&s3, &bucket, &key, v.as_deref()).await?;
                remove_folder(&s3, &bucket, PROBE_FOLDER).await;
                Ok(())
            }
        }),
    );
    let out = write_probe_steps(s3, bucket, &key, &body, &version, target, io).await;
    ctx.ledger.done(ticket);
    out
}

/// Where the write probe puts its object.
const PROBE_FOLDER: &str = "airgap-verify-probe/";

/// Deletes one object; idempotent (S3 answers a delete of a missing key
/// with success, and a missing bucket means nothing is left).
async fn remove_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    match s3.delete_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("NoSuchBucket") => Ok(()),
        Err(e) => Err(e.code().unwrap_or("no answer").to_string()),
    }
}

/// Deletes the object the put made: on a bucket that keeps versions (the
/// put answered with a version id) that exact version, since a plain delete
/// there only hides the object behind a delete marker and its data stays;
/// a plain delete otherwise.
async fn remove_version(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<(), String> {
    let Some(v) = version.filter(|v| *v != "null") else {
        return remove_object(s3, bucket, key).await;
    };
    match s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .version_id(v)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("NoSuchBucket") => Ok(()),
        Err(e) => Err(format!(
            "{} deleting its version {v} (the bucket keeps versions: deleting one needs s3:DeleteObjectVersion)",
            e.code().unwrap_or("no answer")
        )),
    }
}

/// Removes the folder entry `folder` (ending in `/`) that a storage keeping
/// folders (SeaweedFS's filer) leaves once the objects under it are gone,
/// and that an S3 listing then shows as a common prefix. The delete is sent
/// only when the entry answers a HEAD, so AWS and MinIO, which keep no
/// folders, see no request at all and a versioned bucket gets no delete
/// marker. A folder still holding another run's objects is kept by the
/// storage (its folder delete is not recursive). Best effort: the objects
/// under it were just deleted with the same credentials, and an empty
/// folder entry holds no data.
pub(super) async fn remove_folder(s3: &aws_sdk_s3::Client, bucket: &str, folder: &str) {
    if s3
        .head_object()
        .bucket(bucket)
        .key(folder)
        .send()
        .await
        .is_ok()
    {
        let _ = remove_object(s3, bucket, folder).await;
    }
}

/// Deletes every object under `prefix` (the whole bucket for ""), page by
/// page, and checks the prefix lists empty. A missing bucket holds nothing.
pub(super) async fn remove_prefix(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<(), String> {
    drain(s3, bucket, prefix, false).await
}

/// Deletes every version and delete marker under `prefix`, for a bucket
/// known to keep versions: there a plain delete only hides an object behind
/// a delete marker, and its data stays.
pub(super) async fn purge_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<(), String> {
    drain(s3, bucket, prefix, true).await
}

/// Lists what is under `prefix` (the objects, or with `versions` every
/// version and delete marker) and deletes it, until the listing is empty.
/// Deleting shrinks the listing, so the first page is re-read; the bound
/// stops a storage that never forgets an object.
async fn drain(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    versions: bool,
) -> Result<(), String> {
    for _ in 0..1000 {
        let found: Vec<(String, Option<String>)> = if versions {
            let listed = match s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) if e.code() == Some("NoSuchBucket") => return Ok(()),
                Err(e) => {
                    return Err(format!(
                        "{} listing the versions (the bucket keeps versions)",
                        e.code().unwrap_or("no answer")
                    ))
                }
            };
            listed
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id()))
                .chain(
                    listed
                        .delete_markers()
                        .iter()
                        .map(|m| (m.key(), m.version_id())),
                )
                .filter_map(|(k, v)| Some((k?.to_string(), v.map(String::from))))
                .collect()
        } else {
            match s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
            {
                Ok(r) => r
                    .contents()
                    .iter()
                    .filter_map(|o| Some((o.key()?.to_string(), None)))
                    .collect(),
                Err(e) if e.code() == Some("NoSuchBucket") => return Ok(()),
                Err(e) => return Err(e.code().unwrap_or("no answer").to_string()),
            }
        };
        if found.is_empty() {
            return Ok(());
        }
        for (key, v) in found {
            remove_version(s3, bucket, &key, v.as_deref()).await?;
        }
    }
    Err(format!(
        "{} under {bucket}/{prefix} remain after 1000 listings",
        if versions { "versions" } else { "objects" }
    ))
}

/// Deletes the temporary bucket and anything the probe left in it.
pub(super) async fn remove_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    remove_prefix(s3, bucket, "").await?;
    match s3.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("NoSuchBucket") => Ok(()),
        Err(e) => Err(e.code().unwrap_or("no answer").to_string()),
    }
}

async fn write_probe_steps(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    version: &std::sync::Mutex<Option<String>>,
    target: &str,
    io: Duration,
) -> Vec<Finding> {
    let key = key.to_string();
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(body.to_vec().into())
        .send()
        .await;
    let made = match put {
        Ok(o) => o.version_id().map(String::from),
        Err(e) => {
            let mut f = classify(&e, target, &format!("writing {key}"), io);
            f.message = format!("write probe refused: {}", f.message);
            let mut out = vec![f.evidence("key", key.clone())];
            if unanswered(&e) {
                out.extend(settle(s3, bucket, &key, target, io).await);
            }
            return out;
        }
    };
    if let Ok(mut v) = version.lock() {
        v.clone_from(&made);
    }
    // A version id other than "null" means the bucket keeps versions.
    let versioned = made.as_deref().filter(|v| *v != "null");
    let mut problems = Vec::new();
    match s3.get_object().bucket(bucket).key(&key).send().await {
        Ok(o) => match o.body.collect().await.map(|b| b.to_vec()) {
            Ok(b) if b == body => {}
            Ok(_) => problems.push(Finding::new(
                Code::S3ProtocolError,
                target,
                format!("{key} read back differs from what was written"),
            )),
            Err(e) => problems.push(Finding::new(
                Code::S3ProtocolError,
                target,
                format!("reading {key} back: {e}"),
            )),
        },
        Err(e) => problems.push(classify(&e, target, &format!("reading {key} back"), io)),
    }
    let mut delete = s3.delete_object().bucket(bucket).key(&key);
    if let Some(v) = versioned {
        delete = delete.version_id(v);
    }
    let deleted = delete.send().await.map_err(|e| {
        let why = classify(&e, target, "deleting", io).message;
        match versioned {
            Some(v) => format!("{why} (the bucket keeps versions: deleting version {v} needs s3:DeleteObjectVersion)"),
            None => why,
        }
    });
    let gone = match s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&key)
        .send()
        .await
    {
        Ok(r) => r.key_count().unwrap_or(0) == 0,
        Err(_) => false,
    };
    let mut out = problems;
    if deleted.is_ok() && gone {
        remove_folder(s3, bucket, PROBE_FOLDER).await;
        if out.is_empty() {
            let mut f = Finding::new(
                Code::S3WriteProbe,
                target,
                match versioned {
                    Some(v) => format!("wrote {key} to {bucket}, read it back identical, deleted its version {v} (the bucket keeps versions)"),
                    None => format!("wrote {key} to {bucket}, read it back identical, deleted it"),
                },
            )
            .evidence("key", key);
            if let Some(v) = versioned {
                f = f.evidence("version_id", v.to_string());
            }
            out.push(f);
        }
    } else {
        let why = match &deleted {
            Err(m) => m.clone(),
            Ok(_) => "the object is still listed after its delete".into(),
        };
        out.push(
            Finding::new(
                Code::S3Leftover,
                target,
                format!("the probe object {bucket}/{key} could not be removed: {why}"),
            )
            .evidence("left_behind", vec![format!("{bucket}/{key}")]),
        );
    }
    out
}

/// Whether a request went out and its answer never came: the storage may
/// still carry it out.
fn unanswered<E>(e: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> bool {
    match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout() || d.is_io(),
        SdkError::ResponseError(_) => true,
        _ => false,
    }
}

/// A put cut off by its deadline can still land afterwards (a storage
/// growing a volume answers seconds late), and then leave the object, or
/// recreate a temporary bucket just removed. So the key is watched for
/// [`SETTLE_DEADLINES`] more deadlines and deleted if it appears; if it
/// cannot be deleted, it is reported as left behind.
async fn settle(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    target: &str,
    io: Duration,
) -> Option<Finding> {
    let until = tokio::time::Instant::now() + io * SETTLE_DEADLINES;
    loop {
        if let Ok(_found) = s3.head_object().bucket(bucket).key(key).send().await {
            return match remove_object(s3, bucket, key).await {
                Ok(()) => {
                    remove_folder(s3, bucket, PROBE_FOLDER).await;
                    None
                }
                Err(why) => Some(
                    Finding::new(
                        Code::S3Leftover,
                        target,
                        format!("the probe object {bucket}/{key} landed after its deadline and could not be removed: {why}"),
                    )
                    .evidence("left_behind", vec![format!("{bucket}/{key}")]),
                ),
            };
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(SETTLE_POLL.min(io)).await;
    }
}

/// How many more I/O deadlines a timed-out probe write is watched for.
const SETTLE_DEADLINES: u32 = 2;
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// With no bucket configured: create a temporary bucket, probe, remove it.
async fn temporary_bucket_probe(
    ctx: &ProbeContext,
    s3: &aws_sdk_s3::Client,
    target: &str,
    io: Duration,
) -> Vec<Finding> {
    let bucket = format!("airgap-verify-probe-{}", super::net::probe_id());
    let ticket = ctx.ledger.record(
        target,
        format!("the temporary bucket {bucket}"),
        Box::pin({
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move { remove_bucket(&s3, &bucket).await }
        }),
    );
    let out = temporary_bucket_steps(ctx, s3, &bucket, target, io).await;
    ctx.ledger.done(ticket);
    out
}

async fn temporary_bucket_steps(
    ctx: &ProbeContext,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    target: &str,
    io: Duration,
) -> Vec<Finding> {
    let bucket = bucket.to_string();
    if let Err(e) = s3.create_bucket().bucket(&bucket).send().await {
        let mut f = classify(
            &e,
            target,
            &format!("creating the temporary bucket {bucket}"),
            io,
        );
        f.message = format!("write probe refused: {}", f.message);
        return vec![f];
    }
    let mut out = write_probe(ctx, s3, &bucket, &format!("{target} {bucket}"), io).await;
    if let Err(e) = s3.delete_bucket().bucket(&bucket).send().await {
        let why = classify(&e, target, "deleting", io).message;
        out.push(
            Finding::new(
                Code::S3Leftover,
                target,
                format!("the temporary bucket {bucket} could not be removed: {why}"),
            )
            .evidence("left_behind", vec![bucket]),
        );
    }
    out
}
