//! Carrying a nested archive's stored-byte digests to the thread that hashes
//! its content, so that both are computed in one interleaved pass.
//!
//! A compressed image inside a release costs three SHA-256 chains: the
//! archive's and the member's digests over its stored bytes (one pass, paired,
//! on the tar thread) and the digests of its blobs over the decompressed
//! bytes (on the nested validator's thread). Each chain is bound by the
//! latency of the SHA instructions, not their throughput, so one thread that
//! runs all three side by side ([`super::sha256::update_interleaved`]) does
//! the work of about 1.35 chains instead of 2. The walk therefore hands the
//! stored-byte digests to the nested job ([`Carrier`]); the bytes travel with
//! the job's data through its decompressor ([`super::stream::Msg::Carried`])
//! and are hashed alongside the content on the validator's thread
//! ([`hash_content`]).
//!
//! Guarantees:
//! - every carried byte is hashed exactly once and in order: bytes enter the
//!   carrier's queue in the order the job received them, and only the queue's
//!   front is ever hashed, under the carrier's lock;
//! - nothing is lost when a stage stops early: a reader that forwards carried
//!   bytes and can no longer send them queues them itself, and the reader at
//!   the end of the chain drains its channel when dropped
//!   ([`super::stream::ChunkReader`]);
//! - memory stays bounded: past [`MAX_QUEUED`] bytes the queue's front is
//!   hashed at once, by the thread that queues;
//! - the walk takes the digests back only after the job's threads are
//!   joined, and checks that every byte it sent was hashed: if not, the
//!   digests are reported unknown ([`Carrier::finish`] gives `None`), never
//!   wrong.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::sha256::{update_interleaved, Sha256};
use super::stream::Chunk;

/// Carried bytes waiting for content to be hashed alongside, at most: about
/// two chunks are queued when content and stored bytes flow at the same
/// rate; more (content that is not hashed, a kind of archive that has none)
/// is hashed at once.
pub const MAX_QUEUED: usize = 8 * super::stream::CHUNK_SIZE;

/// The digests of one nested member's stored bytes, in transit.
pub struct Carrier {
    inner: Mutex<Inner>,
    /// Signalled whenever bytes are queued (see [`Carrier::recall_archive`]).
    queued: Condvar,
}

struct Inner {
    member: Sha256,
    /// The archive's digest, while the member is read from its stream.
    archive: Option<Sha256>,
    queue: VecDeque<(Chunk, usize)>,
    queued_bytes: usize,
    /// Bytes that entered the queue, and bytes hashed.
    received: u64,
    hashed: u64,
}

impl Inner {
    /// Hashes the queue's front until at most `keep` bytes are left queued.
    fn hash_front(&mut self, keep: usize) {
        while self.queued_bytes > keep {
            let Some((chunk, at)) = self.queue.pop_front() else {
                break;
            };
            let rest = &chunk[at..];
            match self.archive.as_mut() {
                Some(a) => super::sha256::update_pair(&mut self.member, a, rest),
                None => self.member.update(rest),
            }
            self.queued_bytes -= rest.len();
            self.hashed += rest.len() as u64;
        }
    }
}

thread_local! {
    /// The carrier whose bytes this thread queued last: content hashed on
    /// this thread is hashed alongside them.
    static HERE: RefCell<Option<Arc<Carrier>>> = const { RefCell::new(None) };
}

impl Carrier {
    pub fn new(member: Sha256, archive: Option<Sha256>) -> Arc<Carrier> {
        Arc::new(Carrier {
            inner: Mutex::new(Inner {
                member,
                archive,
                queue: VecDeque::new(),
                queued_bytes: 0,
                received: 0,
                hashed: 0,
            }),
            queued: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A thread that panicked while hashing leaves the counts unequal,
        // which `finish` reports: the state itself is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `chunk` (the member's next stored bytes) on this thread, to be
    /// hashed alongside the content this thread hashes next.
    pub fn queue(self: &Arc<Self>, chunk: Chunk) {
        {
            let mut g = self.lock();
            g.received += chunk.len() as u64;
            g.queued_bytes += chunk.len();
            g.queue.push_back((chunk, 0));
            g.hash_front(MAX_QUEUED);
        }
        self.queued.notify_all();
        HERE.with(|h| {
            let mut h = h.borrow_mut();
            if !h.as_ref().is_some_and(|c| Arc::ptr_eq(c, self)) {
                *h = Some(self.clone());
            }
        });
    }

    /// Hashes `data` into `content`, and as many queued stored bytes as fit
    /// alongside it.
    fn interleave(&self, content: &mut Sha256, mut data: &[u8]) {
        let mut g = self.lock();
        let g = &mut *g;
        while !data.is_empty() {
            let Some((chunk, at)) = g.queue.front_mut() else {
                break;
            };
            let (took, took_data) = update_interleaved(
                (&mut g.member, g.archive.as_mut()),
                &chunk[*at..],
                content,
                data,
            );
            if took == 0 && took_data == 0 {
                break;
            }
            *at += took;
            g.queued_bytes -= took;
            g.hashed += took as u64;
            data = &data[took_data..];
            if *at == chunk.len() {
                g.queue.pop_front();
            }
        }
        content.update(data);
    }

    /// Hashes everything queued.
    pub fn flush(&self) {
        self.lock().hash_front(0);
    }

    /// The archive's digest, back in the middle of the member: waits until
    /// the `sent` bytes the walk sent so far were queued, hashes them, and
    /// from then on carries the member's digest alone. `None` if the
    /// archive's digest was not carried.
    pub fn recall_archive(&self, sent: u64) -> Option<Sha256> {
        let mut g = self.lock();
        while g.received < sent {
            // The job's threads queue every byte they receive, and receive
            // every byte the walk sent (each drains its input), so this
            // returns; the timeout only bounds a lost wake-up.
            g = self
                .queued
                .wait_timeout(g, std::time::Duration::from_millis(10))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        g.hash_front(0);
        g.archive.take()
    }

    /// The digests, once the job's threads are joined: `None` unless every
    /// one of the `sent` bytes was hashed.
    pub fn finish(self: Arc<Self>, sent: u64) -> Option<(Sha256, Option<Sha256>)> {
        let mut g = self.lock();
        g.hash_front(0);
        if g.hashed != sent || g.received != sent {
            return None;
        }
        let member = std::mem::take(&mut g.member);
        Some((member, g.archive.take()))
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

    fn reference(data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Stored bytes queued in chunks of every size while content is hashed
    /// in pieces of every size: all three digests are those of separate
    /// passes, whatever the archive's digest had hashed before.
    #[test]
    fn carried_and_content_digests_are_those_of_separate_passes() {
        let pool = Pool::default();
        let stored = bytes(300_000, 7);
        let content = bytes(250_000, 11);
        for prefix in [0usize, 512, 64 * 1000] {
            for piece in [1usize, 63, 64, 100, 4096, 65536] {
                for content_piece in [1usize, 65, 512, 70_000] {
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            let mut archive = Sha256::new();
                            archive.update(&stored[..prefix]);
                            let member_bytes = &stored[prefix..];
                            let c = Carrier::new(Sha256::new(), Some(archive));
                            let mut sha = Sha256::new();
                            let mut content_left = &content[..];
                            for part in member_bytes.chunks(piece) {
                                c.queue(pool.chunk(part.to_vec()));
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
        let c = Carrier::new(Sha256::new(), None);
        c.queue(pool.chunk(vec![1, 2, 3]));
        HERE.with(|h| h.borrow_mut().take());
        // Four bytes were sent, three arrived.
        assert!(c.finish(4).is_none());
    }

    #[test]
    fn the_archive_digest_comes_back_midway_with_every_byte_sent() {
        let pool = Pool::default();
        let data = bytes(200_000, 3);
        let c = Carrier::new(Sha256::new(), Some(Sha256::new()));
        let (first, second) = data.split_at(120_000);
        let queuer = {
            let c = c.clone();
            let first = first.to_vec();
            let pool = pool.clone();
            std::thread::spawn(move || {
                for part in first.chunks(7000) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    c.queue(pool.chunk(part.to_vec()));
                }
            })
        };
        let archive = c.recall_archive(first.len() as u64).expect("carried");
        queuer.join().unwrap();
        assert_eq!(archive.finalize(), reference(first));
        c.queue(pool.chunk(second.to_vec()));
        HERE.with(|h| h.borrow_mut().take());
        let (member, archive) = c.finish(data.len() as u64).unwrap();
        assert!(archive.is_none());
        assert_eq!(member.finalize(), reference(&data));
    }
}
