//! Bridges between oci-client's async byte streams and the store's
//! blocking readers.

use std::io::Read;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// A blocking reader over an async stream (called from worker threads,
/// never from inside the runtime).
pub struct StreamReader {
    handle: tokio::runtime::Handle,
    stream: BoxStream<'static, std::io::Result<Bytes>>,
    buf: Bytes,
}

impl StreamReader {
    pub fn new(
        handle: tokio::runtime::Handle,
        stream: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> Self {
        StreamReader {
            handle,
            stream,
            buf: Bytes::new(),
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// A file as a stream of 1 MiB chunks, for uploads.
pub fn file_stream(
    file: std::fs::File,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e.into()), None)),
        }
    })
}
