//! Reading a plain tar ahead of its walk, on the caller's thread, except
//! while the walk decodes a nested archive itself.
//!
//! The walk of a plain `.tar` (its digest taken on the walk's thread, see
//! `sha256`) has two shapes of work. Between nested archives it hashes, and
//! a thread that reads ahead of it overlaps the kernel's copy out of the
//! page cache with the hashing: two threads, two cores. While it feeds a
//! gzip-compressed image, it also decodes it (see `nested`), and the
//! image's validator hashes on another thread: a third busy thread would
//! leave two cores to three, each waiting in turn for the others to be
//! scheduled. So the walk's thread then reads for itself, and the reader
//! waits. Measured against the reader thread it replaces, with this
//! module's companions (`nested` decoding on the walk's thread, an eager
//! `carry`), 9 interleaved runs, medians, on a busy VM (`openssl dgst`
//! 0.86 to 0.90 s):
//!
//! | 1 GiB input | before | after |
//! |---|---|---|
//! | sample `.tar`, full content | 1.33 s | 1.19 s |
//! | sample `.tar`, `--no-content` | 0.72 s | 0.67 s |
//! | text-heavy `.tar`, default | 0.88 s | 0.85 s |
//! | text-heavy `.tar`, `--no-content` | 0.72 s | 0.66 s |
//!
//! (In all four, the reader is now woken once per half queue, not once per
//! chunk.)
//!
//! Guarantees:
//! - the walk receives the file's bytes once and in order, whoever read
//!   them: only the holder of the file reads, and it queues what it read
//!   (or hands it straight to the walk, when the queue is empty) before it
//!   gives the file back;
//! - memory is bounded: at most `CHANNEL_DEPTH` chunks wait;
//! - a read error is reported once, naming the byte offset, and the walk
//!   sees its input aborted, exactly as from the reader of a channel;
//! - the progress counter sees every byte, whoever read it; the caller's
//!   thread reports it at least every 100 ms.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::stream::{ChunkReader, Msg, Pool, CHANNEL_DEPTH};
use crate::finding::Finding;

thread_local! {
    /// Nested archives this thread decodes right now (see `nested`).
    static DECODING_HERE: Cell<usize> = const { Cell::new(0) };
    /// This thread walks a file read ahead for it.
    static WALKS_READ_AHEAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread walks a file read ahead for it: the pass's only
/// pipeline, so while it waits for the validator of an image it decodes, a
/// core is idle (see `nested`). A folder's feeder threads are not: two
/// pipelines share the cores, and a wait of one is work for the other.
pub fn walks_read_ahead() -> bool {
    WALKS_READ_AHEAD.with(Cell::get)
}

/// Marks the current thread as decoding a nested archive until dropped:
/// a read-ahead feeding this thread lets it read for itself meanwhile.
pub struct DecodingHere(());

impl DecodingHere {
    pub fn start() -> DecodingHere {
        DECODING_HERE.with(|d| d.set(d.get() + 1));
        DecodingHere(())
    }
}

impl Drop for DecodingHere {
    fn drop(&mut self) {
        // Saturating: a guard dropped on another thread than its own only
        // costs this thread its hint, never a wrong count below zero.
        DECODING_HERE.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn decoding_here() -> bool {
    DECODING_HERE.with(|d| d.get() > 0)
}

struct State<R> {
    /// `None` while a thread reads from it.
    file: Option<R>,
    queue: VecDeque<Msg>,
    /// The first chunk, read before the pass began.
    first: Option<Vec<u8>>,
    /// The file ended or failed; what is queued is the rest.
    ended: bool,
    /// The walk has dropped its reader: nothing more is needed.
    gone: bool,
    /// The walk reads for itself: the read-ahead waits.
    direct: bool,
    /// Bytes read so far: the offset of the next read.
    offset: u64,
    /// Bytes read and not yet reported to the progress counter.
    unreported: u64,
    read_ok: bool,
    /// Who sleeps on a condition variable: wake-ups cost a system call.
    walk_waits: bool,
    reader_waits: bool,
}

struct Shared<R> {
    state: Mutex<State<R>>,
    /// The walk waits here for a chunk.
    to_walk: Condvar,
    /// The read-ahead waits here for room, or for the walk to stop reading
    /// for itself.
    to_reader: Condvar,
    pool: Pool,
    findings: Sender<Finding>,
    target: String,
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_reader(&self, st: &mut State<R>) {
        if std::mem::take(&mut st.reader_waits) {
            self.to_reader.notify_all();
        }
    }

    /// Waits for the walk, at most `limit`.
    fn reader_wait<'a>(
        &'a self,
        mut st: MutexGuard<'a, State<R>>,
        limit: Duration,
    ) -> MutexGuard<'a, State<R>> {
        st.reader_waits = true;
        self.to_reader
            .wait_timeout(st, limit)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    fn wake_walk(&self, st: &mut State<R>) {
        if std::mem::take(&mut st.walk_waits) {
            self.to_walk.notify_all();
        }
    }
}

/// What the pass learns once the read-ahead has ended.
pub struct Ended<R> {
    pub file: R,
    pub read_ok: bool,
    pub bytes_read: u64,
}

/// The caller's side of a read-ahead: [`ReadAhead::run`] reads until the
/// file ends or the walk stops.
pub struct ReadAhead<R> {
    shared: Arc<Shared<R>>,
}

/// Starts reading `file` (whose first chunk, `first`, was already read)
/// for a walk: the walk's input, and the reader to [`ReadAhead::run`] on
/// the caller's thread.
pub fn read_ahead<R: Read + Send + 'static>(
    file: R,
    first: Vec<u8>,
    findings: Sender<Finding>,
    target: &str,
) -> (ReadAhead<R>, ChunkReader) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            file: Some(file),
            queue: VecDeque::with_capacity(CHANNEL_DEPTH),
            first: Some(first),
            ended: false,
            gone: false,
            direct: false,
            offset: 0,
            unreported: 0,
            read_ok: true,
            walk_waits: false,
            reader_waits: false,
        }),
        to_walk: Condvar::new(),
        to_reader: Condvar::new(),
        pool: Pool::default(),
        findings,
        target: target.to_string(),
    });
    let walk = WalkSide {
        shared: shared.clone(),
    };
    let mut walk = Some(walk);
    let input = ChunkReader::pulling(move || {
        let w = walk.as_mut()?;
        let msg = w.next();
        if msg.is_none() || matches!(msg, Some(Msg::Abort)) {
            // Dropped here, not with the reader: the read-ahead stops now.
            walk = None;
        }
        msg
    });
    (ReadAhead { shared }, input)
}

/// One chunk read from the file (the first chunk, when it is still there),
/// with the file given back and the state updated; the message for the
/// walk, `None` at the end.
fn read_one<'a, R: Read>(
    shared: &'a Shared<R>,
    mut st: MutexGuard<'a, State<R>>,
) -> (MutexGuard<'a, State<R>>, Option<Msg>) {
    let chunk = match st.first.take() {
        Some(c) => Ok(c),
        None => {
            let mut file = st.file.take().expect("the file is here");
            drop(st);
            let mut buf = shared.pool.take_full();
            let res = super::read_full(&mut file, &mut buf).map(|n| {
                buf.truncate(n);
                buf
            });
            st = shared.lock();
            st.file = Some(file);
            res
        }
    };
    let msg = match chunk {
        Ok(c) if c.is_empty() => {
            st.ended = true;
            None
        }
        Ok(c) => {
            st.offset += c.len() as u64;
            st.unreported += c.len() as u64;
            Some(Msg::Data(shared.pool.chunk(c)))
        }
        Err(e) => {
            let offset = st.offset;
            st.ended = true;
            st.read_ok = false;
            let _ = shared
                .findings
                .send(super::read_error(&shared.target, offset, &e));
            Some(Msg::Abort)
        }
    };
    (st, msg)
}

struct WalkSide<R> {
    shared: Arc<Shared<R>>,
}

impl<R: Read> WalkSide<R> {
    fn next(&mut self) -> Option<Msg> {
        WALKS_READ_AHEAD.with(|w| w.set(true));
        let shared = &*self.shared;
        let mut st = shared.lock();
        let direct = decoding_here();
        if st.direct != direct {
            st.direct = direct;
            shared.wake_reader(&mut st);
        }
        loop {
            if let Some(m) = st.queue.pop_front() {
                if st.queue.len() <= CHANNEL_DEPTH / 2 {
                    shared.wake_reader(&mut st);
                }
                return Some(m);
            }
            if st.ended {
                return None;
            }
            // Nothing queued: read for itself when it decodes, or when the
            // read-ahead is not reading right now anyway.
            if st.file.is_some() && (direct || st.first.is_some()) {
                let (mut g, msg) = read_one(shared, st);
                if msg.is_none() || matches!(msg, Some(Msg::Abort)) {
                    shared.wake_reader(&mut g);
                }
                return msg;
            }
            st.walk_waits = true;
            st = shared.to_walk.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<R> Drop for WalkSide<R> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.gone = true;
        st.queue.clear();
        self.shared.wake_reader(&mut st);
    }
}

impl<R: Read> ReadAhead<R> {
    /// Reads ahead until the file ends or the walk stops, reporting
    /// progress; then hands the file back.
    pub fn run(self, progress: &dyn super::Progress) -> Ended<R> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        loop {
            if st.unreported > 0 {
                progress.advance(std::mem::take(&mut st.unreported));
            }
            if st.gone || (st.ended && st.file.is_some()) {
                break;
            }
            let can_read =
                !st.ended && !st.direct && st.file.is_some() && st.queue.len() < CHANNEL_DEPTH;
            if can_read {
                let (g, msg) = read_one(shared, st);
                st = g;
                if let Some(m) = msg {
                    if st.gone {
                        drop(m);
                    } else {
                        st.queue.push_back(m);
                    }
                }
                shared.wake_walk(&mut st);
                continue;
            }
            // Woken by the walk; the timeout keeps the progress live while
            // the walk reads for itself.
            st = shared.reader_wait(st, Duration::from_millis(100));
        }
        // The walk may still hold the file in a read: wait for it.
        while st.file.is_none() {
            st = shared.reader_wait(st, Duration::from_millis(10));
        }
        if st.unreported > 0 {
            progress.advance(std::mem::take(&mut st.unreported));
        }
        Ended {
            file: st.file.take().expect("the file is back"),
            read_ok: st.read_ok,
            bytes_read: st.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::bundle::stream::{is_upstream_abort, CHUNK_SIZE};
    use crate::finding::Code;

    #[derive(Default)]
    struct Count(AtomicU64);
    impl crate::bundle::Progress for Count {
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn data(n: usize) -> Vec<u8> {
        crate::bundle::sha256::tests::seeded_bytes(n, 5)
    }

    /// Reads `len` bytes through a read-ahead whose walk decodes (reads
    /// for itself) in the stretches `decoding` says, from a file read in
    /// pieces of `piece` bytes.
    fn run(len: usize, piece: usize, decoding: fn(u64) -> bool) -> (Vec<u8>, Ended<Pieces>, u64) {
        let bytes = data(len);
        let mut file = Pieces {
            data: bytes.clone(),
            at: 0,
            piece,
            fail_at: None,
        };
        let mut first = vec![0; CHUNK_SIZE];
        let n = super::super::read_full(&mut file, &mut first).unwrap();
        first.truncate(n);
        let (tx, _rx) = crossbeam_channel::unbounded();
        let (reader, mut input) = read_ahead(file, first, tx, "t.tar");
        let progress = Count::default();
        let (got, ended) = std::thread::scope(|s| {
            let walk = s.spawn(move || {
                let mut got = Vec::new();
                let mut here = None;
                loop {
                    here = match (decoding(got.len() as u64), here) {
                        (true, None) => Some(DecodingHere::start()),
                        (false, _) => None,
                        (true, h) => h,
                    };
                    let b = input.fill_buf().unwrap();
                    if b.is_empty() {
                        return got;
                    }
                    // A small step, so the mode changes inside chunks too.
                    let k = b.len().min(10_000);
                    got.extend_from_slice(&b[..k]);
                    input.consume(k);
                }
            });
            let ended = reader.run(&progress);
            (walk.join().unwrap(), ended)
        });
        assert_eq!(got, bytes);
        (got, ended, progress.0.load(Ordering::Relaxed))
    }

    struct Pieces {
        data: Vec<u8>,
        at: usize,
        piece: usize,
        fail_at: Option<usize>,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(std::io::Error::other("the disk is on fire"));
            }
            let n = buf.len().min(self.piece).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn every_byte_arrives_once_and_in_order_whoever_reads_it() {
        let modes: [fn(u64) -> bool; 4] = [
            |_| false,
            |_| true,
            // Switching back and forth, inside chunks.
            |at| (at / 150_000) % 2 == 1,
            |at| (at / 777_777) % 3 == 0,
        ];
        for len in [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 5, 5 << 20] {
            for piece in [4096, CHUNK_SIZE, 1 << 20] {
                for mode in modes {
                    let (_, ended, progress) = run(len, piece, mode);
                    assert!(ended.read_ok);
                    assert_eq!(ended.bytes_read, len as u64);
                    assert_eq!(progress, len as u64);
                    assert_eq!(ended.file.at, len, "the file is handed back");
                }
            }
        }
    }

    #[test]
    fn a_read_error_is_reported_once_and_aborts_the_walk() {
        for decoding in [false, true] {
            let bytes = data(1 << 20);
            let fail_at = 5 * CHUNK_SIZE;
            let mut file = Pieces {
                data: bytes,
                at: 0,
                piece: CHUNK_SIZE,
                fail_at: Some(fail_at),
            };
            let mut first = vec![0; CHUNK_SIZE];
            super::super::read_full(&mut file, &mut first).unwrap();
            let (tx, rx) = crossbeam_channel::unbounded();
            let (reader, mut input) = read_ahead(file, first, tx, "t.tar");
            let ended = std::thread::scope(|s| {
                let walk = s.spawn(move || {
                    let _here = decoding.then(DecodingHere::start);
                    let mut n = 0;
                    loop {
                        match input.fill_buf() {
                            Ok([]) => panic!("a clean end after a read error"),
                            Ok(b) => {
                                let k = b.len();
                                n += k;
                                input.consume(k);
                            }
                            Err(e) => {
                                assert!(is_upstream_abort(&e), "{e}");
                                return n;
                            }
                        }
                    }
                });
                let ended = reader.run(&crate::bundle::NoProgress);
                assert_eq!(walk.join().unwrap(), fail_at);
                ended
            });
            assert!(!ended.read_ok);
            assert_eq!(ended.bytes_read, fail_at as u64);
            let findings: Vec<Finding> = rx.try_iter().collect();
            assert_eq!(findings.len(), 1, "{findings:?}");
            assert_eq!(findings[0].code, Code::BundleReadError);
            assert_eq!(findings[0].evidence["offset"], fail_at as u64);
            assert!(findings[0].message.contains("on fire"));
        }
    }

    #[test]
    fn a_walk_that_stops_early_stops_the_read_ahead() {
        let mut file = Pieces {
            data: data(50 << 20),
            at: 0,
            piece: CHUNK_SIZE,
            fail_at: None,
        };
        let mut first = vec![0; CHUNK_SIZE];
        super::super::read_full(&mut file, &mut first).unwrap();
        let (tx, _rx) = crossbeam_channel::unbounded();
        let (reader, mut input) = read_ahead(file, first, tx, "t.tar");
        let ended = std::thread::scope(|s| {
            s.spawn(move || {
                input.fill_buf().unwrap();
                drop(input);
            });
            reader.run(&crate::bundle::NoProgress)
        });
        // Not read to the end: at most what fits in the queue past the
        // first chunks.
        assert!(ended.file.at < 4 << 20, "{}", ended.file.at);
    }
}
