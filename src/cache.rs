//! The content-addressed artifact cache (`<cache>/sha256/<hex>`) and downloads into it.
//!
//! An entry's name is the sha256 of its bytes, and nothing is ever used without checking
//! both that hash and the locked size: a cache entry that no longer matches (a disk
//! error, a hand edit, tampering) is reported, deleted, and fetched again.
//!
//! Downloads go to a temporary file in the cache directory and are renamed into place
//! only once their hash and size are right, so an interrupted download never leaves an
//! entry behind. Several run at once on plain threads; transient failures (connection
//! errors, HTTP 5xx and 429, a body cut short) are retried with back-off; a permanent one
//! names the artifact. Where the bytes come from is the caller's [`Source`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{artifact}: not in the cache ({path}); run `graft fetch` without --offline")]
    Missing { artifact: String, path: String },
    #[error(
        "{artifact}: the cache entry {path} does not match the lockfile (sha256 {actual}, {actual_size} bytes; \
         locked sha256 {expected}, {expected_size} bytes); it was deleted, run `graft fetch` to get it again"
    )]
    Corrupt {
        artifact: String,
        path: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
    #[error("{count} artifact(s) missing from the cache {cache} and --offline forbids fetching:\n{list}")]
    Offline {
        count: usize,
        cache: String,
        list: String,
    },
    #[error("{artifact}: download failed: {message}")]
    Fetch { artifact: String, message: String },
    #[error(
        "{artifact}: the downloaded bytes do not match the lockfile (got sha256 {actual}, {actual_size} bytes; \
         locked sha256 {expected}, {expected_size} bytes); the index or mirror serves a different file"
    )]
    Mismatch {
        artifact: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
}

/// One artifact the cache should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// How messages name it: the artifact's file name.
    pub label: String,
    /// 64 lower-case hex digits.
    pub sha256: String,
    pub size: u64,
}

/// Why a download failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// Connection errors, HTTP 5xx and 429, a body cut short.
    Transient(String),
    /// Anything else: not found, HTTP 4xx, a bad URL.
    Permanent(String),
}

/// Where the bytes of an artifact come from.
pub trait Source: Sync {
    /// Writes the artifact's bytes to `out`, calling `progress(bytes_so_far)`.
    fn fetch(
        &self,
        wanted: &Wanted,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchFailure>;
}

/// What a cache entry looked like when checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    Present,
    Missing,
    /// It did not match and has been deleted.
    Discarded {
        actual: String,
        actual_size: u64,
    },
}

pub struct FetchOptions {
    pub jobs: usize,
    /// Attempts per artifact for transient failures (at least 1).
    pub attempts: u32,
    /// The first back-off; doubled after each failed attempt.
    pub backoff: Duration,
    /// Show a progress bar on stderr (it hides itself when stderr is not a terminal).
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            jobs: 4,
            attempts: 4,
            backoff: Duration::from_millis(500),
            progress: true,
        }
    }
}

/// Cache entries that did not match and were deleted: (artifact label, actual sha256).
pub type Discarded = Vec<(String, String)>;

/// What [`Cache::fetch_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Already present and verified.
    pub cached: usize,
    /// Downloaded now.
    pub fetched: usize,
    pub fetched_bytes: u64,
    /// Entries that did not match, deleted and fetched again: (label, actual sha256).
    pub discarded: Discarded,
}

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating if needed) the cache rooted at `root`.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let dir = root.join("sha256");
        fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an entry with this hash lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256)
    }

    /// Checks an entry against its hash and size; a mismatching one is deleted.
    pub fn check(&self, wanted: &Wanted) -> Result<EntryState, CacheError> {
        let path = self.path_of(&wanted.sha256);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(EntryState::Missing),
            Err(source) => {
                return Err(CacheError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let len = file
            .metadata()
            .map_err(|source| CacheError::Io {
                path: path.display().to_string(),
                source,
            })?
            .len();
        let (actual, actual_size) = if len != wanted.size {
            // No need to hash what cannot match; say what is there all the same.
            crate::util::sha256_reader(file.take(wanted.size.saturating_add(1 << 20)))
                .map_err(|source| CacheError::Io {
                    path: path.display().to_string(),
                    source,
                })
                .map(|(h, _)| (h, len))?
        } else {
            crate::util::sha256_reader(file).map_err(|source| CacheError::Io {
                path: path.display().to_string(),
                source,
            })?
        };
        if actual == wanted.sha256 && actual_size == wanted.size {
            return Ok(EntryState::Present);
        }
        self.discard(&path)?;
        Ok(EntryState::Discarded {
            actual,
            actual_size,
        })
    }

    /// Reads an entry, checking its hash and size on the bytes read; a mismatching entry
    /// is deleted and reported.
    pub fn read_verified(&self, wanted: &Wanted) -> Result<Vec<u8>, CacheError> {
        let path = self.path_of(&wanted.sha256);
        let io_err = |source| CacheError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CacheError::Missing {
                    artifact: wanted.label.clone(),
                    path: path.display().to_string(),
                })
            }
            Err(e) => return Err(io_err(e)),
        };
        // Read at most one byte more than locked: a longer entry is wrong anyway.
        let mut data = Vec::with_capacity(wanted.size.min(1 << 30) as usize);
        file.take(wanted.size.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(io_err)?;
        let actual = crate::util::sha256_hex(&data);
        if actual != wanted.sha256 || data.len() as u64 != wanted.size {
            self.discard(&path)?;
            return Err(CacheError::Corrupt {
                artifact: wanted.label.clone(),
                path: path.display().to_string(),
                expected: wanted.sha256.clone(),
                expected_size: wanted.size,
                actual,
                actual_size: data.len() as u64,
            });
        }
        Ok(data)
    }

    fn discard(&self, path: &Path) -> Result<(), CacheError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Every wanted artifact that is not in the cache (or did not match and was deleted),
    /// and the (label, actual sha256) of the entries deleted.
    pub fn missing(&self, wanted: &[Wanted]) -> Result<(Vec<Wanted>, Discarded), CacheError> {
        let mut missing = Vec::new();
        let mut discarded = Vec::new();
        for w in wanted {
            match self.check(w)? {
                EntryState::Present => {}
                EntryState::Missing => missing.push(w.clone()),
                EntryState::Discarded { actual, .. } => {
                    discarded.push((w.label.clone(), actual));
                    missing.push(w.clone());
                }
            }
        }
        Ok((missing, discarded))
    }

    /// The `--offline` check: an error listing every missing artifact.
    pub fn require_all(&self, wanted: &[Wanted]) -> Result<Discarded, CacheError> {
        let (missing, discarded) = self.missing(wanted)?;
        if missing.is_empty() {
            return Ok(discarded);
        }
        let list = missing
            .iter()
            .map(|w| format!("  {} (sha256 {}, {} bytes)", w.label, w.sha256, w.size))
            .collect::<Vec<_>>()
            .join("\n");
        Err(CacheError::Offline {
            count: missing.len(),
            cache: self.root.display().to_string(),
            list,
        })
    }

    /// Makes sure every wanted artifact is in the cache, downloading what is missing.
    pub fn fetch_all(
        &self,
        wanted: &[Wanted],
        source: &dyn Source,
        opts: &FetchOptions,
    ) -> Result<FetchReport, CacheError> {
        let (missing, discarded) = self.missing(wanted)?;
        let mut report = FetchReport {
            cached: wanted.len() - missing.len(),
            discarded,
            ..FetchReport::default()
        };
        if missing.is_empty() {
            return Ok(report);
        }
        let total: u64 = missing.iter().map(|w| w.size).sum();
        let bar = if opts.progress {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} fetching [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let done = AtomicUsize::new(0);
        bar.set_message(format!("0/{} artifacts", missing.len()));
        let next = AtomicUsize::new(0);
        let errors: Mutex<Vec<(usize, CacheError)>> = Mutex::new(Vec::new());
        let jobs = opts.jobs.clamp(1, 32).min(missing.len());
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= missing.len() {
                        break;
                    }
                    let w = &missing[i];
                    match self.fetch_one(w, source, opts, &bar) {
                        Ok(()) => {
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            bar.set_message(format!("{n}/{} artifacts", missing.len()));
                        }
                        Err(e) => errors.lock().expect("no panic while held").push((i, e)),
                    }
                });
            }
        });
        bar.finish_and_clear();
        let mut errors = errors.into_inner().expect("no panic while held");
        if !errors.is_empty() {
            // The first failure in lockfile order, whatever order the threads ran in.
            errors.sort_by_key(|(i, _)| *i);
            return Err(errors.remove(0).1);
        }
        report.fetched = missing.len();
        report.fetched_bytes = total;
        Ok(report)
    }

    fn fetch_one(
        &self,
        w: &Wanted,
        source: &dyn Source,
        opts: &FetchOptions,
        bar: &ProgressBar,
    ) -> Result<(), CacheError> {
        let mut delay = opts.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = self.root.join("sha256");
            let temp = tempfile::Builder::new()
                .prefix(&format!(".{}.", &w.sha256[..16.min(w.sha256.len())]))
                .suffix(".part")
                .tempfile_in(&dir)
                .map_err(|source| CacheError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            let mut writer = CheckingWriter {
                inner: io::BufWriter::new(temp),
                hasher: Sha256::new(),
                written: 0,
                limit: w.size,
            };
            let mut reported = 0u64;
            let result = source.fetch(w, &mut writer, &mut |so_far| {
                bar.inc(so_far.saturating_sub(reported));
                reported = reported.max(so_far);
            });
            match result {
                Ok(()) => {
                    let actual = hex::encode(writer.hasher.clone().finalize());
                    if actual != w.sha256 || writer.written != w.size {
                        return Err(CacheError::Mismatch {
                            artifact: w.label.clone(),
                            expected: w.sha256.clone(),
                            expected_size: w.size,
                            actual,
                            actual_size: writer.written,
                        });
                    }
                    let temp = writer.inner.into_inner().map_err(|e| CacheError::Io {
                        path: dir.display().to_string(),
                        source: e.into_error(),
                    })?;
                    temp.as_file().sync_all().map_err(|source| CacheError::Io {
                        path: dir.display().to_string(),
                        source,
                    })?;
                    let dest = self.path_of(&w.sha256);
                    temp.persist(&dest).map_err(|e| CacheError::Io {
                        path: dest.display().to_string(),
                        source: e.error,
                    })?;
                    return Ok(());
                }
                Err(FetchFailure::Transient(message)) if attempt < opts.attempts.max(1) => {
                    // The bytes of the failed attempt leave the bar.
                    bar.set_position(bar.position().saturating_sub(reported));
                    bar.println(format!(
                        "retrying {} in {:.1}s: {message}",
                        w.label,
                        delay.as_secs_f32()
                    ));
                    std::thread::sleep(delay);
                    delay = delay.saturating_mul(2);
                }
                Err(FetchFailure::Transient(message)) => {
                    return Err(CacheError::Fetch {
                        artifact: w.label.clone(),
                        message: format!("{message} (gave up after {attempt} attempts)"),
                    })
                }
                Err(FetchFailure::Permanent(message)) => {
                    // A write refused by the size limit surfaces here too; say so plainly.
                    let message = if writer.written > w.size {
                        format!("the server sent more than the locked {} bytes", w.size)
                    } else {
                        message
                    };
                    return Err(CacheError::Fetch {
                        artifact: w.label.clone(),
                        message,
                    });
                }
            }
        }
    }
}

/// Hashes what passes through and refuses to write past the locked size, so a hostile or
/// wrong server cannot fill the disk.
struct CheckingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for CheckingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            self.written += buf.len() as u64;
            return Err(io::Error::other("more bytes than the lockfile's size"));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU32;

    struct MapSource {
        files: BTreeMap<String, Vec<u8>>,
        transient_failures: AtomicU32,
        calls: AtomicU32,
    }

    impl Source for MapSource {
        fn fetch(
            &self,
            w: &Wanted,
            out: &mut dyn Write,
            progress: &mut dyn FnMut(u64),
        ) -> Result<(), FetchFailure> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.transient_failures.load(Ordering::SeqCst) > 0 {
                self.transient_failures.fetch_sub(1, Ordering::SeqCst);
                let _ = out.write_all(b"pa");
                return Err(FetchFailure::Transient("HTTP 503".into()));
            }
            let data = self
                .files
                .get(&w.label)
                .ok_or_else(|| FetchFailure::Permanent("HTTP 404".into()))?;
            out.write_all(data)
                .map_err(|e| FetchFailure::Permanent(e.to_string()))?;
            progress(data.len() as u64);
            Ok(())
        }
    }

    fn wanted(label: &str, data: &[u8]) -> Wanted {
        Wanted {
            label: label.into(),
            sha256: crate::util::sha256_hex(data),
            size: data.len() as u64,
        }
    }

    fn opts() -> FetchOptions {
        FetchOptions {
            jobs: 2,
            attempts: 3,
            backoff: Duration::from_millis(1),
            progress: false,
        }
    }

    #[test]
    fn fetches_missing_retries_transients_and_skips_what_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let a = wanted("a.whl", b"aaaa");
        let b = wanted("b.whl", b"bb");
        let src = MapSource {
            files: [
                ("a.whl".to_string(), b"aaaa".to_vec()),
                ("b.whl".to_string(), b"bb".to_vec()),
            ]
            .into(),
            transient_failures: AtomicU32::new(1),
            calls: AtomicU32::new(0),
        };
        let r = cache
            .fetch_all(&[a.clone(), b.clone()], &src, &opts())
            .unwrap();
        assert_eq!((r.fetched, r.cached), (2, 0));
        assert_eq!(src.calls.load(Ordering::SeqCst), 3, "one retry");
        assert_eq!(cache.read_verified(&a).unwrap(), b"aaaa");
        let r = cache.fetch_all(&[a, b], &src, &opts()).unwrap();
        assert_eq!((r.fetched, r.cached), (0, 2));
        // No temporary files are left.
        let names: Vec<_> = fs::read_dir(dir.path().join("sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_tampered_entry_is_discarded_and_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let a = wanted("a.whl", b"good");
        fs::write(cache.path_of(&a.sha256), b"evil").unwrap();
        let err = cache.read_verified(&a).unwrap_err().to_string();
        assert!(
            err.contains("a.whl") && err.contains("does not match"),
            "{err}"
        );
        assert!(!cache.path_of(&a.sha256).exists(), "deleted");
        fs::write(cache.path_of(&a.sha256), b"evil").unwrap();
        let src = MapSource {
            files: [("a.whl".to_string(), b"good".to_vec())].into(),
            transient_failures: AtomicU32::new(0),
            calls: AtomicU32::new(0),
        };
        let r = cache
            .fetch_all(std::slice::from_ref(&a), &src, &opts())
            .unwrap();
        assert_eq!(r.discarded.len(), 1);
        assert_eq!(r.fetched, 1);
        assert_eq!(cache.read_verified(&a).unwrap(), b"good");
    }

    #[test]
    fn wrong_bytes_from_the_server_are_refused_naming_the_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let a = wanted("a.whl", b"good");
        let src = MapSource {
            files: [("a.whl".to_string(), b"bad!".to_vec())].into(),
            transient_failures: AtomicU32::new(0),
            calls: AtomicU32::new(0),
        };
        let err = cache
            .fetch_all(std::slice::from_ref(&a), &src, &opts())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.whl") && err.contains("do not match"),
            "{err}"
        );
        assert!(!cache.path_of(&a.sha256).exists());
        let long = MapSource {
            files: [("a.whl".to_string(), b"good and more".to_vec())].into(),
            transient_failures: AtomicU32::new(0),
            calls: AtomicU32::new(0),
        };
        let err = cache
            .fetch_all(&[a], &long, &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than the locked 4 bytes"), "{err}");
    }

    #[test]
    fn permanent_failures_name_the_artifact_and_offline_lists_everything() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let a = wanted("a.whl", b"a");
        let b = wanted("b.whl", b"b");
        let src = MapSource {
            files: BTreeMap::new(),
            transient_failures: AtomicU32::new(0),
            calls: AtomicU32::new(0),
        };
        let err = cache
            .fetch_all(std::slice::from_ref(&a), &src, &opts())
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.whl") && err.contains("404"), "{err}");
        let err = cache.require_all(&[a, b]).unwrap_err().to_string();
        assert!(
            err.contains("2 artifact(s)") && err.contains("a.whl") && err.contains("b.whl"),
            "{err}"
        );
    }
}
