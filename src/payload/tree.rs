//! The guest file tree a payload is made of: paths relative to the guest's root (no
//! leading slash: `opt/heat-agent/bin/python3`, `etc/systemd/system/x.service`), each a
//! directory, a regular file or a symbolic link, owned by root.
//!
//! Ordering is the byte order of the path strings (a `BTreeMap`), which puts every
//! directory before its children; nothing depends on the order files were added in.
//! Modes are normalised on the way in: directories 0755, files 0755 when any execute bit
//! was asked for and 0644 otherwise, symbolic links 0777.

use std::collections::BTreeMap;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("payload path {path:?}: {message}")]
    BadPath { path: String, message: String },
    #[error("payload path {path:?} is given twice with different contents ({first} and {second})")]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { data: Vec<u8>, sha256: String },
    Symlink { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub node: Node,
    /// Permission bits only (normalised, see the module comment).
    pub mode: u32,
}

impl Entry {
    pub fn kind_name(&self) -> &'static str {
        match self.node {
            Node::Dir => "dir",
            Node::File { .. } => "file",
            Node::Symlink { .. } => "symlink",
        }
    }
}

pub const DIR_MODE: u32 = 0o755;
pub const EXEC_MODE: u32 = 0o755;
pub const FILE_MODE: u32 = 0o644;
pub const LINK_MODE: u32 = 0o777;

/// A file's mode from what was asked: executable or not, nothing else.
pub fn file_mode(requested: u32) -> u32 {
    if requested & 0o111 != 0 {
        EXEC_MODE
    } else {
        FILE_MODE
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// A directory and every missing parent.
    pub fn add_dir(&mut self, path: &str) -> Result<(), TreeError> {
        check_path(path)?;
        self.add_parents(path)?;
        self.insert(
            path,
            Entry {
                node: Node::Dir,
                mode: DIR_MODE,
            },
        )
    }

    /// A regular file; `mode`'s execute bits decide between 0755 and 0644.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), TreeError> {
        check_path(path)?;
        self.add_parents(path)?;
        let sha256 = crate::util::sha256_hex(&data);
        self.insert(
            path,
            Entry {
                node: Node::File { data, sha256 },
                mode: file_mode(mode),
            },
        )
    }

    /// A symbolic link; `target` is stored as given (relative or absolute guest path).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), TreeError> {
        check_path(path)?;
        if target.is_empty() || target.contains('\0') {
            return Err(TreeError::BadPath {
                path: path.into(),
                message: format!("link target {target:?} is empty or has a NUL"),
            });
        }
        self.add_parents(path)?;
        self.insert(
            path,
            Entry {
                node: Node::Symlink {
                    target: target.into(),
                },
                mode: LINK_MODE,
            },
        )
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Every entry, in archive order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The entries in path order, by value (no copy of the file data).
    pub fn into_entries(self) -> impl Iterator<Item = (String, Entry)> {
        self.entries.into_iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of regular files and the sum of their sizes.
    pub fn file_stats(&self) -> (usize, u64) {
        self.entries
            .values()
            .fold((0, 0), |(n, bytes), e| match &e.node {
                Node::File { data, .. } => (n + 1, bytes + data.len() as u64),
                _ => (n, bytes),
            })
    }

    fn add_parents(&mut self, path: &str) -> Result<(), TreeError> {
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            let parent = &path[..end + pos];
            match self.entries.get(parent) {
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(other) => {
                    return Err(TreeError::BadPath {
                        path: path.into(),
                        message: format!(
                            "its parent {parent:?} is a {}, not a directory",
                            other.kind_name()
                        ),
                    })
                }
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Entry {
                            node: Node::Dir,
                            mode: DIR_MODE,
                        },
                    );
                }
            }
            end += pos + 1;
        }
        Ok(())
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), TreeError> {
        if let Some(old) = self.entries.get(path) {
            if *old == entry {
                return Ok(());
            }
            return Err(TreeError::Conflict {
                path: path.into(),
                first: describe(old),
                second: describe(&entry),
            });
        }
        self.entries.insert(path.to_string(), entry);
        Ok(())
    }
}

fn describe(e: &Entry) -> String {
    match &e.node {
        Node::Dir => "a directory".into(),
        Node::File { sha256, data } => format!(
            "a file of {} bytes, sha256 {}, mode {:o}",
            data.len(),
            &sha256[..12],
            e.mode
        ),
        Node::Symlink { target } => format!("a link to {target:?}"),
    }
}

/// A payload path: relative, `/`-separated, no empty, `.` or `..` component, no NUL,
/// no trailing slash.
pub fn check_path(path: &str) -> Result<(), TreeError> {
    let bad = |m: &str| {
        Err(TreeError::BadPath {
            path: path.into(),
            message: m.into(),
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.starts_with('/') {
        return bad("absolute (payload paths are relative to the guest root)");
    }
    if path.contains('\0') {
        return bad("contains NUL");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("has an empty, `.` or `..` component");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_order_is_by_path() {
        let mut t = Tree::new();
        t.add_file("opt/a/z", b"z".to_vec(), 0o600).unwrap();
        t.add_file("opt/a-b", b"x".to_vec(), 0o700).unwrap();
        t.add_symlink("opt/a/bin/py", "/usr/bin/python3").unwrap();
        let paths: Vec<&str> = t.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "opt",
                "opt/a",
                "opt/a-b",
                "opt/a/bin",
                "opt/a/bin/py",
                "opt/a/z"
            ]
        );
        assert_eq!(t.get("opt/a/z").unwrap().mode, 0o644);
        assert_eq!(t.get("opt/a-b").unwrap().mode, 0o755);
        assert_eq!(t.get("opt/a/bin/py").unwrap().mode, 0o777);
    }

    #[test]
    fn identical_duplicates_are_fine_and_conflicts_are_named() {
        let mut t = Tree::new();
        t.add_file("a/x", b"1".to_vec(), 0o644).unwrap();
        t.add_file("a/x", b"1".to_vec(), 0o644).unwrap();
        let err = t
            .add_file("a/x", b"2".to_vec(), 0o644)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a/x") && err.contains("twice"), "{err}");
        let err = t
            .add_file("a/x/y", b"2".to_vec(), 0o644)
            .unwrap_err()
            .to_string();
        assert!(err.contains("parent \"a/x\" is a file"), "{err}");
    }

    #[test]
    fn bad_paths_are_refused() {
        let mut t = Tree::new();
        for p in ["", "/etc/x", "a/../b", "a//b", "./a", "a/"] {
            assert!(t.add_dir(p).is_err(), "{p:?}");
        }
    }
}
