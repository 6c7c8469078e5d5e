//! The reproducible payload archive (`payload.tar.gz`) and a hostile-input tar reader.
//!
//! Formats: tar as GNU tar writes it (<https://www.gnu.org/software/tar/manual/html_node/Standard.html>),
//! gzip per RFC 1952 (<https://www.rfc-editor.org/rfc/rfc1952>).
//!
//! Writing, the rules that make the bytes depend on the tree alone:
//! - entries in the tree's order (path byte order: parents before children);
//! - GNU headers (`ustar  ` magic): paths over 100 bytes get a `././@LongLink` record, so
//!   no path is too long and no PAX record (which would carry times) is ever written;
//! - mtime = the recipe's `source-date-epoch`, uid/gid 0, empty user and group names,
//!   modes from the tree (already normalised);
//! - gzip header with no file name, mtime 0, OS byte 255 ("unknown"), compressed by
//!   flate2's pure-Rust miniz_oxide backend (the only one Cargo.toml enables) at level
//!   [`GZIP_LEVEL`], in independent 1 MiB pieces on several threads
//!   ([`super::gzip`]). A different backend, level or piece size would give other,
//!   equally valid, bytes: all three are pinned; the thread count changes nothing.
//!
//! Reading ([`read_tar_gz`]) serves the heat-agents source release and payloads read back
//! by `graft verify --rebuild` and tests: absolute paths, `..`, links whose target leaves
//! the archive's root, hard links, devices and oversized members are rejected, naming
//! the archive and the member.

use std::io::{self, Read, Write};

use thiserror::Error;

use super::tree::{Entry, Node, Tree};

/// The deflate level of the payload. Measured on the debian-12 Heat agent (84 MB of
/// files): level 5 gives 23.0 MB for 2.1 s of CPU, level 6 22.7 MB for 3.2 s, level 9
/// 22.6 MB for 6.1 s, level 4 23.2 MB for 1.8 s. Part of the format: changing it changes
/// every payload's bytes.
pub const GZIP_LEVEL: u32 = 5;

/// At most this many members are read from one archive.
const MAX_MEMBERS: usize = 1_000_000;
/// At most this many bytes in one member.
const MAX_MEMBER_SIZE: u64 = 512 << 20;
/// At most this many bytes in one archive, unpacked.
const MAX_TOTAL_SIZE: u64 = 4 << 30;

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("archive {archive}: {message}")]
    Read { archive: String, message: String },
    #[error("archive {archive}: member {member:?}: {message}")]
    Member {
        archive: String,
        member: String,
        message: String,
    },
}

/// Writes `tree` as a gzip-compressed tar to `out`, returning `out` when done.
pub fn write_tar_gz<W: Write>(tree: &Tree, epoch: i64, out: W) -> io::Result<W> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let gz = super::gzip::ParallelGzWriter::new(out, GZIP_LEVEL, threads)?;
    let mut builder = tar::Builder::new(gz);
    let mtime = u64::try_from(epoch)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative epoch"))?;
    for (path, entry) in tree.iter() {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mode(entry.mode);
        match &entry.node {
            Node::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), io::empty())?;
            }
            Node::File { data, .. } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            Node::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
        }
    }
    let gz = builder.into_inner()?;
    gz.finish()
}

/// One member of an archive that was read, with its path after stripping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub path: String,
    /// Its mode is the stored permission bits (`& 0o7777`), not normalised.
    pub entry: Entry,
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
}

/// Reads a `.tar.gz` as data. `strip` leading components are removed from every path
/// (members with fewer components are skipped, as `tar --strip-components` does);
/// `archive` names the archive in errors.
pub fn read_tar_gz(
    reader: impl Read,
    strip: usize,
    archive: &str,
) -> Result<Vec<Member>, ArchiveError> {
    let read_err = |e: io::Error| ArchiveError::Read {
        archive: archive.into(),
        message: e.to_string(),
    };
    let gz = flate2::read::GzDecoder::new(reader);
    let mut tar = tar::Archive::new(gz);
    let mut out = Vec::new();
    let mut total = 0u64;
    for (index, entry) in tar.entries().map_err(read_err)?.enumerate() {
        if index >= MAX_MEMBERS {
            return Err(ArchiveError::Read {
                archive: archive.into(),
                message: format!("more than {MAX_MEMBERS} members"),
            });
        }
        let mut entry = entry.map_err(read_err)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let err = |message: String| ArchiveError::Member {
            archive: archive.into(),
            member: raw_path.clone(),
            message,
        };
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let path = member_path(&raw_path).map_err(&err)?;
        let components: Vec<&str> = path.split('/').collect();
        if components.len() <= strip {
            continue;
        }
        let path = components[strip..].join("/");
        let header = entry.header();
        let raw_mode = header
            .mode()
            .map_err(|e| err(format!("bad mode field: {e}")))?
            & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let uid = header.uid().unwrap_or(u64::MAX);
        let gid = header.gid().unwrap_or(u64::MAX);
        let node = if kind.is_dir() {
            Node::Dir
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.size();
            if size > MAX_MEMBER_SIZE {
                return Err(err(format!(
                    "{size} bytes, more than the {MAX_MEMBER_SIZE} graft accepts"
                )));
            }
            total = total.saturating_add(size);
            if total > MAX_TOTAL_SIZE {
                return Err(err(format!(
                    "the archive unpacks to more than {MAX_TOTAL_SIZE} bytes"
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| err(format!("cannot read: {e}")))?;
            if data.len() as u64 != size {
                return Err(err("truncated".into()));
            }
            let sha256 = crate::util::sha256_hex(&data);
            Node::File { data, sha256 }
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| err("a symbolic link without a target".into()))?;
            check_link_target(&path, &target).map_err(&err)?;
            Node::Symlink { target }
        } else if kind.is_hard_link() {
            return Err(err(
                "a hard link (graft reads only files, directories and symbolic links)".into(),
            ));
        } else {
            return Err(err(format!(
                "entry type {:?} (device, FIFO or unknown) is not accepted",
                kind
            )));
        };
        out.push(Member {
            path,
            entry: Entry {
                node,
                mode: raw_mode,
            },
            mtime,
            uid,
            gid,
        });
    }
    Ok(out)
}

/// A member's path made relative and checked: no absolute path, no `..`.
fn member_path(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') {
        return Err("an absolute path".into());
    }
    if raw.contains('\0') || raw.contains('\\') {
        return Err("a NUL or backslash in the path".into());
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("a `..` component leaves the archive's root".into()),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err("an empty path".into());
    }
    Ok(parts.join("/"))
}

/// A relative link target must stay inside the archive's root. Absolute targets are
/// guest paths (a payload's `bin/python3` → `/usr/bin/python3`) and are allowed in a
/// payload, but never followed by graft.
fn check_link_target(path: &str, target: &str) -> Result<(), String> {
    if target.is_empty() || target.contains('\0') {
        return Err("an empty link target".into());
    }
    if target.starts_with('/') {
        return Ok(());
    }
    let mut depth: i64 = path.split('/').count() as i64 - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("link target {target:?} leaves the archive's root"));
                }
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut t = Tree::new();
        t.add_file("opt/x/bin/tool", b"#!/bin/sh\n".to_vec(), 0o700)
            .unwrap();
        t.add_file(
            &format!("opt/x/{}/deep.py", "d".repeat(150)),
            b"print()\n".to_vec(),
            0o600,
        )
        .unwrap();
        t.add_symlink("opt/x/bin/python3", "/usr/bin/python3")
            .unwrap();
        t.add_symlink(&format!("opt/x/{}", "l".repeat(120)), &"t".repeat(120))
            .unwrap();
        t
    }

    #[test]
    fn written_archive_reads_back_with_normalised_metadata() {
        let bytes = write_tar_gz(&sample(), 1_700_000_000, Vec::new()).unwrap();
        // gzip header: magic, deflate, no flags (no name), mtime 0, OS 255.
        assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        assert_eq!(bytes[9], 255);
        let members = read_tar_gz(bytes.as_slice(), 0, "t.tar.gz").unwrap();
        let paths: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
        let tree = sample();
        let tree_paths: Vec<&str> = tree.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, tree_paths);
        for m in &members {
            assert_eq!((m.mtime, m.uid, m.gid), (1_700_000_000, 0, 0), "{}", m.path);
            assert_eq!(
                m.entry,
                sample().get(&m.path).unwrap().clone(),
                "{}",
                m.path
            );
        }
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let a = write_tar_gz(&sample(), 5, Vec::new()).unwrap();
        let b = write_tar_gz(&sample(), 5, Vec::new()).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            write_tar_gz(&sample(), 6, Vec::new()).unwrap(),
            "the epoch is in the bytes"
        );
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_old();
            h.set_entry_type(*kind);
            h.set_size(if *kind == tar::EntryType::Regular {
                1
            } else {
                0
            });
            h.set_mode(0o644);
            // Write the name bytes directly: the tar crate refuses `..` in set_path.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            let data: &[u8] = if *kind == tar::EntryType::Regular {
                b"x"
            } else {
                b""
            };
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn hostile_members_are_rejected_naming_the_archive() {
        let cases: &[(&str, tar::EntryType, &str, &str)] = &[
            ("../evil", tar::EntryType::Regular, "", ".."),
            ("top/../../evil", tar::EntryType::Regular, "", ".."),
            ("/etc/passwd", tar::EntryType::Regular, "", "absolute"),
            ("top/link", tar::EntryType::Symlink, "../../etc", "leaves"),
            ("top/hard", tar::EntryType::Link, "top/x", "hard link"),
            ("top/dev", tar::EntryType::Char, "", "device"),
        ];
        for (path, kind, link, word) in cases {
            let bytes = raw_tar(&[(path, *kind, link)]);
            let err = read_tar_gz(bytes.as_slice(), 1, "heat-agents.tar.gz")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("heat-agents.tar.gz") && err.contains(word),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn strip_components_drops_the_top_directory() {
        let bytes = raw_tar(&[
            ("top/", tar::EntryType::Directory, ""),
            ("top/a/b", tar::EntryType::Regular, ""),
            ("top/l", tar::EntryType::Symlink, "a/b"),
        ]);
        let members = read_tar_gz(bytes.as_slice(), 1, "x").unwrap();
        let paths: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["a/b", "l"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x1f\x8b\x08\x00garbage", &[0u8; 1024]] {
            let _ = read_tar_gz(bytes, 0, "x");
        }
        assert!(read_tar_gz(&b"\x1f\x8b\x08\x00garbage"[..], 0, "x").is_err());
    }
}
