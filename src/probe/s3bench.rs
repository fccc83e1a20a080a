//! `--s3-benchmark`: measures what the vendor requires of the platform's
//! object storage, with the same client and trust as the S3 probe, and
//! without the container image the vendor's own benchmark pulls from the
//! internet.
//!
//! The vendor's requirements: GET and PUT throughput of at least 50 MiB/s,
//! STAT (HeadObject) and DELETE of at least 100 operations/s, request
//! latency p90 of at most 200 ms, time to first byte p90 of at most 100 ms.
//!
//! What is measured, in one bucket (the first configured, or a temporary
//! bucket `airgap-verify-bench-<id>` created and removed), under the prefix
//! `airgap-verify-bench/<id>-`, with [`CONCURRENCY`] requests in flight:
//! - PUT throughput: [`LARGE_COUNT`] objects of [`LARGE_SIZE`] bytes;
//! - GET throughput and time to first byte: reading them back (every byte
//!   is compared with what was written);
//! - STAT and DELETE rates: HeadObject then DeleteObject on [`SMALL_COUNT`]
//!   small objects (written first), then on the large ones;
//! - request latency: every request on a small object (PUT, HEAD, DELETE),
//!   where latency is the server's, not the transfer's (a 4 MiB PUT at
//!   50 MiB/s takes 80 ms of pure transfer).
//!
//! Guarantees: the prefix (and the temporary bucket) is recorded in the
//! clean-up ledger before the first write, so every object is removed on
//! success, failure, timeout and interrupt; a listing proves the prefix is
//! empty at the end, and the empty `airgap-verify-bench/` folder entry a
//! storage that keeps folders would show is removed too. When a put
//! answers with a version id (the bucket keeps versions), every version and
//! delete marker under the prefix is deleted as well. Anything left is
//! named in `s3:leftover`. The whole
//! benchmark is bounded by [`DEADLINE`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::ProbeContext;
use super::s3::{classify, client, purge_versions, remove_bucket, remove_folder, remove_prefix};
use crate::config::S3Plan;
use crate::finding::{Code, Finding};

/// Where the benchmark's objects go in a configured bucket.
const BENCH_FOLDER: &str = "airgap-verify-bench/";

pub const LARGE_SIZE: usize = 4 << 20;
pub const LARGE_COUNT: usize = 16;
pub const SMALL_SIZE: usize = 4 << 10;
pub const SMALL_COUNT: usize = 200;
pub const CONCURRENCY: usize = 8;
/// The benchmark never runs longer than this (then it reports what it has).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The vendor's thresholds.
pub const MIN_PUT_MIB_S: f64 = 50.0;
pub const MIN_GET_MIB_S: f64 = 50.0;
pub const MIN_STAT_OPS: f64 = 100.0;
pub const MIN_DELETE_OPS: f64 = 100.0;
pub const MAX_LATENCY_P90: Duration = Duration::from_millis(200);
pub const MAX_TTFB_P90: Duration = Duration::from_millis(100);

/// One request's timings.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    ttfb: Option<Duration>,
}

/// The figures of one run, and the thresholds they are held to.
#[derive(Debug, Clone)]
pub struct Figures {
    pub put_mib_s: f64,
    pub get_mib_s: f64,
    pub stat_ops: f64,
    pub delete_ops: f64,
    pub latency_p90: Duration,
    pub ttfb_p90: Duration,
}

impl Figures {
    /// The requirements these figures miss, in words.
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.put_mib_s < MIN_PUT_MIB_S {
            out.push(format!("PUT {:.1} MiB/s < {MIN_PUT_MIB_S}", self.put_mib_s));
        }
        if self.get_mib_s < MIN_GET_MIB_S {
            out.push(format!("GET {:.1} MiB/s < {MIN_GET_MIB_S}", self.get_mib_s));
        }
        if self.stat_ops < MIN_STAT_OPS {
            out.push(format!("STAT {:.0} ops/s < {MIN_STAT_OPS}", self.stat_ops));
        }
        if self.delete_ops < MIN_DELETE_OPS {
            out.push(format!(
                "DELETE {:.0} ops/s < {MIN_DELETE_OPS}",
                self.delete_ops
            ));
        }
        if self.latency_p90 > MAX_LATENCY_P90 {
            out.push(format!(
                "latency p90 {} ms > {}",
                self.latency_p90.as_millis(),
                MAX_LATENCY_P90.as_millis()
            ));
        }
        if self.ttfb_p90 > MAX_TTFB_P90 {
            out.push(format!(
                "TTFB p90 {} ms > {}",
                self.ttfb_p90.as_millis(),
                MAX_TTFB_P90.as_millis()
            ));
        }
        out
    }
}

/// The 90th percentile (nearest rank); zero for no samples.
pub fn p90(samples: &mut [Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = (samples.len() * 9).div_ceil(10);
    samples[rank.max(1) - 1]
}

/// Compares a body that arrives in chunks with what was written, without
/// holding a copy of it.
struct SameAs<'a> {
    want: &'a [u8],
    at: usize,
    same: bool,
}

impl<'a> SameAs<'a> {
    fn new(want: &'a [u8]) -> Self {
        SameAs {
            want,
            at: 0,
            same: true,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let end = self.at.saturating_add(chunk.len());
        self.same &= self.want.get(self.at..end) == Some(chunk);
        self.at = end;
    }

    /// Every byte came, equal, and no more.
    fn matches(&self) -> bool {
        self.same && self.at == self.want.len()
    }
}

/// Bytes no compressor or deduplicator can shrink (xorshift), distinct per
/// object: the first 16 bytes carry the object's number.
fn payload(len: usize, n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (n as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    let tag = format!("{n:016}");
    let k = tag.len().min(len);
    v[..k].copy_from_slice(&tag.as_bytes()[..k]);
    v
}

/// Runs `op(i)` for i in 0..n with `CONCURRENCY` in flight; stops at the
/// first error. Returns the samples and the phase's wall time.
async fn phase<F, Fut>(n: usize, op: F) -> Result<(Vec<Sample>, Duration), Finding>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Sample, Finding>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY.min(n) {
        let (op, next) = (op.clone(), next.clone());
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(out);
                }
                out.push(op(i).await?);
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => all.extend(s),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(Finding::new(
                    Code::S3ProtocolError,
                    "airgap-verify",
                    format!("a benchmark task stopped: {e}"),
                ))
            }
        }
    }
    Ok((all, started.elapsed()))
}

fn mib_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64().max(1e-9)
}

fn ops_s(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

pub async fn probe(ctx: &Arc<ProbeContext>, plan: &S3Plan) -> Vec<Finding> {
    let target = plan.endpoint.clone();
    let io = ctx.plan.deadlines.io;
    if plan.access_key.is_none() || plan.secret_key.is_none() {
        // The S3 probe reports the missing credentials.
        return Vec::new();
    }
    let s3 = match client(ctx, plan, plan.path_style) {
        Ok(c) => c,
        Err(m) => {
            return vec![Finding::new(
                Code::S3ProtocolError,
                target,
                format!("cannot build the S3 client: {m}"),
            )]
        }
    };
    let id = super::net::probe_id();
    let (bucket, temporary) = match plan.buckets.first() {
        Some(b) => (b.clone(), false),
        None => (format!("airgap-verify-bench-{id}"), true),
    };
    // Flat keys: a storage that keeps folders (SeaweedFS's filer) is left
    // one folder to remove, not one per run.
    let prefix = format!("{BENCH_FOLDER}{id}-");
    let btarget = format!("{target} {bucket}");
    // Set when a put answers with a version id: the bucket keeps versions,
    // and the clean-up must delete them, not only hide them.
    let versioned = Arc::new(AtomicBool::new(false));
    let ticket = ctx.ledger.record(
        &btarget,
        if temporary {
            format!("the temporary benchmark bucket {bucket}")
        } else {
            format!("the benchmark objects {bucket}/{prefix}*")
        },
        Box::pin({
            let (s3, bucket, prefix) = (s3.clone(), bucket.clone(), prefix.clone());
            let versioned = versioned.clone();
            async move {
                if temporary {
                    remove_bucket(&s3, &bucket).await
                } else {
                    remove_prefix(&s3, &bucket, &prefix).await?;
                    if versioned.load(Ordering::Relaxed) {
                        purge_versions(&s3, &bucket, &prefix).await?;
                    }
                    remove_folder(&s3, &bucket, BENCH_FOLDER).await;
                    Ok(())
                }
            }
        }),
    );
    let measured = tokio::time::timeout(
        DEADLINE,
        measure(&s3, &bucket, &prefix, temporary, &versioned, &btarget, io),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Finding::new(
            Code::S3BenchmarkSlow,
            btarget.clone(),
            format!(
                "the benchmark did not finish within {} s",
                DEADLINE.as_secs()
            ),
        ))
    });
    // Whatever happened, the prefix (and the temporary bucket) must go.
    let removed = if temporary {
        remove_bucket(&s3, &bucket).await
    } else {
        let mut r = remove_prefix(&s3, &bucket, &prefix).await;
        if r.is_ok() && versioned.load(Ordering::Relaxed) {
            r = purge_versions(&s3, &bucket, &prefix).await;
        }
        if r.is_ok() {
            remove_folder(&s3, &bucket, BENCH_FOLDER).await;
        }
        r
    };
    ctx.ledger.done(ticket);
    let mut out = vec![match measured {
        Ok(f) => f,
        Err(f) => f,
    }];
    if let Err(why) = removed {
        out.push(
            Finding::new(
                Code::S3Leftover,
                btarget,
                format!("benchmark objects under {bucket}/{prefix} could not be removed: {why}"),
            )
            .evidence("left_behind", vec![format!("{bucket}/{prefix}")]),
        );
    }
    out
}

async fn measure(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    temporary: bool,
    versioned: &Arc<AtomicBool>,
    target: &str,
    io: Duration,
) -> Result<Finding, Finding> {
    // A failed request keeps its own code (access denied, no reply...).
    let fail = |what: &str, f: Finding| Finding {
        message: format!("the benchmark stopped while {what}: {}", f.message),
        ..f
    };
    if temporary {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify(&e, target, &format!("creating {bucket}"), io))?;
    }
    // Held for the whole run, so that no payload is generated inside a timed
    // phase; each PUT sends its payload by reference, and each GET compares
    // what arrives chunk by chunk, so no second copy of either is made.
    let large = Arc::new(
        (0..LARGE_COUNT)
            .map(|n| bytes::Bytes::from(payload(LARGE_SIZE, n)))
            .collect::<Vec<_>>(),
    );
    let key = {
        let prefix = prefix.to_string();
        move |kind: &str, i: usize| format!("{prefix}{kind}-{i:04}")
    };
    let ctx = Arc::new((s3.clone(), bucket.to_string(), key, target.to_string(), io));

    // PUT throughput.
    let (_, put_took) = phase(LARGE_COUNT, {
        let (ctx, large, versioned) = (ctx.clone(), large.clone(), versioned.clone());
        move |i| {
            let (ctx, body, versioned) = (ctx.clone(), large[i].clone(), versioned.clone());
            async move {
                let (s3, bucket, key, target, io) = &*ctx;
                let t = Instant::now();
                let put = s3
                    .put_object()
                    .bucket(bucket)
                    .key(key("large", i))
                    .body(body.into())
                    .send()
                    .await
                    .map_err(|e| classify(&e, target, "PUT", *io))?;
                if put.version_id().is_some_and(|v| v != "null") {
                    versioned.store(true, Ordering::Relaxed);
                }
                Ok(Sample {
                    latency: t.elapsed(),
                    ttfb: None,
                })
            }
        }
    })
    .await
    .map_err(|m| fail("writing", m))?;

    // GET throughput and time to first byte; every byte compared.
    let (gets, get_took) = phase(LARGE_COUNT, {
        let (ctx, large) = (ctx.clone(), large.clone());
        move |i| {
            let (ctx, large) = (ctx.clone(), large.clone());
            async move {
                let (s3, bucket, key, target, io) = &*ctx;
                let t = Instant::now();
                let mut o = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key("large", i))
                    .send()
                    .await
                    .map_err(|e| classify(&e, target, "GET", *io))?;
                let mut same = SameAs::new(&large[i]);
                let mut ttfb = None;
                while let Some(chunk) = o.body.next().await {
                    let chunk = chunk.map_err(|e| {
                        Finding::new(
                            Code::S3ProtocolError,
                            target.as_str(),
                            format!("reading the body: {e}"),
                        )
                    })?;
                    ttfb.get_or_insert_with(|| t.elapsed());
                    same.feed(&chunk);
                }
                if !same.matches() {
                    return Err(Finding::new(
                        Code::S3ProtocolError,
                        target.as_str(),
                        format!(
                            "{} read back differs from what was written",
                            key("large", i)
                        ),
                    ));
                }
                Ok(Sample {
                    latency: t.elapsed(),
                    ttfb,
                })
            }
        }
    })
    .await
    .map_err(|m| fail("reading", m))?;

    // Small objects: PUT, then STAT, then DELETE (latency and rates).
    let small_op = |kind: &'static str| {
        let ctx = ctx.clone();
        move |i: usize| {
            let ctx = ctx.clone();
            async move {
                let (s3, bucket, key, target, io) = &*ctx;
                let t = Instant::now();
                let r = match kind {
                    "put" => s3
                        .put_object()
                        .bucket(bucket)
                        .key(key("small", i))
                        .body(payload(SMALL_SIZE, LARGE_COUNT + i).into())
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, target, "PUT", *io)),
                    "stat" => s3
                        .head_object()
                        .bucket(bucket)
                        .key(key("small", i))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, target, "HEAD", *io)),
                    _ => s3
                        .delete_object()
                        .bucket(bucket)
                        .key(key("small", i))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| classify(&e, target, "DELETE", *io)),
                };
                r.map(|_| Sample {
                    latency: t.elapsed(),
                    ttfb: None,
                })
            }
        }
    };
    let (puts, _) = phase(SMALL_COUNT, small_op("put"))
        .await
        .map_err(|m| fail("writing small objects", m))?;
    let (stats, stat_took) = phase(SMALL_COUNT, small_op("stat"))
        .await
        .map_err(|m| fail("reading object metadata", m))?;
    let (deletes, delete_took) = phase(SMALL_COUNT, small_op("delete"))
        .await
        .map_err(|m| fail("deleting", m))?;

    let mut latencies: Vec<Duration> = puts
        .iter()
        .chain(&stats)
        .chain(&deletes)
        .map(|s| s.latency)
        .collect();
    let mut ttfbs: Vec<Duration> = gets.iter().filter_map(|s| s.ttfb).collect();
    let figures = Figures {
        put_mib_s: mib_s(LARGE_COUNT * LARGE_SIZE, put_took),
        get_mib_s: mib_s(LARGE_COUNT * LARGE_SIZE, get_took),
        stat_ops: ops_s(SMALL_COUNT, stat_took),
        delete_ops: ops_s(SMALL_COUNT, delete_took),
        latency_p90: p90(&mut latencies),
        ttfb_p90: p90(&mut ttfbs),
    };
    let misses = figures.misses();
    let summary = format!(
        "PUT {:.0} MiB/s, GET {:.0} MiB/s, STAT {:.0} ops/s, DELETE {:.0} ops/s, latency p90 {} ms, TTFB p90 {} ms",
        figures.put_mib_s,
        figures.get_mib_s,
        figures.stat_ops,
        figures.delete_ops,
        figures.latency_p90.as_millis(),
        figures.ttfb_p90.as_millis()
    );
    let f = if misses.is_empty() {
        Finding::new(
            Code::S3Benchmark,
            target,
            format!("{summary}: meets the vendor's requirements"),
        )
    } else {
        Finding::new(
            Code::S3BenchmarkSlow,
            target,
            format!(
                "{summary}: below the vendor's requirements ({})",
                misses.join("; ")
            ),
        )
        .evidence("misses", misses)
    };
    Ok(
        f.evidence("put_mib_s", (figures.put_mib_s * 10.0).round() / 10.0)
            .evidence("get_mib_s", (figures.get_mib_s * 10.0).round() / 10.0)
            .evidence("stat_ops_s", figures.stat_ops.round())
            .evidence("delete_ops_s", figures.delete_ops.round())
            .evidence("latency_p90_ms", figures.latency_p90.as_millis() as u64)
            .evidence("ttfb_p90_ms", figures.ttfb_p90.as_millis() as u64)
            .evidence("bytes_each_way", (LARGE_COUNT * LARGE_SIZE) as u64)
            .evidence("small_objects", SMALL_COUNT as u64)
            .evidence("concurrency", CONCURRENCY as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p90_is_the_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(p90(&mut ms(&[])), Duration::ZERO);
        assert_eq!(p90(&mut ms(&[7])), Duration::from_millis(7));
        let mut ten = ms(&[10, 1, 9, 2, 8, 3, 7, 4, 6, 5]);
        assert_eq!(p90(&mut ten), Duration::from_millis(9));
        let mut eleven = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(p90(&mut eleven), Duration::from_millis(10));
    }

    #[test]
    fn misses_name_each_requirement() {
        let good = Figures {
            put_mib_s: 50.0,
            get_mib_s: 60.0,
            stat_ops: 100.0,
            delete_ops: 150.0,
            latency_p90: MAX_LATENCY_P90,
            ttfb_p90: MAX_TTFB_P90,
        };
        assert!(good.misses().is_empty(), "{:?}", good.misses());
        let bad = Figures {
            put_mib_s: 49.9,
            get_mib_s: 10.0,
            stat_ops: 99.0,
            delete_ops: 1.0,
            latency_p90: Duration::from_millis(201),
            ttfb_p90: Duration::from_millis(101),
        };
        let m = bad.misses();
        assert_eq!(m.len(), 6, "{m:?}");
        assert!(m[0].starts_with("PUT 49.9"));
        assert!(m[5].starts_with("TTFB p90 101 ms"));
    }

    #[test]
    fn a_body_in_chunks_is_compared_with_what_was_written() {
        let want = payload(10_000, 3);
        let feed = |chunks: &[&[u8]]| {
            let mut s = SameAs::new(&want);
            for c in chunks {
                s.feed(c);
            }
            s.matches()
        };
        assert!(feed(&[&want[..1], &want[1..4097], &want[4097..]]));
        assert!(feed(&[&want[..]]));
        let mut flipped = want.clone();
        flipped[7_000] ^= 1;
        assert!(!feed(&[&flipped[..5_000], &flipped[5_000..]]));
        assert!(!feed(&[&want[..9_999]]), "a short body");
        assert!(!feed(&[&want[..], b"x"]), "a longer body");
        assert!(!feed(&[]), "no body");
    }

    #[test]
    fn payloads_differ_per_object_and_do_not_compress() {
        let a = payload(1 << 16, 0);
        let b = payload(1 << 16, 1);
        assert_ne!(a, b);
        assert_eq!(a.len(), 1 << 16);
        // Not a repeated short pattern: every 8-byte word differs from the next.
        assert!(a[16..]
            .chunks(8)
            .collect::<Vec<_>>()
            .windows(2)
            .all(|w| w[0] != w[1]));
    }
}
