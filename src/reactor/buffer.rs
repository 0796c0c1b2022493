//! Per-worker buffer pool, the two buffer shapes a connection borrows from
//! it, and the [`Segment`]s an output queue is made of (those two, or bytes
//! shared with other connections).
//!
//! An idle connection holds no buffer at all: a [`ReadBuf`] is taken from
//! the pool when bytes arrive and given back as soon as every byte has been
//! consumed; a [`WriteBuf`] likewise lives only while output is pending. So
//! memory follows the data in flight, not the number of connections, and a
//! pool of a few hundred buffers serves any number of mostly idle sockets.
//! Buffers that grew for a large frame are freed instead of pooled, so one
//! big message does not pin megabytes per worker.

use std::collections::VecDeque;
use std::sync::Arc;

/// Idle buffers kept by one worker for reuse.
#[derive(Debug)]
pub struct BufferPool {
    /// Write buffers: empty (`len == 0`).
    free: Vec<Vec<u8>>,
    /// Read buffers: kept initialised (`len == capacity`), so taking one
    /// does not zero 16 KiB again.
    free_read: Vec<Box<[u8]>>,
    size: usize,
    max_free: usize,
    /// Emptied output queues, so a connection with output in flight does not
    /// allocate one per burst.
    queues: Vec<VecDeque<Segment>>,
}

impl BufferPool {
    /// A pool of `size`-byte buffers keeping at most `max_free` idle ones.
    pub fn new(size: usize, max_free: usize) -> Self {
        BufferPool {
            free: Vec::new(),
            free_read: Vec::new(),
            size,
            max_free,
            queues: Vec::new(),
        }
    }

    /// An empty output queue, with room for a few segments.
    pub fn take_queue(&mut self) -> VecDeque<Segment> {
        self.queues.pop().unwrap_or_else(|| VecDeque::with_capacity(4))
    }

    /// Give an emptied output queue back (a grown one is freed).
    pub fn give_queue(&mut self, q: VecDeque<Segment>) {
        debug_assert!(q.is_empty());
        if q.capacity() > 0 && q.capacity() <= 16 && self.queues.len() < self.max_free {
            self.queues.push(q);
        }
    }

    /// Number of idle buffers held.
    pub fn idle(&self) -> usize {
        self.free.len() + self.free_read.len()
    }

    /// A buffer for reading: fully initialised, at least the standard size.
    fn take_read(&mut self) -> Box<[u8]> {
        if let Some(v) = self.free_read.pop() {
            return v;
        }
        let mut v = self.take();
        v.resize(v.capacity(), 0);
        v.into_boxed_slice()
    }

    /// Give a read buffer back; it stays initialised.
    fn give_read(&mut self, v: Box<[u8]>) {
        if v.len() >= self.size && v.len() <= 2 * self.size && self.idle() < self.max_free {
            self.free_read.push(v);
        }
    }

    /// A zero-length `Vec` with at least the standard capacity.
    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Give a buffer back; oversized ones and any beyond `max_free` are freed.
    fn give(&mut self, mut v: Vec<u8>) {
        if v.capacity() >= self.size && v.capacity() <= 2 * self.size && self.idle() < self.max_free {
            v.clear();
            self.free.push(v);
        }
    }
}

/// Received bytes not yet consumed, `data[start..end]`. The buffer is
/// fully initialised, so reads go straight into it, and a boxed slice
/// (no capacity beside its length: 8 bytes less in every session).
#[derive(Debug)]
pub struct ReadBuf {
    data: Box<[u8]>,
    /// Offsets as `u32`: a buffer never reaches 4 GiB (every limit is at
    /// most 1 GiB), and an idle connection's slab entry stays small.
    start: u32,
    end: u32,
}

impl ReadBuf {
    /// Borrow a buffer from the pool.
    pub fn take(pool: &mut BufferPool) -> ReadBuf {
        ReadBuf {
            data: pool.take_read(),
            start: 0,
            end: 0,
        }
    }

    /// Give the buffer back to the pool.
    pub fn give(self, pool: &mut BufferPool) {
        pool.give_read(self.data);
    }

    /// Unconsumed bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Nothing left to consume.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes the buffer holds room for.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// The unconsumed bytes, mutable (frames are unmasked in place).
    pub fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start as usize..self.end as usize]
    }

    /// The unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start as usize..self.end as usize]
    }

    /// Drop `n` consumed bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start += offset(n);
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into, never empty. `want` is how many bytes from the
    /// first unconsumed one the caller needs together (the frame or head in
    /// progress): unconsumed bytes move to the front when the tail is short,
    /// and a full buffer grows, at most doubling, towards `want`.
    ///
    /// `want` comes from a length the peer declared (a `Content-Length`, a
    /// frame header), which is a claim, not a size to allocate: the buffer
    /// grows only when bytes that actually arrived have filled it, so a peer
    /// that declares 16 MiB and sends one byte costs one standard buffer,
    /// and one that sends it all costs at most twice what it sent.
    pub fn spare(&mut self, want: usize) -> &mut [u8] {
        let (start, end) = (self.start as usize, self.end as usize);
        if start > 0 && (end == self.data.len() || start + want > self.data.len()) {
            self.data.copy_within(start..end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let (start, end) = (self.start as usize, self.end as usize);
        if end == self.data.len() {
            let need = (start + want).max(end + 1);
            let grown = need.min(self.data.len().saturating_mul(2)).max(end + 1);
            // Stay addressable by the u32 offsets.
            let grown = grown.min(u32::MAX as usize);
            let mut data = std::mem::take(&mut self.data).into_vec();
            data.reserve_exact(grown - data.len());
            data.resize(grown, 0);
            self.data = data.into_boxed_slice();
        }
        &mut self.data[end..]
    }

    /// Mark `n` bytes of [`spare`](Self::spare) as received.
    pub fn filled_by(&mut self, n: usize) {
        self.end += offset(n);
        debug_assert!(self.end as usize <= self.data.len());
    }
}

/// A length within a buffer, as an offset (buffers stay below 4 GiB).
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("buffers stay below 4 GiB")
}

/// One piece of pending output.
#[derive(Debug)]
pub enum Segment {
    /// Bytes of the connection's own, in a pooled buffer.
    Owned(WriteBuf),
    /// A read buffer whose unconsumed bytes are a reply built in place
    /// (an echo); it goes back to the pool's read buffers once written.
    Read(ReadBuf),
    /// Bytes shared with other connections (a published message's wire
    /// form), sent as they are.
    Shared {
        /// The bytes.
        bytes: Arc<[u8]>,
        /// Bytes of them already written.
        pos: usize,
    },
}

impl Segment {
    /// The bytes still to be written.
    pub fn pending(&self) -> &[u8] {
        match self {
            Segment::Owned(w) => w.pending(),
            Segment::Read(r) => r.filled(),
            Segment::Shared { bytes, pos } => &bytes[*pos..],
        }
    }
}

/// Bytes queued for the socket, `data[pos..]`.
#[derive(Debug)]
pub struct WriteBuf {
    data: Vec<u8>,
    pos: usize,
}

impl WriteBuf {
    /// Borrow a buffer from the pool.
    pub fn take(pool: &mut BufferPool) -> WriteBuf {
        WriteBuf {
            data: pool.take(),
            pos: 0,
        }
    }

    /// Give the buffer back to the pool.
    pub fn give(self, pool: &mut BufferPool) {
        pool.give(self.data);
    }

    /// Where protocol code appends output. Written-out bytes at the front
    /// are dropped first if they are the larger part, so the vector does not
    /// grow while a slow peer drains it.
    pub fn out(&mut self) -> &mut Vec<u8> {
        if self.pos > 0 && self.pos >= self.data.len() / 2 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        &mut self.data
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Mark `n` pending bytes as written.
    pub fn advance(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
    }

    /// Nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.pos == self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buf_compacts_and_grows() {
        let mut pool = BufferPool::new(16, 4);
        let mut r = ReadBuf::take(&mut pool);
        let n = r.spare(0).len();
        assert_eq!(n, 16);
        r.spare(0)[..10].copy_from_slice(b"0123456789");
        r.filled_by(10);
        r.consume(8);
        // Asking for a 40-byte frame: compacted to the front, not grown
        // while there is room for bytes that have not arrived.
        let spare = r.spare(40);
        assert_eq!(spare.len(), 14);
        assert_eq!(r.filled(), b"89");
        // Filled: it doubles towards the frame, never straight to it.
        r.filled_by(14);
        assert_eq!(r.spare(40).len(), 16);
        r.filled_by(16);
        assert_eq!(r.spare(40).len(), 8);
        r.filled_by(8);
        assert_eq!(r.len(), 40);
        r.consume(40);
        assert!(r.is_empty());
        r.give(&mut pool);
        // Grown past twice the standard size: freed, not pooled.
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn a_declared_length_alone_never_grows_the_buffer() {
        let mut pool = BufferPool::new(16, 4);
        let mut r = ReadBuf::take(&mut pool);
        // A peer announced 16 MiB and sent 3 bytes.
        assert_eq!(r.spare(16 << 20).len(), 16);
        r.filled_by(3);
        assert_eq!(r.spare(16 << 20).len(), 13);
        assert_eq!(r.size(), 16);
    }

    #[test]
    fn write_buf_tracks_position() {
        let mut pool = BufferPool::new(16, 4);
        let mut w = WriteBuf::take(&mut pool);
        w.out().extend_from_slice(b"hello world");
        w.advance(6);
        assert_eq!(w.pending(), b"world");
        w.out().extend_from_slice(b"!");
        assert_eq!(w.pending(), b"world!");
        w.advance(6);
        assert!(w.is_empty());
        w.give(&mut pool);
        assert_eq!(pool.idle(), 1);
    }
}
