//! Carrying a nested archive's stored-byte digests to the thread that hashes
//! its content, so that both are computed in one interleaved pass.
//!
//! A compressed image inside a release costs three SHA-256 chains: the
//! archive's and the member's digests over its stored bytes (paired, one
//! pass) and the digests of its blobs over the decompressed bytes. Each
//! chain is bound by the latency of the SHA instructions, not by their
//! throughput, so one thread that runs them side by side
//! ([`super::sha256::update_interleaved`]) does the work of about 1.35
//! chains instead of 2 (a folder's image, without the archive's digest:
//! 1.14 instead of 2).
//!
//! So the walk does not hash a nested archive's stored bytes itself: it
//! queues them on a [`Carrier`] as it hands them to the nested job (shared,
//! not copied), and the job's thread, which hashes the content, takes them
//! from the queue alongside it ([`hash_content`]). When that thread falls
//! behind (more than [`SHARE_ABOVE`] bytes queued), the walk's thread hashes
//! the queue's front itself: the two share the work. So does a walk that
//! decodes the member itself (see `nested`) when it finds the content's
//! thread's channel full ([`Carrier::share_front`]), rather than wait.
//!
//! Guarantees:
//! - every carried byte is hashed exactly once and in order: only the
//!   holder of the digests' lock takes pieces, from the queue's front;
//! - nothing depends on the job's threads for the stored-byte digests: the
//!   walk queues every byte it feeds, and hashes what is left itself once
//!   the job is joined ([`Carrier::finish`]), however the job ended;
//! - memory stays bounded: past [`MAX_QUEUED`] bytes the walk hashes the
//!   front even if it must wait for the lock;
//! - the walk checks that every byte it fed was hashed: if not, the digests
//!   are reported unknown (`finish` gives `None`), never wrong.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use super::sha256::{update_interleaved, Sha256};
use super::stream::Piece;

/// Queued stored bytes past which the walk, which queues them, hashes the
/// queue's front itself when the content's thread is not doing so: the
/// content's thread is behind, and the walk's thread has time.
pub const SHARE_ABOVE: usize = 16 * super::stream::CHUNK_SIZE;
/// Queued stored bytes past which the walk hashes the front even if it must
/// wait for the content's thread: memory stays bounded.
pub const MAX_QUEUED: usize = 128 * super::stream::CHUNK_SIZE;

/// The digests of one nested member's stored bytes, in transit.
///
/// Two locks: the queue's, held only to push or pop a piece, and the
/// digests', held by whichever thread hashes (the content's thread, or the
/// walk's). Only the holder of the digests' lock pops, and it pops the
/// front: every byte is hashed once, in order, whoever hashes it.
pub struct Carrier {
    queue: Mutex<Queue>,
    states: Mutex<States>,
    /// The walk's thread has time to spare (see [`Carrier::new`]).
    eager: bool,
}

#[derive(Default)]
struct Queue {
    pieces: VecDeque<Piece>,
    bytes: usize,
    /// Bytes that entered the queue.
    received: u64,
}

struct States {
    member: Sha256,
    /// The archive's digest, while the member is read from its stream.
    archive: Option<Sha256>,
    /// The piece being hashed, and how far.
    front: Option<(Piece, usize)>,
    hashed: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while hashing leaves the counts unequal, which
    // `finish` reports: the data itself is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl States {
    /// The front piece's unhashed bytes, taking the next piece from the
    /// queue when the front is done; `None` when nothing is queued.
    fn front<'a>(&'a mut self, queue: &Mutex<Queue>) -> Option<&'a [u8]> {
        if self.front.as_ref().is_none_or(|(p, at)| *at == p.len()) {
            let mut q = lock(queue);
            let p = q.pieces.pop_front()?;
            q.bytes -= p.len();
            self.front = Some((p, 0));
        }
        self.front.as_ref().map(|(p, at)| &p[*at..])
    }

    fn advance(&mut self, n: usize) {
        if let Some((_, at)) = self.front.as_mut() {
            *at += n;
        }
        self.hashed += n as u64;
    }

    /// Hashes queued pieces alone while `more` says so.
    fn hash_queued(&mut self, queue: &Mutex<Queue>, more: impl Fn(&Mutex<Queue>) -> bool) {
        while more(queue) {
            let Some(bytes) = self.front(queue) else {
                return;
            };
            // A piece at a time: the front is split off so the digests can
            // be borrowed alongside it.
            let n = bytes.len();
            let (p, at) = self.front.take().expect("front present");
            match self.archive.as_mut() {
                Some(a) => super::sha256::update_pair(&mut self.member, a, &p[at..]),
                None => self.member.update(&p[at..]),
            }
            self.front = Some((p, at));
            self.advance(n);
        }
    }
}

thread_local! {
    /// The carrier whose bytes are hashed alongside the content this
    /// thread hashes: set on a nested job's thread.
    static HERE: RefCell<Option<Arc<Carrier>>> = const { RefCell::new(None) };
}

impl Carrier {
    /// `eager`: the walk's thread is the pass's only pipeline (see
    /// `readahead::walks_read_ahead`), so time it spends waiting for the
    /// content's thread is a core left idle. Then, while more than
    /// [`SHARE_ABOVE`] bytes are queued, the content's thread leaves them to
    /// the walk's and hashes its content alone, so the two do not contend
    /// for the digests. Otherwise (a folder's feeders, two pipelines on the
    /// cores) the content's thread always interleaves: moving the work to a
    /// separate pass would cost more CPU time for the same bytes.
    pub fn new(member: Sha256, archive: Option<Sha256>, eager: bool) -> Arc<Carrier> {
        Arc::new(Carrier {
            eager,
            queue: Mutex::new(Queue::default()),
            states: Mutex::new(States {
                member,
                archive,
                front: None,
                hashed: 0,
            }),
        })
    }

    /// Whether the walk's thread takes over the queue while the content's
    /// thread is behind (see [`Carrier::new`]).
    pub fn is_eager(&self) -> bool {
        self.eager
    }

    /// Makes this thread the one whose content ([`hash_content`]) is hashed
    /// alongside the carried bytes: the nested job's own thread.
    pub fn hash_content_here(self: &Arc<Self>) {
        HERE.with(|h| *h.borrow_mut() = Some(self.clone()));
    }

    /// Queues `piece`, the member's next stored bytes (the walk's thread,
    /// as it hands them to the job). When the content's thread falls
    /// behind, the front is hashed here instead: the two threads share the
    /// work, and the queue stays under [`MAX_QUEUED`].
    pub fn push(&self, piece: Piece) {
        let queued = {
            let mut q = lock(&self.queue);
            q.received += piece.len() as u64;
            q.bytes += piece.len();
            q.pieces.push_back(piece);
            q.bytes
        };
        if queued <= SHARE_ABOVE {
            return;
        }
        let states = match self.states.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) if queued > MAX_QUEUED => Some(lock(&self.states)),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut st) = states {
            st.hash_queued(&self.queue, |q| lock(q).bytes > SHARE_ABOVE / 2);
        }
    }

    /// Hashes the queue's front piece on this thread, if the content's
    /// thread is not hashing right now: for the walk's thread, when it
    /// would otherwise wait for room in the content's thread's channel
    /// (see `nested`). `false` when it hashed nothing.
    pub fn share_front(&self) -> bool {
        let mut st = match self.states.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let before = st.hashed;
        let once = std::cell::Cell::new(true);
        st.hash_queued(&self.queue, |_| once.replace(false));
        st.hashed != before
    }

    /// Hashes `data` into `content`, and as many queued stored bytes as fit
    /// alongside it, unless the walk's thread is hashing them right now.
    fn interleave(&self, content: &mut Sha256, mut data: &[u8]) {
        if self.eager && lock(&self.queue).bytes > SHARE_ABOVE {
            // Behind: the walk's thread hashes the queue (see `new`).
            content.update(data);
            return;
        }
        let mut st = match self.states.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(st) = st.as_mut() {
            let st = &mut **st;
            while !data.is_empty() {
                if st.front(&self.queue).is_none() {
                    break;
                }
                let (p, at) = st.front.as_ref().expect("front present");
                let (took, took_data) = update_interleaved(
                    (&mut st.member, st.archive.as_mut()),
                    &p[*at..],
                    content,
                    data,
                );
                if took == 0 && took_data == 0 {
                    break;
                }
                st.advance(took);
                data = &data[took_data..];
            }
        }
        content.update(data);
    }

    /// The archive's digest, back in the middle of the member, with every
    /// byte pushed so far; from then on the member's digest is carried
    /// alone. `None` if the archive's digest was not carried.
    pub fn recall_archive(&self) -> Option<Sha256> {
        let mut st = lock(&self.states);
        st.hash_queued(&self.queue, |_| true);
        st.archive.take()
    }

    /// The digests, once the job's threads are joined: `None` unless every
    /// one of the `sent` bytes was hashed.
    pub fn finish(&self, sent: u64) -> Option<(Sha256, Option<Sha256>)> {
        let mut st = lock(&self.states);
        st.hash_queued(&self.queue, |_| true);
        let received = lock(&self.queue).received;
        if st.hashed != sent || received != sent {
            return None;
        }
        let member = std::mem::take(&mut st.member);
        Some((member, st.archive.take()))
    }
}

/// Hashes content (a nested archive's decompressed bytes) into `sha`,
/// alongside the stored bytes this thread carries, if any.
pub fn hash_content(sha: &mut Sha256, data: &[u8]) {
    let carrier = HERE.with(|h| h.borrow().clone());
    match carrier {
        Some(c) => c.interleave(sha, data),
        None => sha.update(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::stream::Pool;

    use crate::bundle::sha256::tests::reference;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        crate::bundle::sha256::tests::seeded_bytes(n, seed | 1)
    }

    /// Stored bytes queued in chunks of every size while content is hashed
    /// in pieces of every size: all three digests are those of separate
    /// passes, whatever the archive's digest had hashed before.
    #[test]
    fn carried_and_content_digests_are_those_of_separate_passes() {
        let pool = Pool::default();
        let stored = bytes(300_000, 7);
        let content = bytes(250_000, 11);
        for (prefix, eager) in [(0usize, false), (512, true), (64 * 1000, false), (7, true)] {
            for piece in [1usize, 63, 64, 100, 4096, 65536] {
                for content_piece in [1usize, 65, 512, 70_000] {
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            let mut archive = Sha256::new();
                            archive.update(&stored[..prefix]);
                            let member_bytes = &stored[prefix..];
                            let c = Carrier::new(Sha256::new(), Some(archive), eager);
                            c.hash_content_here();
                            let mut sha = Sha256::new();
                            let mut content_left = &content[..];
                            for part in member_bytes.chunks(piece) {
                                c.push(pool.chunk(part.to_vec()).into());
                                let n = content_piece.min(content_left.len());
                                hash_content(&mut sha, &content_left[..n]);
                                content_left = &content_left[n..];
                            }
                            for part in content_left.chunks(content_piece) {
                                hash_content(&mut sha, part);
                            }
                            HERE.with(|h| h.borrow_mut().take());
                            let (member, archive) =
                                c.finish(member_bytes.len() as u64).expect("all hashed");
                            assert_eq!(member.finalize(), reference(member_bytes));
                            assert_eq!(archive.unwrap().finalize(), reference(&stored));
                            assert_eq!(sha.finalize(), reference(&content));
                        });
                    });
                }
            }
        }
    }

    #[test]
    fn a_byte_not_hashed_makes_the_digests_unknown() {
        let pool = Pool::default();
        let c = Carrier::new(Sha256::new(), None, false);
        c.push(pool.chunk(vec![1, 2, 3]).into());
        HERE.with(|h| h.borrow_mut().take());
        // Four bytes were sent, three arrived.
        assert!(c.finish(4).is_none());
    }

    #[test]
    fn the_archive_digest_comes_back_midway_with_every_byte_pushed() {
        let pool = Pool::default();
        let data = bytes(200_000, 3);
        let c = Carrier::new(Sha256::new(), Some(Sha256::new()), false);
        let (first, second) = data.split_at(120_000);
        for part in first.chunks(7000) {
            c.push(pool.chunk(part.to_vec()).into());
        }
        let archive = c.recall_archive().expect("carried");
        assert_eq!(archive.finalize(), reference(first));
        c.push(pool.chunk(second.to_vec()).into());
        let (member, archive) = c.finish(data.len() as u64).unwrap();
        assert!(archive.is_none());
        assert_eq!(member.finalize(), reference(&data));
    }

    /// The walk's thread pushes far ahead (it hashes the front itself past
    /// `SHARE_ABOVE`) while the content's thread interleaves: every digest
    /// is still that of a separate pass.
    #[test]
    fn two_threads_sharing_the_work_hash_every_byte_once_in_order() {
        let pool = Pool::default();
        let stored = bytes(12 << 20, 5);
        let content = bytes(9 << 20, 9);
        for piece in [4096usize, 65536, 100_003] {
            let c = Carrier::new(Sha256::new(), Some(Sha256::new()), false);
            let content_sha = std::thread::scope(|s| {
                let reader = s.spawn(|| {
                    c.hash_content_here();
                    let mut sha = Sha256::new();
                    for part in content.chunks(65536) {
                        hash_content(&mut sha, part);
                    }
                    HERE.with(|h| h.borrow_mut().take());
                    sha
                });
                for part in stored.chunks(piece) {
                    c.push(pool.chunk(part.to_vec()).into());
                }
                reader.join().unwrap()
            });
            let (member, archive) = c.finish(stored.len() as u64).expect("all hashed");
            assert_eq!(member.finalize(), reference(&stored), "piece {piece}");
            assert_eq!(archive.unwrap().finalize(), reference(&stored));
            assert_eq!(content_sha.finalize(), reference(&content));
        }
    }
}
