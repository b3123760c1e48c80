//! The content store: immutable blobs under `blobs/sha256/<hex>`.
//!
//! A blob is written to a temp file in `ingest/` on the same filesystem,
//! hashed while it streams, fsynced, checked against the expected digest
//! and size, then renamed into place. A blob never appears under a digest
//! it does not match; a crash leaves at most a temp file, removed later.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Context, Error, Result};

#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

/// What a caller expects a blob to be (for verification while ingesting).
#[derive(Clone, Debug)]
pub struct Expected {
    pub digest: Digest,
    pub size: Option<u64>,
    /// How to name the blob in errors ("layer 2 of busybox").
    pub what: String,
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<ContentStore> {
        for d in ["blobs/sha256", "ingest"] {
            std::fs::create_dir_all(root.join(d))
                .ctx(|| format!("create {}", root.join(d).display()))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(d.to_string()),
            _ => Error::Io {
                context: format!("open blob {d}"),
                source: e,
            },
        })
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut v)
            .ctx(|| format!("read blob {d}"))?;
        Ok(v)
    }

    pub fn size(&self, d: &Digest) -> Result<u64> {
        Ok(self
            .open_blob(d)?
            .metadata()
            .ctx(|| format!("stat blob {d}"))?
            .len())
    }

    /// Start writing a blob. `finish` verifies and publishes it.
    pub fn writer(&self) -> Result<BlobWriter> {
        let name = format!("{}-{}.tmp", std::process::id(), unique());
        let tmp = self.root.join("ingest").join(name);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            w: Some(HashingWriter::new(std::io::BufWriter::with_capacity(
                1 << 20,
                f,
            ))),
        })
    }

    /// Write all of `r` as a blob, verified against `expected` if given.
    pub fn ingest(&self, mut r: impl Read, expected: Option<&Expected>) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        std::io::copy(&mut r, &mut w).ctx(|| "write blob".to_string())?;
        w.finish(expected)
    }

    pub fn put(&self, data: &[u8]) -> Result<Digest> {
        Ok(self.ingest(data, None)?.0)
    }

    pub fn delete(&self, d: &Digest) -> Result<()> {
        match std::fs::remove_file(self.path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                context: format!("remove blob {d}"),
                source: e,
            }),
        }
    }

    /// Every stored blob digest (names that are not digests are ignored).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)
            .ctx(|| format!("read {}", dir.display()))?
            .flatten()
        {
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse::<Digest>() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hash a stored blob.
    pub fn verify(&self, d: &Digest) -> Result<()> {
        let mut h = crate::digest::HashingReader::new(self.open_blob(d)?);
        h.drain().ctx(|| format!("read blob {d}"))?;
        let (actual, _) = h.finish();
        if &actual != d {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {d}"),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Remove temp files left by interrupted writers that are gone.
    pub fn clean_ingest(&self) -> Result<usize> {
        let dir = self.root.join("ingest");
        let mut n = 0;
        for e in std::fs::read_dir(&dir)
            .ctx(|| format!("read {}", dir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name.split('-').next().and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists() && p != 0);
            if !alive && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A name no other writer (process or thread) of this store will pick.
pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A blob being written. Dropped without `finish`, its temp file goes.
pub struct BlobWriter {
    store: ContentStore,
    tmp: PathBuf,
    w: Option<HashingWriter<std::io::BufWriter<File>>>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.w.as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("blob writer already finished")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.w.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// fsync, verify, and rename into place. Returns digest and size.
    pub fn finish(mut self, expected: Option<&Expected>) -> Result<(Digest, u64)> {
        let w = self
            .w
            .take()
            .ok_or_else(|| Error::BadImage("blob writer reused".into()))?;
        let (digest, size, buf) = w.finish();
        let f = buf.into_inner().map_err(|e| Error::Io {
            context: "flush blob".into(),
            source: e.into_error(),
        })?;
        f.sync_all().ctx(|| "fsync blob".into())?;
        drop(f);
        if let Some(exp) = expected {
            if let Some(want) = exp.size.filter(|s| *s != size) {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(Error::SizeMismatch {
                    what: exp.what.clone(),
                    expected: want,
                    actual: size,
                });
            }
            if exp.digest != digest {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(Error::DigestMismatch {
                    what: exp.what.clone(),
                    expected: exp.digest.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let dest = self.store.path(&digest);
        if dest.exists() {
            // Same content already there (a concurrent writer won): keep it.
            let _ = std::fs::remove_file(&self.tmp);
        } else {
            std::fs::rename(&self.tmp, &dest).ctx(|| format!("publish blob {digest}"))?;
            if let Some(dir) = dest.parent()
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
        }
        Ok((digest, size))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_verifies_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        cs.verify(&d).unwrap();
        assert_eq!(cs.list().unwrap(), vec![d.clone()]);
        // Wrong digest: refused, nothing published, no temp left.
        let exp = Expected {
            digest: Digest::of(b"other"),
            size: None,
            what: "test blob".into(),
        };
        let err = cs
            .ingest(&b"tampered"[..], Some(&exp))
            .unwrap_err()
            .to_string();
        assert!(err.contains("digest mismatch for test blob"), "{err}");
        assert!(!cs.exists(&Digest::of(b"tampered")));
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
        // Wrong size.
        let exp = Expected {
            digest: Digest::of(b"abc"),
            size: Some(4),
            what: "sized".into(),
        };
        assert!(
            cs.ingest(&b"abc"[..], Some(&exp))
                .unwrap_err()
                .to_string()
                .contains("size mismatch")
        );
    }

    #[test]
    fn corrupted_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.put(b"data").unwrap();
        std::fs::write(cs.path(&d), b"evil").unwrap();
        assert!(
            cs.verify(&d)
                .unwrap_err()
                .to_string()
                .contains("digest mismatch")
        );
    }
}
