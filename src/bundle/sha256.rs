//! SHA-256 for the pass, with one addition: two digests over the same bytes
//! for about the price of one ([`update_pair`]).
//!
//! A plain `.tar` release has every member's bytes hashed twice: once in the
//! archive's digest (checked against its `.sha256`) and once in the
//! member's own (checked against the manifest). On a CPU with the SHA
//! extensions a single digest is bound by the latency of its chain of
//! `sha256rnds2` instructions, not by their throughput: two independent
//! chains over one message schedule run in nearly the time of one
//! (measured here, AMD EPYC: 0.40 s for two digests of 572 MB against
//! 0.37 s for one). Where the tar thread carries both digests, that saves a
//! whole SHA-256 pass over the release.
//!
//! Guarantees:
//! - every digest equals `sha2::Sha256`'s over the same bytes, whichever
//!   path computed it (unit tests compare them at every split and phase);
//! - without the SHA extensions (or off x86-64), [`Sha256`] is
//!   `sha2::Sha256` and [`update_pair`] two plain updates.

use std::cell::RefCell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use sha2::Digest;

/// A SHA-256 in progress: the SHA-extension kernel when the CPU has it,
/// `sha2` otherwise.
#[derive(Clone)]
pub enum Sha256 {
    #[cfg(target_arch = "x86_64")]
    Ni(ni::State),
    Portable(sha2::Sha256),
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        if ni::available() {
            return Sha256::Ni(ni::State::new());
        }
        Sha256::Portable(sha2::Sha256::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Sha256::Ni(s) => s.update(data),
            Sha256::Portable(h) => h.update(data),
        }
    }

    pub fn finalize(self) -> [u8; 32] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Sha256::Ni(s) => s.finalize(),
            Sha256::Portable(h) => h.finalize().into(),
        }
    }
}

/// `a.update(data); b.update(data)`, in one pass over `data` when both
/// digests are at the same offset within a 64-byte block (a tar member's
/// data starts on a 512-byte boundary of the archive, so its digest and the
/// archive's are).
pub fn update_pair(a: &mut Sha256, b: &mut Sha256, data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let (Sha256::Ni(x), Sha256::Ni(y)) = (&mut *a, &mut *b) {
        if x.buffered == y.buffered {
            ni::update_pair(x, y, data);
            return;
        }
    }
    a.update(data);
    b.update(data);
}

/// A pair costs less than this many single digests where pairing pays.
/// AMD EPYC (Zen): 1.08; an Intel Xeon with the SHA extensions, 1.46
/// (`examples/sha256-pair.rs` measures it); without them, 2.
pub const PAIR_PAYS_BELOW: f64 = 1.25;

/// Whether [`update_pair`] costs clearly less than two digests on this CPU
/// ([`pair_cost`] below [`PAIR_PAYS_BELOW`]): where it does not, a plain
/// tar's digest is better taken on a thread of its own than paired on the
/// tar thread (see `bundle::archive_digest_on_tar_thread`). Measured once
/// per process; `AIRGAP_VERIFY_PAIR_DIGESTS=1` (or `0`) sets it instead.
pub fn pairing_pays() -> bool {
    static PAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PAYS.get_or_init(
        || match std::env::var("AIRGAP_VERIFY_PAIR_DIGESTS").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => pair_cost().is_some_and(|c| c < PAIR_PAYS_BELOW),
        },
    )
}

/// What [`update_pair`] costs on this CPU, in single digests over the same
/// bytes: the fastest of five timings of each over 64 KiB (about a
/// millisecond in all; the fastest, because a timing can only be slowed
/// by a preemption, never sped up). `None` without the SHA extensions:
/// a pair is then two digests.
pub fn pair_cost() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if ni::available() {
        let data = vec![0x5a; 64 << 10];
        let fastest = |pair: bool| {
            (0..5)
                .map(|_| {
                    let (mut a, mut b) = (Sha256::new(), Sha256::new());
                    let t = std::time::Instant::now();
                    if pair {
                        update_pair(&mut a, &mut b, &data);
                    } else {
                        a.update(&data);
                    }
                    let spent = t.elapsed();
                    std::hint::black_box((a.finalize(), b.finalize()));
                    spent
                })
                .min()
                .unwrap_or_default()
                .as_secs_f64()
        };
        let one = fastest(false);
        if one > 0.0 {
            return Some(fastest(true) / one);
        }
    }
    None
}

/// Hashes `carried` (one digest, or two at the same block offset, over
/// `d1`) and `other` (over `d2`, a different message) in one interleaved
/// pass over as many whole blocks of each as both have, after bringing each
/// to a block boundary. Returns the bytes of `d1` and of `d2` it took; the
/// caller hashes the rest as it likes. Without the SHA extensions it takes
/// nothing.
///
/// This is for the thread that hashes a nested archive's decompressed
/// content while it also carries the digests of the archive's stored bytes
/// (see `carry`): measured here (AMD EPYC, 64 MiB), one digest alone
/// 37 ms, a pair over the same bytes 37 ms, a pair plus a digest of other
/// bytes 50 ms, one plus one 42 ms, against 74 ms for two separate passes.
pub fn update_interleaved(
    carried: (&mut Sha256, Option<&mut Sha256>),
    d1: &[u8],
    other: &mut Sha256,
    d2: &[u8],
) -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let (a, b) = carried;
        let Sha256::Ni(a) = a else { return (0, 0) };
        let mut b = match b {
            None => None,
            Some(Sha256::Ni(b)) if b.buffered == a.buffered => Some(b),
            Some(_) => return (0, 0),
        };
        let Sha256::Ni(c) = other else { return (0, 0) };
        let head1 = (64 - a.buffered) % 64;
        let head2 = (64 - c.buffered) % 64;
        if d1.len() < head1 + 64 || d2.len() < head2 + 64 {
            return (0, 0);
        }
        match b.as_deref_mut() {
            Some(b) => ni::update_pair(a, b, &d1[..head1]),
            None => a.update(&d1[..head1]),
        }
        c.update(&d2[..head2]);
        let n = ((d1.len() - head1) / 64).min((d2.len() - head2) / 64) * 64;
        let (x, y) = (&d1[head1..head1 + n], &d2[head2..head2 + n]);
        // SAFETY: `Ni` states exist only when `available()` was true; all
        // three are at a block boundary (checked above, brought there).
        unsafe {
            match b {
                Some(b) => {
                    ni::compress_mixed::<2>([&mut a.h, &mut b.h], x, &mut c.h, y);
                    b.len += n as u64;
                }
                None => ni::compress_mixed::<1>([&mut a.h], x, &mut c.h, y),
            }
        }
        a.len += n as u64;
        c.len += n as u64;
        (head1 + n, head2 + n)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (carried, d1, other, d2);
        (0, 0)
    }
}

/// The archive's own digest, taken on the tar thread from the bytes it
/// walks, so that a member's data goes into both digests in one pass
/// ([`ArchiveDigest::pair`]) instead of being hashed again on another
/// thread.
#[derive(Clone, Default)]
pub struct ArchiveDigest(Rc<RefCell<Taken>>);

#[derive(Default)]
struct Taken {
    sha: Sha256,
    /// Bytes taken from the reader so far.
    pos: u64,
    /// Bytes in `sha`: ahead of `pos` when a member's chunk was paired
    /// before the walk consumed it.
    hashed_to: u64,
    /// Where the reader's buffer started at its last `fill_buf`: a chunk
    /// is paired only if it is that buffer (not a copy, not a sparse
    /// file's expansion).
    next: usize,
    /// `sha` is with another thread ([`ArchiveDigest::lend`]).
    lent: bool,
    /// Bytes are missing from `sha`: the digest is unknown.
    lost: bool,
}

impl ArchiveDigest {
    /// A reader that adds every byte taken from `inner` to this digest.
    pub fn reader<R: BufRead>(&self, inner: R) -> DigestingReader<R> {
        DigestingReader {
            inner,
            taken: self.0.clone(),
        }
    }

    /// Adds `chunk` to `member`, and to the archive's digest in the same
    /// pass when `chunk` is the start of what the reader's `fill_buf` just
    /// returned (the walk consumes it next, and the reader then skips it).
    /// Anything else goes to `member` only: the reader hashes it when it
    /// is taken.
    pub fn pair(&self, member: &mut Sha256, chunk: &[u8]) {
        let mut t = self.0.borrow_mut();
        if !t.lent && t.hashed_to == t.pos && t.next == chunk.as_ptr() as usize {
            update_pair(&mut t.sha, member, chunk);
            t.hashed_to += chunk.len() as u64;
        } else {
            member.update(chunk);
        }
    }

    /// Hands the digest over to the thread that will hash the next
    /// member's data (see `carry`), when nothing was hashed ahead of the
    /// reader. Until [`ArchiveDigest::give_back`], every byte taken must
    /// have been [`ArchiveDigest::promise`]d.
    pub fn lend(&self) -> Option<Sha256> {
        let mut t = self.0.borrow_mut();
        if t.lent || t.hashed_to != t.pos {
            return None;
        }
        t.lent = true;
        Some(std::mem::take(&mut t.sha))
    }

    /// While lent: `chunk` is what the reader's `fill_buf` just returned
    /// and the borrower hashes it, so the reader skips it when it is taken.
    /// `false` (nothing recorded) when it is not that buffer: the digest
    /// must then be given back before the chunk is consumed.
    pub fn promise(&self, chunk: &[u8]) -> bool {
        let mut t = self.0.borrow_mut();
        if t.lent && t.hashed_to == t.pos && t.next == chunk.as_ptr() as usize {
            t.hashed_to += chunk.len() as u64;
            true
        } else {
            false
        }
    }

    /// The lent digest, back, with every promised byte in it; `None` when
    /// the borrower could not complete it: the archive's digest is then
    /// unknown ([`ArchiveDigest::finalize`] says so), never wrong.
    pub fn give_back(&self, sha: Option<Sha256>) {
        let mut t = self.0.borrow_mut();
        t.lent = false;
        match sha {
            Some(sha) => t.sha = sha,
            None => t.lost = true,
        }
    }

    /// The digest of every byte the reader handed out; `None` if a lent
    /// digest was lost or a byte was taken while it was away unpromised.
    pub fn finalize(self) -> Option<[u8; 32]> {
        let t = std::mem::take(&mut *self.0.borrow_mut());
        (!t.lost && !t.lent).then(|| t.sha.finalize())
    }
}

/// See [`ArchiveDigest::reader`].
pub struct DigestingReader<R> {
    inner: R,
    taken: Rc<RefCell<Taken>>,
}

impl Taken {
    /// `bytes` were taken from the stream at `pos`: hash what was not yet.
    fn take(&mut self, bytes: &[u8]) {
        let ahead = self
            .hashed_to
            .saturating_sub(self.pos)
            .min(bytes.len() as u64) as usize;
        if self.lent {
            // Not promised while the digest is away: it can no longer be
            // completed (the walk gives it back before this can happen).
            self.lost |= ahead < bytes.len();
        } else {
            self.sha.update(&bytes[ahead..]);
        }
        self.pos += bytes.len() as u64;
        self.hashed_to = self.hashed_to.max(self.pos);
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken.borrow_mut().take(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for DigestingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let b = self.inner.fill_buf()?;
        self.taken.borrow_mut().next = b.as_ptr() as usize;
        Ok(b)
    }

    fn consume(&mut self, amt: usize) {
        if amt > 0 {
            // The bytes are still in the buffer `fill_buf` returned (at
            // least `amt` of them), so this returns at once.
            if let Ok(b) = self.inner.fill_buf() {
                let n = amt.min(b.len());
                self.taken.borrow_mut().take(&b[..n]);
            }
        }
        self.inner.consume(amt);
    }
}

#[cfg(target_arch = "x86_64")]
mod ni {
    use core::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("sse2")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1")
        })
    }

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// The chaining value, a partial block and the length so far.
    #[derive(Clone)]
    pub struct State {
        pub(super) h: [u32; 8],
        block: [u8; 64],
        pub buffered: usize,
        pub(super) len: u64,
    }

    impl State {
        pub fn new() -> Self {
            State {
                h: H0,
                block: [0; 64],
                buffered: 0,
                len: 0,
            }
        }

        pub fn update(&mut self, mut data: &[u8]) {
            self.len += data.len() as u64;
            if self.buffered > 0 {
                let n = (64 - self.buffered).min(data.len());
                self.block[self.buffered..self.buffered + n].copy_from_slice(&data[..n]);
                self.buffered += n;
                data = &data[n..];
                if self.buffered < 64 {
                    return;
                }
                let block = self.block;
                // SAFETY: `available()` was true when this state was made.
                unsafe { compress::<1>([&mut self.h], &block) };
                self.buffered = 0;
            }
            let whole = data.len() / 64 * 64;
            if whole > 0 {
                // SAFETY: as above.
                unsafe { compress::<1>([&mut self.h], &data[..whole]) };
            }
            let rest = &data[whole..];
            self.block[..rest.len()].copy_from_slice(rest);
            self.buffered = rest.len();
        }

        pub fn finalize(mut self) -> [u8; 32] {
            let bits = self.len.wrapping_mul(8);
            let mut tail = [0u8; 128];
            tail[..self.buffered].copy_from_slice(&self.block[..self.buffered]);
            tail[self.buffered] = 0x80;
            let end = if self.buffered < 56 { 64 } else { 128 };
            tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
            // SAFETY: as in `update`.
            unsafe { compress::<1>([&mut self.h], &tail[..end]) };
            let mut out = [0u8; 32];
            for (o, w) in out.chunks_exact_mut(4).zip(self.h) {
                o.copy_from_slice(&w.to_be_bytes());
            }
            out
        }
    }

    /// Both states at the same block offset (the caller checks).
    pub fn update_pair(a: &mut State, b: &mut State, mut data: &[u8]) {
        debug_assert_eq!(a.buffered, b.buffered);
        if a.buffered > 0 {
            let n = (64 - a.buffered).min(data.len());
            a.update(&data[..n]);
            b.update(&data[..n]);
            data = &data[n..];
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            // Either both just emptied their block or neither had one.
            debug_assert!(a.buffered == 0 && b.buffered == 0);
            // SAFETY: both states exist only when `available()` was true.
            unsafe { compress::<2>([&mut a.h, &mut b.h], &data[..whole]) };
            a.len += whole as u64;
            b.len += whole as u64;
        }
        let rest = &data[whole..];
        a.update(rest);
        b.update(rest);
    }

    /// `a` (any number of chaining values, over `da`) and `b` (one, over
    /// `db`, a different message of as many whole blocks): two message
    /// schedules, and the round chains of both overlap in the pipeline.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress_mixed<const N: usize>(
        states: [&mut [u32; 8]; N],
        da: &[u8],
        other: &mut [u32; 8],
        db: &[u8],
    ) {
        debug_assert_eq!(da.len(), db.len());
        debug_assert_eq!(da.len() % 64, 0);
        let mask = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        #[inline(always)]
        unsafe fn load(h: &[u32; 8]) -> (__m128i, __m128i) {
            let p = h.as_ptr() as *const __m128i;
            let dcba = _mm_loadu_si128(p);
            let efgh = _mm_loadu_si128(p.add(1));
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(efgh, 0x1B);
            (
                _mm_alignr_epi8(cdab, efgh, 8),
                _mm_blend_epi16(efgh, cdab, 0xF0),
            )
        }
        #[inline(always)]
        unsafe fn store(h: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
            let feba = _mm_shuffle_epi32(abef, 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
            let p = h.as_mut_ptr() as *mut __m128i;
            _mm_storeu_si128(p, _mm_blend_epi16(feba, dchg, 0xF0));
            _mm_storeu_si128(p.add(1), _mm_alignr_epi8(dchg, feba, 8));
        }
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for i in 0..N {
            (abef[i], cdgh[i]) = load(states[i]);
        }
        let (mut abef_b, mut cdgh_b) = load(other);
        let kp = K.as_ptr() as *const __m128i;
        let k: [__m128i; 16] = core::array::from_fn(|i| _mm_loadu_si128(kp.add(i)));
        macro_rules! rounds4 {
            ($wa:expr, $wb:expr, $k:expr) => {{
                let t1 = _mm_add_epi32($wa, $k);
                let t2 = _mm_shuffle_epi32(t1, 0x0E);
                let u1 = _mm_add_epi32($wb, $k);
                let u2 = _mm_shuffle_epi32(u1, 0x0E);
                for i in 0..N {
                    cdgh[i] = _mm_sha256rnds2_epu32(cdgh[i], abef[i], t1);
                }
                cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, u1);
                for i in 0..N {
                    abef[i] = _mm_sha256rnds2_epu32(abef[i], cdgh[i], t2);
                }
                abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, u2);
            }};
        }
        for (ba, bb) in da.chunks_exact(64).zip(db.chunks_exact(64)) {
            let (abef_save, cdgh_save) = (abef, cdgh);
            let (abef_b_save, cdgh_b_save) = (abef_b, cdgh_b);
            let p = ba.as_ptr() as *const __m128i;
            let q = bb.as_ptr() as *const __m128i;
            let mut w0 = _mm_shuffle_epi8(_mm_loadu_si128(p), mask);
            let mut w1 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), mask);
            let mut w2 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), mask);
            let mut w3 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), mask);
            let mut v0 = _mm_shuffle_epi8(_mm_loadu_si128(q), mask);
            let mut v1 = _mm_shuffle_epi8(_mm_loadu_si128(q.add(1)), mask);
            let mut v2 = _mm_shuffle_epi8(_mm_loadu_si128(q.add(2)), mask);
            let mut v3 = _mm_shuffle_epi8(_mm_loadu_si128(q.add(3)), mask);
            rounds4!(w0, v0, k[0]);
            rounds4!(w1, v1, k[1]);
            rounds4!(w2, v2, k[2]);
            rounds4!(w3, v3, k[3]);
            for g in 1..4 {
                w0 = schedule(w0, w1, w2, w3);
                v0 = schedule(v0, v1, v2, v3);
                rounds4!(w0, v0, k[4 * g]);
                w1 = schedule(w1, w2, w3, w0);
                v1 = schedule(v1, v2, v3, v0);
                rounds4!(w1, v1, k[4 * g + 1]);
                w2 = schedule(w2, w3, w0, w1);
                v2 = schedule(v2, v3, v0, v1);
                rounds4!(w2, v2, k[4 * g + 2]);
                w3 = schedule(w3, w0, w1, w2);
                v3 = schedule(v3, v0, v1, v2);
                rounds4!(w3, v3, k[4 * g + 3]);
            }
            for i in 0..N {
                abef[i] = _mm_add_epi32(abef[i], abef_save[i]);
                cdgh[i] = _mm_add_epi32(cdgh[i], cdgh_save[i]);
            }
            abef_b = _mm_add_epi32(abef_b, abef_b_save);
            cdgh_b = _mm_add_epi32(cdgh_b, cdgh_b_save);
        }
        for i in 0..N {
            store(states[i], abef[i], cdgh[i]);
        }
        store(other, abef_b, cdgh_b);
    }

    #[inline(always)]
    unsafe fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
        let t1 = _mm_sha256msg1_epu32(v0, v1);
        let t2 = _mm_alignr_epi8(v3, v2, 4);
        let t3 = _mm_add_epi32(t1, t2);
        _mm_sha256msg2_epu32(t3, v3)
    }

    /// `N` chaining values over the same whole blocks: the message schedule
    /// is computed once and the `N` round chains, independent, overlap in
    /// the pipeline. The layout shuffles are those of Intel's reference.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress<const N: usize>(states: [&mut [u32; 8]; N], blocks: &[u8]) {
        let mask = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for i in 0..N {
            let p = states[i].as_ptr() as *const __m128i;
            let dcba = _mm_loadu_si128(p);
            let efgh = _mm_loadu_si128(p.add(1));
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(efgh, 0x1B);
            abef[i] = _mm_alignr_epi8(cdab, efgh, 8);
            cdgh[i] = _mm_blend_epi16(efgh, cdab, 0xF0);
        }
        let kp = K.as_ptr() as *const __m128i;
        let k: [__m128i; 16] = core::array::from_fn(|i| _mm_loadu_si128(kp.add(i)));
        // Four rounds of every chain with the schedule words `w` (written
        // out: a loop over `w[r % 4]` is a quarter slower).
        macro_rules! rounds4 {
            ($w:expr, $k:expr) => {{
                let t1 = _mm_add_epi32($w, $k);
                let t2 = _mm_shuffle_epi32(t1, 0x0E);
                for i in 0..N {
                    cdgh[i] = _mm_sha256rnds2_epu32(cdgh[i], abef[i], t1);
                }
                for i in 0..N {
                    abef[i] = _mm_sha256rnds2_epu32(abef[i], cdgh[i], t2);
                }
            }};
        }
        for block in blocks.chunks_exact(64) {
            let (abef_save, cdgh_save) = (abef, cdgh);
            let p = block.as_ptr() as *const __m128i;
            let mut w0 = _mm_shuffle_epi8(_mm_loadu_si128(p), mask);
            let mut w1 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), mask);
            let mut w2 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), mask);
            let mut w3 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), mask);
            rounds4!(w0, k[0]);
            rounds4!(w1, k[1]);
            rounds4!(w2, k[2]);
            rounds4!(w3, k[3]);
            for g in 1..4 {
                w0 = schedule(w0, w1, w2, w3);
                rounds4!(w0, k[4 * g]);
                w1 = schedule(w1, w2, w3, w0);
                rounds4!(w1, k[4 * g + 1]);
                w2 = schedule(w2, w3, w0, w1);
                rounds4!(w2, k[4 * g + 2]);
                w3 = schedule(w3, w0, w1, w2);
                rounds4!(w3, k[4 * g + 3]);
            }
            for i in 0..N {
                abef[i] = _mm_add_epi32(abef[i], abef_save[i]);
                cdgh[i] = _mm_add_epi32(cdgh[i], cdgh_save[i]);
            }
        }
        for i in 0..N {
            let feba = _mm_shuffle_epi32(abef[i], 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh[i], 0xB1);
            let p = states[i].as_mut_ptr() as *mut __m128i;
            _mm_storeu_si128(p, _mm_blend_epi16(feba, dchg, 0xF0));
            _mm_storeu_si128(p.add(1), _mm_alignr_epi8(dchg, feba, 8));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn reference(data: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(data).into()
    }

    fn bytes(n: usize) -> Vec<u8> {
        seeded_bytes(n, 0x2545_f491_4f6c_dd1d)
    }

    /// `n` xorshift bytes from `seed` (not zero): test data with no pattern
    /// a kernel could get right by accident.
    pub(crate) fn seeded_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn one_digest_matches_sha2_at_every_length_and_split() {
        let data = bytes(300);
        for len in 0..data.len() {
            for split in [0, 1, 55, 56, 63, 64, 65, 128, len / 2, len] {
                let split = split.min(len);
                let mut h = Sha256::new();
                h.update(&data[..split]);
                h.update(&data[split..len]);
                assert_eq!(
                    h.finalize(),
                    reference(&data[..len]),
                    "len {len} split {split}"
                );
            }
        }
    }

    #[test]
    fn a_pair_matches_two_digests_whatever_their_phases() {
        let data = bytes(2100);
        // `a` has hashed a prefix (the archive before the member), `b`
        // starts fresh (the member); same phase when the prefix is a
        // multiple of 64, different otherwise (the pair falls back).
        for prefix in [0, 64, 512, 1, 63, 100] {
            for len in [0, 1, 63, 64, 65, 200, 1000, 1500] {
                for piece in [1, 7, 64, 100, 4096] {
                    let member = &data[prefix..prefix + len];
                    let mut a = Sha256::new();
                    a.update(&data[..prefix]);
                    let mut b = Sha256::new();
                    for c in member.chunks(piece) {
                        update_pair(&mut a, &mut b, c);
                    }
                    a.update(b"after");
                    let mut whole = data[..prefix + len].to_vec();
                    whole.extend_from_slice(b"after");
                    assert_eq!(a.finalize(), reference(&whole), "prefix {prefix} len {len}");
                    assert_eq!(b.finalize(), reference(member), "prefix {prefix} len {len}");
                }
            }
        }
    }

    /// A reader over `data` in `piece`-byte buffers, like a ChunkReader.
    struct Pieces<'a> {
        data: &'a [u8],
        piece: usize,
        at: usize,
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let b = self.fill_buf()?;
            let n = b.len().min(buf.len());
            buf[..n].copy_from_slice(&b[..n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Pieces<'_> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            let end = (self.at / self.piece + 1) * self.piece;
            Ok(&self.data[self.at..end.min(self.data.len())])
        }
        fn consume(&mut self, amt: usize) {
            self.at += amt;
        }
    }

    #[test]
    fn the_archive_digest_counts_every_byte_once_however_it_is_taken() {
        let data = bytes(5000);
        for piece in [1, 64, 100, 512, 4096] {
            let d = ArchiveDigest::default();
            let mut r = d.reader(Pieces {
                data: &data,
                piece,
                at: 0,
            });
            // A header read into a buffer of its own.
            let mut header = [0u8; 512];
            r.read_exact(&mut header).unwrap();
            // A member's data paired from the reader's buffer.
            let mut member = Sha256::new();
            let mut left = 3000;
            while left > 0 {
                let b = r.fill_buf().unwrap();
                let n = b.len().min(left);
                d.pair(&mut member, &b[..n]);
                r.consume(n);
                left -= n;
            }
            assert_eq!(
                member.finalize(),
                reference(&data[512..3512]),
                "piece {piece}"
            );
            // A chunk that is not the reader's buffer (a copy) is not
            // paired: the reader hashes it when it is taken.
            let copy = r.fill_buf().unwrap()[..1].to_vec();
            let mut other = Sha256::new();
            d.pair(&mut other, &copy);
            r.consume(1);
            assert_eq!(other.finalize(), reference(&data[3512..3513]));
            // The rest, read and consumed.
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            drop(r);
            assert_eq!(d.finalize(), Some(reference(&data)), "piece {piece}");
        }
    }

    #[test]
    fn the_portable_path_is_the_same_digest() {
        let data = bytes(1000);
        let mut a = Sha256::Portable(sha2::Sha256::new());
        let mut b = Sha256::new();
        update_pair(&mut a, &mut b, &data);
        assert_eq!(a.finalize(), reference(&data));
        assert_eq!(b.finalize(), reference(&data));
    }
}
