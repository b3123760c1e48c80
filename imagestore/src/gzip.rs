//! Layer gzip that uses every core and does not spend them on bytes that
//! will not shrink, with output that depends on the input alone.
//!
//! The stream is cut into fixed 4 MiB pieces; each becomes one gzip
//! member (RFC 1952 allows many; every gzip reader of the field, Go's
//! included, reads them as one stream), compressed on its own thread. A
//! piece whose first 64 KiB do not shrink by a tenth at the fastest level
//! (already compressed media, archives, random data) is stored rather
//! than deflated. Neither the piece size nor that choice depends on the
//! machine, so two builds of the same tree give the same blob anywhere. A
//! layer of one piece is the single member a plain gzip writer makes.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread::JoinHandle;

use flate2::{Compression, GzBuilder};

/// Uncompressed bytes per gzip member.
pub const PIECE: usize = 4 << 20;
/// The sample that decides whether a piece is worth deflating.
const SAMPLE: usize = 64 << 10;
/// The level of pieces that shrink.
const LEVEL: u32 = 5;

/// Does `data` shrink by at least a tenth at level 1 (judged on its first
/// 64 KiB)?
fn compressible(data: &[u8]) -> bool {
    let sample = &data[..data.len().min(SAMPLE)];
    if sample.len() < 512 {
        return true;
    }
    let mut e =
        flate2::write::DeflateEncoder::new(Vec::with_capacity(sample.len()), Compression::fast());
    if e.write_all(sample).is_err() {
        return true;
    }
    match e.finish() {
        Ok(out) => out.len() * 10 < sample.len() * 9,
        Err(_) => true,
    }
}

/// One piece as a complete gzip member (no name, mtime 0, OS unknown).
fn member(data: &[u8]) -> io::Result<Vec<u8>> {
    let level = if compressible(data) {
        Compression::new(LEVEL)
    } else {
        Compression::none()
    };
    let cap = if level == Compression::none() {
        data.len() + data.len() / 1000 + 64
    } else {
        data.len() / 2 + 64
    };
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(cap), level);
    gz.write_all(data)?;
    gz.finish()
}

/// A gzip writer over `W` compressing pieces in parallel, in order.
pub struct ParallelGz<W: Write> {
    inner: W,
    piece: Vec<u8>,
    pending: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    workers: usize,
    /// Nothing was written yet: an empty stream is still one member.
    empty: bool,
}

impl<W: Write> ParallelGz<W> {
    pub fn new(inner: W) -> ParallelGz<W> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        ParallelGz {
            inner,
            piece: Vec::with_capacity(PIECE),
            pending: VecDeque::new(),
            workers,
            empty: true,
        }
    }

    /// Write out the oldest piece in flight.
    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.pop_front() {
            let out = h
                .join()
                .map_err(|_| io::Error::other("gzip worker panicked"))??;
            self.inner.write_all(&out)?;
        }
        Ok(())
    }

    fn send_piece(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.empty = false;
        while self.pending.len() >= self.workers {
            self.drain_one()?;
        }
        self.pending
            .push_back(std::thread::spawn(move || member(&data)));
        Ok(())
    }

    /// Compress what is left and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.piece.is_empty() || self.empty {
            if self.pending.is_empty() {
                // The common small layer: no thread.
                let out = member(&self.piece)?;
                self.inner.write_all(&out)?;
            } else {
                self.send_piece()?;
            }
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.piece.len();
        let n = buf.len().min(room);
        self.piece.extend_from_slice(&buf[..n]);
        if self.piece.len() == PIECE {
            self.send_piece()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Bytes that do not compress (xorshift), deterministic.
    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn gz(data: &[u8], workers: usize, write: usize) -> Vec<u8> {
        let mut w = ParallelGz::new(Vec::new());
        w.workers = workers;
        for c in data.chunks(write) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_the_same_on_any_machine() {
        let mut data = b"text that repeats and repeats ".repeat(400_000);
        data.extend(noise(9 << 20, 7));
        data.extend(b"tail".repeat(1000));
        let one = gz(&data, 1, 1 << 20);
        let many = gz(&data, 4, 12345);
        assert_eq!(
            one, many,
            "output must not depend on workers or write sizes"
        );
        assert_eq!(gunzip(&one), data);
        // The text shrinks; the noise is stored (a few bytes per 64 KiB).
        assert!(one.len() < data.len() - 10_000_000, "{}", one.len());
        assert!(one.len() > 9 << 20);
    }

    #[test]
    fn small_and_empty_streams_are_one_plain_member() {
        for data in [&b""[..], b"hello world hello world hello world"] {
            let mut plain = GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Vec::new(), Compression::new(LEVEL));
            plain.write_all(data).unwrap();
            assert_eq!(gz(data, 2, 7), plain.finish().unwrap());
        }
    }

    #[test]
    fn incompressible_pieces_are_stored() {
        let data = noise(PIECE, 99);
        let out = gz(&data, 2, 1 << 16);
        assert!(out.len() > data.len() && out.len() < data.len() + data.len() / 500);
        assert_eq!(gunzip(&out), data);
    }
}
