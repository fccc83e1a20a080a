//! Chunked byte streams between the pipeline's threads.
//!
//! Guarantees:
//! - memory is bounded: every channel is bounded, so at most
//!   `CHANNEL_DEPTH` chunks of at most `CHUNK_SIZE` bytes wait per stage,
//!   whatever the size of the archive;
//! - a chunk is read from disk once and shared (not copied) between the outer
//!   hasher and the decoder;
//! - a stage that fails upstream sends [`Msg::Abort`], so the stage below can
//!   tell "the data ended" from "the producer gave up" and does not report a
//!   second, misleading truncation.

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::carry::Carrier;

/// Size of one read from disk and of one decompressed chunk. Measured here:
/// 64 KiB reads cost a third of the kernel time of 256 KiB or 1 MiB reads
/// (the copy out of the page cache stays in cache), and the syscall and
/// channel overhead is still negligible.
pub const CHUNK_SIZE: usize = 64 << 10;
/// Chunks in flight per channel.
pub const CHANNEL_DEPTH: usize = 64;

/// A buffer that goes back to its pool when the last reader drops it, so the
/// pass allocates a fixed set of buffers once instead of one per chunk:
/// RSS does not drift with the archive's length.
pub struct Buf {
    data: Vec<u8>,
    home: Option<Sender<Vec<u8>>>,
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf({} bytes)", self.data.len())
    }
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            let _ = home.try_send(std::mem::take(&mut self.data));
        }
    }
}

pub type Chunk = Arc<Buf>;

/// Recycles chunk buffers.
#[derive(Clone)]
pub struct Pool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl Default for Pool {
    fn default() -> Self {
        // Enough for every chunk that can be in flight at once.
        let (tx, rx) = crossbeam_channel::bounded(4 * CHANNEL_DEPTH + 8);
        Pool { tx, rx }
    }
}

impl Pool {
    /// A buffer of exactly `CHUNK_SIZE` initialised bytes, to read into.
    pub fn take_full(&self) -> Vec<u8> {
        let mut v = self.rx.try_recv().unwrap_or_default();
        v.resize(CHUNK_SIZE, 0);
        v
    }

    /// An empty buffer with `CHUNK_SIZE` capacity, to append into.
    pub fn take_empty(&self) -> Vec<u8> {
        let mut v = self.rx.try_recv().unwrap_or_default();
        v.clear();
        v.reserve_exact(CHUNK_SIZE);
        v
    }

    pub fn chunk(&self, data: Vec<u8>) -> Chunk {
        Arc::new(Buf {
            data,
            home: Some(self.tx.clone()),
        })
    }
}

pub enum Msg {
    Data(Chunk),
    /// The producer stopped because of an error it has already reported.
    Abort,
    /// From a nested job's producer: every `Data` chunk after this one also
    /// goes to the carrier's digests (see `carry`).
    Carry(Arc<Carrier>),
    /// From a stage that decompresses a carried stream: the next stored
    /// bytes, for the carrier's digests, not for this stage's reader.
    Carried(Chunk, Arc<Carrier>),
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Data(c) => write!(f, "Data({c:?})"),
            Msg::Abort => f.write_str("Abort"),
            Msg::Carry(_) => f.write_str("Carry"),
            Msg::Carried(c, _) => write!(f, "Carried({c:?})"),
        }
    }
}

pub fn channel() -> (Sender<Msg>, Receiver<Msg>) {
    crossbeam_channel::bounded(CHANNEL_DEPTH)
}

/// Marker carried inside an `io::Error` when the upstream stage aborted.
#[derive(Debug)]
pub struct UpstreamAborted;

impl std::fmt::Display for UpstreamAborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream stage aborted")
    }
}

impl std::error::Error for UpstreamAborted {}

pub fn is_upstream_abort(e: &io::Error) -> bool {
    e.get_ref()
        .map(|inner| inner.is::<UpstreamAborted>())
        .unwrap_or(false)
}

/// `Read` + `BufRead` over a channel of chunks, counting the bytes consumed.
///
/// In a nested job's pipeline it also moves carried bytes on (see `carry`):
/// after [`Msg::Carry`], every chunk it receives is also passed on as
/// [`Msg::Carried`] to the stage set by [`ChunkReader::forward_carried`], or
/// queued on the carrier by this thread when there is none (or it is gone);
/// and it drains its channel when dropped, so that no carried bytes are left
/// in it.
pub struct ChunkReader {
    rx: Receiver<Msg>,
    current: Option<Chunk>,
    pos: usize,
    consumed: u64,
    eof: bool,
    aborted: bool,
    carrying: Option<Arc<Carrier>>,
    forward: Option<Sender<Msg>>,
    /// Whether carried bytes may come through this channel.
    carries: bool,
}

impl ChunkReader {
    pub fn new(rx: Receiver<Msg>) -> Self {
        ChunkReader {
            rx,
            current: None,
            pos: 0,
            consumed: 0,
            eof: false,
            aborted: false,
            carrying: None,
            forward: None,
            carries: false,
        }
    }

    /// A reader of a nested job's channel, or of a stage after it: carried
    /// bytes may come through, so it drains its channel when dropped.
    pub fn carrying(rx: Receiver<Msg>) -> Self {
        let mut r = ChunkReader::new(rx);
        r.carries = true;
        r
    }

    /// Passes carried bytes on to `tx` (the decompressed stream's channel,
    /// read by a [`ChunkReader::carrying`] reader) instead of queuing them
    /// here, so that they are hashed where the content is.
    pub fn forward_carried(&mut self, tx: Sender<Msg>) {
        if self.carries {
            self.forward = Some(tx);
        }
    }

    /// Whether carried bytes may come through (see [`ChunkReader::carrying`]).
    pub fn carries(&self) -> bool {
        self.carries
    }

    /// Stops passing carried bytes on: the stage below sees its channel
    /// close once its other senders are gone.
    pub fn stop_forwarding(&mut self) {
        self.forward = None;
    }

    fn carry(&mut self, chunk: Chunk, carrier: Arc<Carrier>) {
        if let Some(tx) = &self.forward {
            match tx.send(Msg::Carried(chunk, carrier)) {
                Ok(()) => return,
                Err(crossbeam_channel::SendError(Msg::Carried(chunk, carrier))) => {
                    // The stage below has gone (and drained): queue here.
                    self.forward = None;
                    carrier.queue(chunk);
                }
                Err(_) => self.forward = None,
            }
            return;
        }
        carrier.queue(chunk);
    }

    /// Receives one message; `false` at the end of the stream.
    fn receive(&mut self) -> bool {
        match self.rx.recv() {
            Ok(Msg::Data(c)) => {
                if let Some(k) = self.carrying.clone() {
                    self.carry(c.clone(), k);
                }
                self.current = Some(c);
                self.pos = 0;
            }
            Ok(Msg::Abort) => {
                self.aborted = true;
                self.current = None;
            }
            Ok(Msg::Carry(k)) => self.carrying = Some(k),
            Ok(Msg::Carried(c, k)) => self.carry(c, k),
            // Sender dropped: a clean end of stream.
            Err(_) => {
                self.eof = true;
                self.current = None;
            }
        }
        !(self.eof || self.aborted)
    }

    /// Bytes handed out so far (the offset of the next byte).
    pub fn offset(&self) -> u64 {
        self.consumed
    }

    pub fn aborted(&self) -> bool {
        self.aborted
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        loop {
            if let Some(c) = &self.current {
                if self.pos < c.len() {
                    break;
                }
            }
            if self.eof {
                return Ok(&[]);
            }
            if self.aborted {
                return Err(io::Error::other(UpstreamAborted));
            }
            self.receive();
        }
        let c = self.current.as_ref().expect("chunk present");
        Ok(&c[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
        self.consumed += amt as u64;
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        if self.carries {
            // Carried bytes may still be in the channel: take them (the
            // senders upstream finish, as every stage drains its input).
            // Until every sender is gone, past an `Abort` too: the stage
            // that aborted may not be the only one sending.
            self.current = None;
            self.aborted = false;
            while self.receive() || self.aborted {
                self.current = None;
                self.aborted = false;
            }
        }
    }
}

/// A sender that degrades to "discard" when the receiving stage has quit, so
/// that the producer can still finish its own checks (CRCs, outer hash).
pub struct ForwardingSender {
    tx: Option<Sender<Msg>>,
}

impl ForwardingSender {
    pub fn new(tx: Sender<Msg>) -> Self {
        ForwardingSender { tx: Some(tx) }
    }

    pub fn send(&mut self, chunk: Chunk) {
        if let Some(tx) = &self.tx {
            if tx.send(Msg::Data(chunk)).is_err() {
                self.tx = None;
            }
        }
    }

    pub fn abort(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Abort);
        }
    }

    /// Announces that the chunks sent from now on are carried (see
    /// `carry`); `false` if the receiving stage has quit.
    pub fn carry(&mut self, carrier: Arc<Carrier>) -> bool {
        match &self.tx {
            Some(tx) => tx.send(Msg::Carry(carrier)).is_ok(),
            None => false,
        }
    }
}
