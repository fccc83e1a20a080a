//! Micro-benchmark of the external-reference scan alone, on one core
//! (`scripts/bench-refscan.sh` runs it; the target is 1 GB/s of text).
//!
//! Generates deterministic release-like text (Kubernetes YAML with image
//! keys and URLs, CycloneDX-like SBOM JSON with a URL every few lines) and
//! feeds it in 64 KiB buffers, as the pass does, to the pass's
//! `refscan::LineScanner` (finding the references, classifying them and
//! building the findings of the external ones the report can keep: the
//! default perimeter, as a run without a perimeter file has it), side by
//! side with two baselines over the same
//! buffers: counting the lines (`memchr`: what reading the text costs) and
//! the scan as it was before (each line cut out and tested with
//! `str::contains` for its triggers). Prints the median of the runs.
//!
//! Usage: cargo run --release --example refscan [-- MiB [RUNS [scan]]]
//! (`scan`: the scanner alone, for a profiler)

use std::time::Instant;

use std::sync::Arc;

use airgap_verify::bundle::refscan::{LineScanner, Perimeter};

fn text(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut i = 0u64;
    while out.len() < bytes {
        i += 1;
        if i % 3 == 0 {
            // An SBOM component.
            out.extend_from_slice(
                format!(
                    "    {{\n      \"bom-ref\": \"pkg:golang/github.com/acme/lib{i}@v1.{}.0\",\n      \"type\": \"library\",\n      \"name\": \"github.com/acme/lib{i}\",\n      \"version\": \"v1.{}.0\",\n      \"purl\": \"pkg:golang/github.com/acme/lib{i}@v1.{}.0\",\n      \"licenses\": [{{\"license\": {{\"id\": \"Apache-2.0\"}}}}],\n      \"externalReferences\": [{{\"type\": \"vcs\", \"url\": \"https://github.com/acme/lib{i}\"}}],\n      \"hashes\": [{{\"alg\": \"SHA-256\", \"content\": \"{:064x}\"}}]\n    }},\n",
                    i % 17, i % 17, i % 17, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                )
                .as_bytes(),
            );
        } else {
            // A Kubernetes manifest.
            out.extend_from_slice(
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}\n  labels:\n    app.kubernetes.io/name: svc-{i}\n    app.kubernetes.io/part-of: platform\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: main\n          image: registry.sekoia.io/platform/svc-{i}:1.{}.0\n          args: [\"--listen\", \"0.0.0.0:8080\", \"--log-level\", \"info\"]\n          env:\n            - name: UPSTREAM\n              value: http://svc-{}.platform.svc:8080/api\n          resources:\n            limits: {{cpu: 500m, memory: 256Mi}}\n---\n",
                    i % 9,
                    i + 1
                )
                .as_bytes(),
            );
        }
    }
    out
}

/// The scan before: every line copied out and tested for its triggers.
fn per_line(text: &[u8]) -> usize {
    let mut hits = 0;
    for line in text.split(|&b| b == b'\n') {
        if let Ok(l) = std::str::from_utf8(line) {
            if l.contains("://") || l.contains("image") || l.contains("repository") {
                hits += airgap_verify::bundle::refscan::scan_line(l).len();
            }
        }
    }
    hits
}

/// CPU time of this thread, in seconds: on a machine others share, what
/// the scan costs, whatever share of the core it got.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    // `scan`: the scanner alone (for a profiler).
    let only_scan = args.next().as_deref() == Some("scan");
    let data = text(mib << 20);
    let chunk = airgap_verify::bundle::stream::CHUNK_SIZE;
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut scan_cpu = Vec::new();
    let mut refs = 0;
    let mut old_refs = 0;
    let mut lines = 0;
    for _ in 0..runs {
        let t = Instant::now();
        lines = data
            .chunks(chunk)
            .map(|c| memchr::memchr_iter(b'\n', c).count())
            .sum::<usize>();
        times[0].push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let cpu = thread_cpu();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut s = LineScanner::new("bench.yaml".into(), Arc::new(Perimeter::default()));
        for c in data.chunks(chunk) {
            s.feed(c);
        }
        refs = s.finish(&tx).references as usize;
        times[1].push(t.elapsed().as_secs_f64());
        scan_cpu.push(thread_cpu() - cpu);
        drop((tx, rx));

        if only_scan {
            old_refs = refs;
            times[2].push(f64::NAN);
            continue;
        }
        let t = Instant::now();
        old_refs = per_line(&data);
        times[2].push(t.elapsed().as_secs_f64());
    }
    assert_eq!(
        refs, old_refs,
        "the two scans must find the same references"
    );
    let mb = data.len() as f64 / 1e6;
    let [count, scan, old] = times.map(median);
    let scan_cpu = median(scan_cpu);
    println!(
        "{mb:.0} MB of text, {lines} lines, {refs} references; median of {runs} runs, one core"
    );
    println!(
        "  {:<44} {:>8.3} s {:>8.0} MB/s",
        "count lines (memchr): reading the text",
        count,
        mb / count
    );
    println!(
        "  {:<44} {:>8.3} s {:>8.0} MB/s",
        "refscan::LineScanner (this build)",
        scan,
        mb / scan
    );
    println!(
        "  {:<44} {:>8.3} s {:>8.0} MB/s",
        "  the same, CPU time of its thread",
        scan_cpu,
        mb / scan_cpu
    );
    println!(
        "  {:<44} {:>8.3} s {:>8.0} MB/s",
        "per-line scan (the scan before)",
        old,
        mb / old
    );
    println!("  LineScanner / per-line time: {:.2}", scan / old);
    let verdict = if mb / scan >= 1000.0 { "PASS" } else { "FAIL" };
    println!(
        "  acceptance: LineScanner >= 1000 MB/s: {:.0} MB/s {verdict} (wall time; CPU time: {:.0} MB/s)",
        mb / scan,
        mb / scan_cpu
    );
}
