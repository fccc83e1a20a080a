//! Micro-benchmark of the pass's SHA-256 kernels on this CPU, one core:
//! one digest, a pair over the same bytes (`update_pair`, the tar thread's
//! archive and member digests), two digests one after the other, and
//! `sha2`'s portable path. Prints each time and the pair's cost in units of
//! one digest: the pass pairs digests because, on the CPUs measured so
//! far, a pair costs much less than two.
//!
//! Usage: cargo run --release --example sha256-pair [-- MiB [RUNS]]
//!        cargo run --release --example sha256-pair -- --cost
//! (`--cost`: only the pair's cost as the pass measures it at start,
//! `sha256::pair_cost`, and the threshold it is compared with)

use std::time::Instant;

use airgap_verify::bundle::sha256::{update_pair, Sha256};
use sha2::Digest;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--cost") {
        match airgap_verify::bundle::sha256::pair_cost() {
            Some(c) => println!(
                "a pair costs {c:.2} digests (pairing pays below {})",
                airgap_verify::bundle::sha256::PAIR_PAYS_BELOW
            ),
            None => println!("no SHA extensions: a pair is two digests"),
        }
        return;
    }
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let chunk = airgap_verify::bundle::stream::CHUNK_SIZE;
    let mut t: [Vec<f64>; 4] = Default::default();
    for _ in 0..runs {
        let s = Instant::now();
        let mut a = Sha256::new();
        for c in data.chunks(chunk) {
            a.update(c);
        }
        std::hint::black_box(a.finalize());
        t[0].push(s.elapsed().as_secs_f64());

        let s = Instant::now();
        let (mut a, mut b) = (Sha256::new(), Sha256::new());
        for c in data.chunks(chunk) {
            update_pair(&mut a, &mut b, c);
        }
        std::hint::black_box((a.finalize(), b.finalize()));
        t[1].push(s.elapsed().as_secs_f64());

        let s = Instant::now();
        let (mut a, mut b) = (Sha256::new(), Sha256::new());
        for c in data.chunks(chunk) {
            a.update(c);
            b.update(c);
        }
        std::hint::black_box((a.finalize(), b.finalize()));
        t[2].push(s.elapsed().as_secs_f64());

        let s = Instant::now();
        let mut p = sha2::Sha256::new();
        for c in data.chunks(chunk) {
            p.update(c);
        }
        std::hint::black_box(p.finalize());
        t[3].push(s.elapsed().as_secs_f64());
    }
    let [one, pair, two, portable] = t.map(median);
    let mb = data.len() as f64 / 1e6;
    println!("{mb:.0} MB, median of {runs} runs, one core");
    for (label, s) in [
        ("one digest (this build's kernel)", one),
        ("a pair over the same bytes (update_pair)", pair),
        ("two digests, one after the other", two),
        ("sha2::Sha256 (portable path)", portable),
    ] {
        println!("  {label:<44} {s:>7.3} s {:>7.0} MB/s", mb / s);
    }
    println!("  a pair costs {:.2} digests", pair / one);
}
