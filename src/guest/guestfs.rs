//! A read-only view of the guest's root filesystem (ext2/3/4, read with `ext4-view`), with
//! paths resolved inside the guest: symlinks are followed by graft, one component at a
//! time, never through the host. An absolute link target resolves against the guest's
//! root, `..` at the root stays at the root, and more than [`MAX_SYMLINKS`] links in one
//! resolution is an error (a loop), as in the kernel's path walk.

use std::collections::VecDeque;
use std::rc::Rc;

use ext4_view::{Ext4, Ext4Read};
use serde::Serialize;

use crate::disk::BlockDevice;

/// The kernel's limit on symlinks followed in one path resolution.
pub const MAX_SYMLINKS: usize = 40;
/// Files bigger than this are not read into memory by [`Guest::read`].
pub const MAX_READ: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{path}: no such file or directory in the guest")]
    NotFound { path: String },
    #[error("{path}: not a directory in the guest")]
    NotADirectory { path: String },
    #[error("{path}: too many levels of symbolic links (more than {MAX_SYMLINKS}) in the guest")]
    SymlinkLoop { path: String },
    #[error("{path}: guest paths must be absolute (start with /)")]
    NotAbsolute { path: String },
    #[error("{path}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("{path}: is a directory")]
    IsADirectory { path: String },
    #[error("{path}: larger than {MAX_READ} bytes; not read into memory")]
    TooLarge { path: String },
    #[error("reading the guest filesystem at {path}")]
    Ext4 {
        path: String,
        #[source]
        source: ext4_view::Ext4Error,
    },
}

/// `ext4-view`'s reader over a byte window of a shared device.
struct RegionReader {
    dev: Rc<dyn BlockDevice>,
    start: u64,
    len: u64,
}

impl Ext4Read for RegionReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let end = start_byte
            .checked_add(dst.len() as u64)
            .filter(|&e| e <= self.len);
        if end.is_none() {
            return Err(format!("read of {} bytes at {start_byte} is past the end of the filesystem region ({} bytes)", dst.len(), self.len).into());
        }
        self.dev
            .read_at(dst, self.start + start_byte)
            .map_err(|e| Box::new(e) as _)
    }
}

/// The type of a guest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileKind {
    fn from_mode(mode: u16) -> FileKind {
        match mode & 0o170000 {
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o020000 => FileKind::CharDevice,
            0o060000 => FileKind::BlockDevice,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            _ => FileKind::File,
        }
    }
    fn letter(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::CharDevice => 'c',
            FileKind::BlockDevice => 'b',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
        }
    }
}

/// What `lstat` says about a guest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub kind: FileKind,
    /// Permission bits and set-id/sticky bits (no type bits).
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

impl Stat {
    /// `drwxr-xr-x`, as `ls -l` prints it.
    pub fn mode_string(&self) -> String {
        let m = self.mode;
        let mut s = String::with_capacity(10);
        s.push(self.kind.letter());
        let bit = |b: u16, c: char| if m & b != 0 { c } else { '-' };
        let exec =
            |x: u16, special: u16, set: char, unset: char| match (m & x != 0, m & special != 0) {
                (true, true) => set,
                (false, true) => unset,
                (true, false) => 'x',
                (false, false) => '-',
            };
        s.push(bit(0o400, 'r'));
        s.push(bit(0o200, 'w'));
        s.push(exec(0o100, 0o4000, 's', 'S'));
        s.push(bit(0o040, 'r'));
        s.push(bit(0o020, 'w'));
        s.push(exec(0o010, 0o2000, 's', 'S'));
        s.push(bit(0o004, 'r'));
        s.push(bit(0o002, 'w'));
        s.push(exec(0o001, 0o1000, 't', 'T'));
        s
    }
}

/// One entry of a guest directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirEntry {
    /// The name as stored (bytes that are not UTF-8 are shown lossily).
    pub name: String,
    #[serde(flatten)]
    pub stat: Stat,
    /// For symlinks: the target as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// The guest's root filesystem.
pub struct Guest {
    fs: Ext4,
}

fn join(components: &[Vec<u8>]) -> Vec<u8> {
    if components.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for c in components {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

impl Guest {
    /// Loads the ext2/3/4 filesystem in `[start, start+len)` of `dev`.
    pub fn load(dev: Rc<dyn BlockDevice>, start: u64, len: u64) -> Result<Guest, GuestError> {
        let reader = RegionReader { dev, start, len };
        let fs = Ext4::load(Box::new(reader)).map_err(|source| GuestError::Ext4 {
            path: "/".into(),
            source,
        })?;
        Ok(Guest { fs })
    }

    fn ext4_err(path: &[u8], source: ext4_view::Ext4Error) -> GuestError {
        match source {
            ext4_view::Ext4Error::NotFound => GuestError::NotFound { path: show(path) },
            ext4_view::Ext4Error::NotADirectory => GuestError::NotADirectory { path: show(path) },
            ext4_view::Ext4Error::IsADirectory => GuestError::IsADirectory { path: show(path) },
            source => GuestError::Ext4 {
                path: show(path),
                source,
            },
        }
    }

    /// `lstat` of a path that holds no symlink before its last component.
    fn lstat_resolved(&self, path: &[u8]) -> Result<Stat, GuestError> {
        let p = ext4_view::Path::try_from(path).map_err(|e| GuestError::BadPath {
            path: show(path),
            reason: format!("{e:?}"),
        })?;
        let m = self
            .fs
            .symlink_metadata(p)
            .map_err(|e| Self::ext4_err(path, e))?;
        let mode = m.mode();
        let kind = if m.is_symlink() {
            FileKind::Symlink
        } else if m.is_dir() {
            FileKind::Dir
        } else {
            FileKind::from_mode(mode)
        };
        Ok(Stat {
            kind,
            mode: mode & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
        })
    }

    fn read_link_resolved(&self, path: &[u8]) -> Result<Vec<u8>, GuestError> {
        let p = ext4_view::Path::try_from(path).map_err(|e| GuestError::BadPath {
            path: show(path),
            reason: format!("{e:?}"),
        })?;
        let target = self.fs.read_link(p).map_err(|e| Self::ext4_err(path, e))?;
        Ok(target.as_ref().to_vec())
    }

    /// Resolves `path` inside the guest to a path with no symlink in it (or, with
    /// `follow_last == false`, none before its last component). Never leaves the guest root.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, GuestError> {
        self.resolve_bytes(path.as_bytes(), follow_last)
            .map(|p| show(&p))
    }

    fn resolve_bytes(&self, path: &[u8], follow_last: bool) -> Result<Vec<u8>, GuestError> {
        if !path.starts_with(b"/") {
            return Err(GuestError::NotAbsolute { path: show(path) });
        }
        let mut queue: VecDeque<Vec<u8>> = path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut stack: Vec<Vec<u8>> = Vec::new();
        let mut links = 0usize;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                stack.pop(); // at the root, `..` is the root
                continue;
            }
            stack.push(c);
            let candidate = join(&stack);
            let st = self.lstat_resolved(&candidate).map_err(|e| match e {
                GuestError::NotFound { .. } | GuestError::NotADirectory { .. } => {
                    GuestError::NotFound { path: show(path) }
                }
                other => other,
            })?;
            let is_last = queue.iter().all(|c| c.is_empty() || c == b".");
            if st.kind == FileKind::Symlink && (follow_last || !is_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(GuestError::SymlinkLoop { path: show(path) });
                }
                let target = self.read_link_resolved(&candidate)?;
                stack.pop();
                if target.starts_with(b"/") {
                    stack.clear(); // absolute targets are relative to the guest root
                }
                for (i, part) in target.split(|&b| b == b'/').enumerate() {
                    queue.insert(i, part.to_vec());
                }
            } else if st.kind != FileKind::Dir && st.kind != FileKind::Symlink && !is_last {
                return Err(GuestError::NotADirectory {
                    path: show(&candidate),
                });
            }
        }
        Ok(join(&stack))
    }

    /// `stat` (symlinks followed inside the guest).
    pub fn stat(&self, path: &str) -> Result<Stat, GuestError> {
        let r = self.resolve_bytes(path.as_bytes(), true)?;
        self.lstat_resolved(&r)
    }

    /// `lstat`: the last component is not followed.
    pub fn lstat(&self, path: &str) -> Result<Stat, GuestError> {
        let r = self.resolve_bytes(path.as_bytes(), false)?;
        self.lstat_resolved(&r)
    }

    pub fn exists(&self, path: &str) -> bool {
        self.stat(path).is_ok()
    }

    /// The target of the symlink at `path`, as stored.
    pub fn read_link(&self, path: &str) -> Result<String, GuestError> {
        let r = self.resolve_bytes(path.as_bytes(), false)?;
        self.read_link_resolved(&r).map(|t| show(&t))
    }

    /// The bytes of the file at `path` (symlinks followed inside the guest).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, GuestError> {
        let r = self.resolve_bytes(path.as_bytes(), true)?;
        let st = self.lstat_resolved(&r)?;
        if st.kind == FileKind::Dir {
            return Err(GuestError::IsADirectory {
                path: path.to_string(),
            });
        }
        if st.size > MAX_READ {
            return Err(GuestError::TooLarge {
                path: path.to_string(),
            });
        }
        let p = ext4_view::Path::try_from(&r[..]).map_err(|e| GuestError::BadPath {
            path: show(&r),
            reason: format!("{e:?}"),
        })?;
        self.fs.read(p).map_err(|e| Self::ext4_err(&r, e))
    }

    /// The entries of the directory at `path`, sorted by name, without `.` and `..`.
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, GuestError> {
        let (r, names) = self.dir_names(path)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let mut full = if r == b"/" { Vec::new() } else { r.clone() };
            full.push(b'/');
            full.extend_from_slice(&name);
            let stat = self.lstat_resolved(&full)?;
            let link_target = if stat.kind == FileKind::Symlink {
                Some(show(&self.read_link_resolved(&full)?))
            } else {
                None
            };
            out.push(DirEntry {
                name: show(&name),
                stat,
                link_target,
            });
        }
        Ok(out)
    }

    /// The resolved directory and its entry names, sorted, without `.` and `..`.
    fn dir_names(&self, path: &str) -> Result<(Vec<u8>, Vec<Vec<u8>>), GuestError> {
        let r = self.resolve_bytes(path.as_bytes(), true)?;
        let p = ext4_view::Path::try_from(&r[..]).map_err(|e| GuestError::BadPath {
            path: show(&r),
            reason: format!("{e:?}"),
        })?;
        let iter = self.fs.read_dir(p).map_err(|e| Self::ext4_err(&r, e))?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in iter {
            let entry = entry.map_err(|e| Self::ext4_err(&r, e))?;
            let name = entry.file_name().as_ref().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        names.sort();
        Ok((r, names))
    }

    /// The names in a directory, or nothing if it does not exist (inspection helpers).
    pub fn names_in(&self, path: &str) -> Vec<String> {
        self.dir_names(path)
            .map(|(_, v)| v.iter().map(|n| show(n)).collect())
            .unwrap_or_default()
    }
}
