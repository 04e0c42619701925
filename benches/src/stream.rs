//! In-memory transports: what a socket would be, minus the kernel.
//!
//! A read copies at most `read_size` bytes out of the prepared input (that
//! copy stands in for `recv`), and a write copies into a [`Sink`] (standing
//! in for `send`). Every contender pays for exactly these copies.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest piece copied in one `memcpy` call by the simulated transport.
///
/// glibc 2.36 copies 4 KiB and more with `rep movsb`, and on this AMD
/// machine that runs at a fourteenth of its usual speed whenever the
/// destination is 1 to 31 bytes past the source modulo 4 KiB (measured:
/// ~3 GB/s against ~42 GB/s). Whether two heap buffers land that way is
/// luck of the allocator, so a simulated `recv` or `send` that hit it would
/// make one contender look 14x slower for reasons that are not its own (the
/// kernel's copy does not take this path). Copying in 2 KiB pieces keeps
/// glibc on its vector loop, which is as fast at every offset.
pub const COPY_PIECE: usize = 2048;

/// `dst.copy_from_slice(src)` in [`COPY_PIECE`]-byte pieces (see there).
#[inline]
pub fn copy_piecewise(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_mut(COPY_PIECE).zip(src.chunks(COPY_PIECE)) {
        d.copy_from_slice(s);
    }
}

/// Where written bytes go: a reused buffer, cleared when it fills, so
/// writing costs a memcpy and nothing else.
#[derive(Debug)]
pub struct Sink {
    buf: Vec<u8>,
    limit: usize,
    /// Bytes written in total.
    pub written: u64,
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

impl Sink {
    /// A sink that recycles its buffer every 1 MiB.
    pub fn new() -> Self {
        let limit = 1 << 20;
        Sink {
            buf: Vec::with_capacity(limit + (64 << 10)),
            limit,
            written: 0,
        }
    }

    /// Copies `data` in.
    #[inline]
    pub fn put(&mut self, data: &[u8]) {
        if self.buf.len() + data.len() > self.limit {
            self.buf.clear();
        }
        // In pieces, like `copy_piecewise` (see `COPY_PIECE`).
        for piece in data.chunks(COPY_PIECE) {
            self.buf.extend_from_slice(piece);
        }
        self.written += data.len() as u64;
    }

    /// The most recent bytes still held (for checks).
    pub fn held(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets everything written.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.written = 0;
    }
}

/// A transport that reads from a prepared slice and writes into a sink.
#[derive(Debug)]
pub struct MemStream<'a> {
    input: &'a [u8],
    pos: usize,
    read_size: usize,
    /// What the contender wrote.
    pub sink: Sink,
}

impl<'a> MemStream<'a> {
    /// A stream over `input`, handing out at most `read_size` bytes a read.
    pub fn new(input: &'a [u8], read_size: usize) -> Self {
        MemStream {
            input,
            pos: 0,
            read_size: read_size.max(1),
            sink: Sink::new(),
        }
    }

    /// True when every input byte was read.
    pub fn exhausted(&self) -> bool {
        self.pos == self.input.len()
    }

    /// Copies the next bytes into `dst` (at most `read_size` of them), as
    /// a `recv` into `dst` would; 0 once exhausted.
    #[inline]
    pub fn read_into(&mut self, dst: &mut [u8]) -> usize {
        let n = dst
            .len()
            .min(self.read_size)
            .min(self.input.len() - self.pos);
        copy_piecewise(&mut dst[..n], &self.input[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
}

impl Read for MemStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_into(buf))
    }
}

impl Write for MemStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.put(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            self.sink.put(b);
            n += b.len();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for MemStream<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = buf
            .remaining()
            .min(this.read_size)
            .min(this.input.len() - this.pos);
        let src = &this.input[this.pos..this.pos + n];
        // Into the unfilled part in pieces (see `COPY_PIECE`).
        for piece in src.chunks(COPY_PIECE) {
            buf.put_slice(piece);
        }
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().sink.put(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Write::write_vectored(self.get_mut(), bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_capped_pieces() {
        let data: Vec<u8> = (0..=255).collect();
        let mut s = MemStream::new(&data, 100);
        let mut buf = [0u8; 1000];
        assert_eq!(s.read(&mut buf).unwrap(), 100);
        assert_eq!(s.read(&mut buf[..10]).unwrap(), 10);
        assert_eq!(s.read(&mut buf).unwrap(), 100);
        assert_eq!(s.read(&mut buf).unwrap(), 46);
        assert!(s.exhausted());
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }
}
