//! A connection's pending output: a queue of segments written with one
//! vectored write per attempt (`sendmsg` on TCP).
//!
//! A segment ([`Segment`]) is either bytes this connection wrote itself (an
//! echo, a pong, an HTTP head), in a buffer borrowed from the worker's pool,
//! or shared bytes (one wire form of a published message, the same for
//! every subscriber): fan-out queues an `Arc`, not a copy of the payload.
//! A large echo goes out of the read buffer it arrived in ([`Segment::Read`]),
//! without a copy. An idle connection's queue is empty and holds no allocation.
//! What the shared bytes are is not this module's business: it knows bytes.

use super::buffer::{BufferPool, ReadBuf, Segment, WriteBuf};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Segments passed to one vectored write (Linux allows 1024; a few dozen already
/// fill a socket buffer).
const MAX_IOV: usize = 64;

/// Pending output, in order.
#[derive(Debug, Default)]
pub struct Output {
    segs: VecDeque<Segment>,
    /// Pending bytes of every segment but a trailing owned one, whose length
    /// changes as protocol code appends to it.
    sealed: usize,
}

impl Output {
    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        match self.segs.back() {
            Some(Segment::Owned(w)) => self.sealed + w.pending().len(),
            _ => self.sealed,
        }
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An idle connection's queue holds no allocation: borrow one from the
    /// pool before the first segment.
    fn ready(&mut self, pool: &mut BufferPool) {
        if self.segs.capacity() == 0 {
            self.segs = pool.take_queue();
        }
    }

    /// Where this connection appends bytes of its own.
    pub fn buf(&mut self, pool: &mut BufferPool) -> &mut Vec<u8> {
        self.ready(pool);
        if !matches!(self.segs.back(), Some(Segment::Owned(_))) {
            self.segs.push_back(Segment::Owned(WriteBuf::take(pool)));
        }
        match self.segs.back_mut() {
            Some(Segment::Owned(w)) => w.out(),
            _ => unreachable!("an owned segment was just pushed"),
        }
    }

    /// Queue bytes shared with other connections, sent as they are.
    pub fn push_shared(&mut self, bytes: Arc<[u8]>, pool: &mut BufferPool) {
        self.ready(pool);
        if let Some(Segment::Owned(w)) = self.segs.back() {
            self.sealed += w.pending().len();
        }
        self.sealed += bytes.len();
        self.segs.push_back(Segment::Shared { bytes, pos: 0 });
    }

    /// Queue a read buffer whose unconsumed bytes are to be sent as they are.
    pub fn push_read(&mut self, buf: ReadBuf, pool: &mut BufferPool) {
        self.ready(pool);
        match self.segs.back() {
            // An empty trailing buffer would only add an empty iovec.
            Some(Segment::Owned(w)) if w.is_empty() => {
                if let Some(Segment::Owned(w)) = self.segs.pop_back() {
                    w.give(pool);
                }
            }
            Some(Segment::Owned(w)) => self.sealed += w.pending().len(),
            _ => {}
        }
        self.sealed += buf.len();
        self.segs.push_back(Segment::Read(buf));
    }

    /// One vectored write of the front segments; returns the bytes written.
    pub fn write_to<W: Write>(&mut self, w: &mut W, pool: &mut BufferPool) -> io::Result<usize> {
        let n = if self.segs.len() == 1 {
            w.write(self.segs[0].pending())?
        } else {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (slot, seg) in iov.iter_mut().zip(self.segs.iter()) {
                *slot = IoSlice::new(seg.pending());
                count += 1;
            }
            w.write_vectored(&iov[..count])?
        };
        self.advance(n, pool);
        Ok(n)
    }

    fn advance(&mut self, mut n: usize, pool: &mut BufferPool) {
        while !self.segs.is_empty() {
            let only = self.segs.len() == 1;
            let front = &mut self.segs[0];
            let trailing_owned = only && matches!(front, Segment::Owned(_));
            let len = front.pending().len();
            let step = n.min(len);
            match front {
                Segment::Owned(w) => w.advance(step),
                Segment::Read(r) => r.consume(step),
                Segment::Shared { pos, .. } => *pos += step,
            }
            if !trailing_owned {
                self.sealed -= step;
            }
            n -= step;
            if step < len {
                break;
            }
            // Drained: a buffer goes back to the pool; an empty trailing
            // one is kept only while bytes remain to be written.
            match self.segs.pop_front() {
                Some(Segment::Owned(w)) => w.give(pool),
                Some(Segment::Read(r)) => r.give(pool),
                _ => {}
            }
            if n == 0 {
                break;
            }
        }
        debug_assert_eq!(n, 0);
    }

    /// Give every owned buffer back (the connection is going away).
    pub fn release(&mut self, pool: &mut BufferPool) {
        for seg in self.segs.drain(..) {
            match seg {
                Segment::Owned(w) => w.give(pool),
                Segment::Read(r) => r.give(pool),
                Segment::Shared { .. } => {}
            }
        }
        self.sealed = 0;
        pool.give_queue(std::mem::take(&mut self.segs));
    }

    /// Drop a trailing owned buffer that holds nothing, keeping memory for
    /// idle connections at zero.
    pub fn trim(&mut self, pool: &mut BufferPool) {
        if self.is_empty() {
            self.release(pool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn owned_and_shared_segments_come_out_in_order() {
        let mut pool = BufferPool::new(64, 4);
        let frame: Arc<[u8]> = Arc::from(&b"\x81\x05hello"[..]);
        let mut out = Output::default();
        out.buf(&mut pool).extend_from_slice(b"head;");
        out.push_shared(frame.clone(), &mut pool);
        out.push_shared(frame.clone(), &mut pool);
        out.buf(&mut pool).extend_from_slice(b";tail");
        let total = 5 + 2 * frame.len() + 5;
        assert_eq!(out.len(), total);
        for max in [1, 3, 7, 1000] {
            let mut o = Output::default();
            o.buf(&mut pool).extend_from_slice(b"head;");
            o.push_shared(frame.clone(), &mut pool);
            o.push_shared(frame.clone(), &mut pool);
            o.buf(&mut pool).extend_from_slice(b";tail");
            let mut w = Trickle { got: Vec::new(), max };
            while !o.is_empty() {
                let before = o.len();
                let n = o.write_to(&mut w, &mut pool).unwrap();
                assert_eq!(o.len(), before - n);
            }
            let mut want = b"head;".to_vec();
            want.extend_from_slice(&frame);
            want.extend_from_slice(&frame);
            want.extend_from_slice(b";tail");
            assert_eq!(w.got, want, "max {max}");
            assert!(o.segs.is_empty());
        }
        out.release(&mut pool);
        assert!(out.is_empty());
    }
}
