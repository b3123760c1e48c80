//! Bridges between oci-client's async byte streams and the store's
//! blocking readers.

use std::io::Read;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Opens the blob again from a byte offset: the stream, and how many bytes
/// at its start to skip (a registry that ignores Range sends it all).
pub type Reopen = Box<dyn FnMut(u64) -> std::io::Result<(ByteStream, u64)> + Send>;

/// How often a broken download is resumed before giving up.
pub const MAX_RESUMES: u32 = 5;

/// A blocking reader over an async blob stream that resumes from where it
/// broke (called from worker threads, never inside the runtime). The
/// caller verifies the digest over all the bytes.
pub struct ResumingReader {
    handle: tokio::runtime::Handle,
    stream: Option<ByteStream>,
    reopen: Reopen,
    buf: Bytes,
    offset: u64,
    skip: u64,
    resumes: u32,
}

impl ResumingReader {
    pub fn new(handle: tokio::runtime::Handle, reopen: Reopen) -> Self {
        ResumingReader {
            handle,
            stream: None,
            reopen,
            buf: Bytes::new(),
            offset: 0,
            skip: 0,
            resumes: 0,
        }
    }

    fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            let stream = match self.stream.as_mut() {
                Some(s) => s,
                None => {
                    let (s, skip) = (self.reopen)(self.offset)?;
                    self.skip = skip;
                    self.stream.insert(s)
                }
            };
            match self.handle.block_on(stream.next()) {
                Some(Ok(mut b)) => {
                    if self.skip > 0 {
                        let n = (self.skip as usize).min(b.len());
                        let _ = b.split_to(n);
                        self.skip -= n as u64;
                        if b.is_empty() {
                            continue;
                        }
                    }
                    return Ok(Some(b));
                }
                None => return Ok(None),
                Some(Err(e)) => {
                    self.resumes += 1;
                    if self.resumes > MAX_RESUMES {
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!("{e} (gave up after {MAX_RESUMES} resumes)"),
                        ));
                    }
                    tracing::warn!("download broke at byte {}: {e}; resuming", self.offset);
                    std::thread::sleep(crate::backoff(self.resumes));
                    self.stream = None;
                }
            }
        }
    }
}

impl Read for ResumingReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.next_chunk()? {
                Some(b) => self.buf = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        self.offset += n as u64;
        Ok(n)
    }
}

/// A reader (a blob file) as a stream of `chunk`-byte pieces, for
/// uploads (a chunked upload sends one PATCH per piece).
pub fn file_stream(
    file: Box<dyn Read + Send>,
    chunk: usize,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(file), move |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; chunk];
        // Fill the piece (a file read may return less).
        let mut filled = 0;
        while filled < chunk {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Some((Err(e.into()), None)),
            }
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        Some((Ok(Bytes::from(buf)), Some(file)))
    })
}
