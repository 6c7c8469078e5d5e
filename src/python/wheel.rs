//! Installing a wheel without running anything: the binary distribution format.
//!
//! Spec: <https://packaging.python.org/en/latest/specifications/binary-distribution-format/>
//! (file name, `WHEEL`, `RECORD`, the `.data` directory) and
//! <https://packaging.python.org/en/latest/specifications/recording-installed-packages/>
//! (what an installer writes: `INSTALLER`, `RECORD`). Console-script wrappers follow
//! <https://packaging.python.org/en/latest/specifications/entry-points/>, with the text
//! pip writes (see [`super::scripts`]).
//!
//! A wheel is hostile input: every member name is checked (no absolute path, no `..`, no
//! backslash or NUL, no symlink), sizes are capped before anything is allocated, and every
//! file must be listed in `RECORD` with a hash and size that match its bytes.
//!
//! The result is a list of files relative to the virtual environment's root, placed as pip
//! places them in a venv: purelib and platlib in `lib/pythonX.Y/site-packages`, scripts in
//! `bin`, data at the root, headers in `include/site/pythonX.Y/<name>`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;

use super::scripts;

/// At most this many members in one wheel.
const MAX_MEMBERS: usize = 100_000;
/// At most this many bytes in one member once decompressed.
const MAX_MEMBER_SIZE: u64 = 512 << 20;
/// At most this many bytes in one wheel once decompressed.
const MAX_TOTAL_SIZE: u64 = 2 << 30;

#[derive(Debug, Error)]
pub enum WheelError {
    #[error("wheel {wheel}: not a readable zip archive: {message}")]
    Zip { wheel: String, message: String },
    #[error("wheel {wheel}: member {member:?}: {message}")]
    Member {
        wheel: String,
        member: String,
        message: String,
    },
    #[error("wheel {wheel}: {message}")]
    Invalid { wheel: String, message: String },
}

/// Where a wheel's parts go, relative to the virtual environment's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    /// `lib/pythonX.Y/site-packages`.
    pub site_packages: String,
    /// `bin`.
    pub scripts: String,
    /// `include/site/pythonX.Y` (the distribution's name is appended).
    pub headers: String,
    /// The guest path of the venv's interpreter, for shebangs: `<venv>/bin/python3`.
    pub python: String,
}

/// One file a wheel installs, relative to the venv root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    pub path: String,
    pub data: Vec<u8>,
    pub executable: bool,
}

/// A wheel's parsed file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub distribution: String,
    pub version: String,
}

impl WheelName {
    /// `{distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
    pub fn parse(filename: &str) -> Option<WheelName> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return None;
        }
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(WheelName {
            distribution: parts[0].to_string(),
            version: parts[1].to_string(),
        })
    }
}

/// Installs one wheel (its bytes, named `filename` in errors) into a list of files.
pub fn install(
    filename: &str,
    bytes: &[u8],
    scheme: &Scheme,
) -> Result<Vec<InstalledFile>, WheelError> {
    let invalid = |message: String| WheelError::Invalid {
        wheel: filename.to_string(),
        message,
    };
    let member_err = |member: &str, message: String| WheelError::Member {
        wheel: filename.to_string(),
        member: member.to_string(),
        message,
    };
    let name = WheelName::parse(filename).ok_or_else(|| {
        invalid("the file name is not NAME-VERSION(-BUILD)-PY-ABI-PLATFORM.whl".into())
    })?;

    let members = read_members(filename, bytes)?;

    // The .dist-info directory: the one top-level `*.dist-info` whose name is the
    // distribution's (compared normalised, as pip does).
    let dist_infos: BTreeSet<&str> = members
        .keys()
        .filter_map(|p| p.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    let wanted = super::normalize_name(&name.distribution);
    let dist_info = match dist_infos
        .iter()
        .filter(|d| {
            d.strip_suffix(".dist-info")
                .and_then(|s| s.rsplit_once('-'))
                .map(|(n, _)| super::normalize_name(n))
                == Some(wanted.clone())
        })
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => one.to_string(),
        [] => {
            return Err(invalid(format!(
                "no .dist-info directory for {:?} (found {:?})",
                name.distribution, dist_infos
            )))
        }
        many => return Err(invalid(format!("several .dist-info directories: {many:?}"))),
    };
    let data_dir = format!(
        "{}.data",
        dist_info.strip_suffix(".dist-info").unwrap_or(&dist_info)
    );

    let wheel_meta = members
        .get(&format!("{dist_info}/WHEEL"))
        .ok_or_else(|| invalid(format!("{dist_info}/WHEEL is missing")))?;
    let root_is_purelib = parse_wheel_metadata(filename, &dist_info, &wheel_meta.data)?;
    // In a virtual environment purelib and platlib are the same directory, so the
    // flag changes nothing about placement; it is still checked for well-formedness.
    let _ = root_is_purelib;

    let record_path = format!("{dist_info}/RECORD");
    let record = members
        .get(&record_path)
        .ok_or_else(|| invalid(format!("{record_path} is missing")))?;
    let record = parse_record(filename, &record.data)?;
    check_record(filename, &dist_info, &members, &record)?;

    let mut out: BTreeMap<String, InstalledFile> = BTreeMap::new();
    let place = |out: &mut BTreeMap<String, InstalledFile>,
                 file: InstalledFile|
     -> Result<(), WheelError> {
        let path = file.path.clone();
        if out.insert(path.clone(), file).is_some() {
            return Err(member_err(
                &path,
                "two members of the wheel install to this path".into(),
            ));
        }
        Ok(())
    };
    let dist_info_prefix = format!("{dist_info}/");
    for (path, member) in &members {
        // The wheel's RECORD and signatures are replaced by what an installer writes.
        if path == &record_path
            || path == &format!("{dist_info}/RECORD.jws")
            || path == &format!("{dist_info}/RECORD.p7s")
        {
            continue;
        }
        if path.starts_with(&dist_info_prefix) && path.ends_with("/INSTALLER") {
            continue;
        }
        let (dest, is_script) = if let Some(rest) = path.strip_prefix(&format!("{data_dir}/")) {
            let (key, inner) = rest
                .split_once('/')
                .ok_or_else(|| member_err(path, "a file directly in the .data directory".into()))?;
            match key {
                "purelib" | "platlib" => (join(&scheme.site_packages, inner), false),
                "scripts" => {
                    if inner.contains('/') {
                        return Err(member_err(
                            path,
                            "a script in a subdirectory of .data/scripts".into(),
                        ));
                    }
                    (join(&scheme.scripts, inner), true)
                }
                "data" => (inner.to_string(), false),
                "headers" => (
                    join(&join(&scheme.headers, &name.distribution), inner),
                    false,
                ),
                other => {
                    return Err(member_err(
                        path,
                        format!("unknown .data directory {other:?}"),
                    ))
                }
            }
        } else {
            (join(&scheme.site_packages, path), false)
        };
        check_relative(&dest).map_err(|m| member_err(path, m))?;
        if is_script {
            // pip's rule: a `#!python` first line becomes the interpreter's shebang, and
            // every script is made executable.
            let data = scripts::fix_script_shebang(&member.data, &scheme.python);
            place(
                &mut out,
                InstalledFile {
                    path: dest,
                    data,
                    executable: true,
                },
            )?;
        } else {
            place(
                &mut out,
                InstalledFile {
                    path: dest,
                    data: member.data.clone(),
                    executable: member.executable,
                },
            )?;
        }
    }

    if let Some(ep) = members.get(&format!("{dist_info}/entry_points.txt")) {
        let text = std::str::from_utf8(&ep.data).map_err(|_| {
            member_err(&format!("{dist_info}/entry_points.txt"), "not UTF-8".into())
        })?;
        for script in scripts::parse_console_scripts(text)
            .map_err(|m| member_err(&format!("{dist_info}/entry_points.txt"), m))?
        {
            let dest = join(&scheme.scripts, &script.name);
            check_relative(&dest)
                .map_err(|m| member_err(&format!("{dist_info}/entry_points.txt"), m))?;
            let data = scripts::wrapper(&script, &scheme.python).into_bytes();
            place(
                &mut out,
                InstalledFile {
                    path: dest,
                    data,
                    executable: true,
                },
            )?;
        }
    }

    let installer_path = join(&scheme.site_packages, &format!("{dist_info}/INSTALLER"));
    place(
        &mut out,
        InstalledFile {
            path: installer_path,
            data: b"graft\n".to_vec(),
            executable: false,
        },
    )?;

    // The installed RECORD: every file relative to site-packages, sorted, with its hash
    // and size; RECORD itself without either.
    let record_dest = join(&scheme.site_packages, &record_path);
    let mut rows: Vec<String> = out
        .values()
        .map(|f| {
            let rel = relative_to(&scheme.site_packages, &f.path);
            format!(
                "{},sha256={},{}",
                csv_field(&rel),
                record_hash(&f.data),
                f.data.len()
            )
        })
        .collect();
    rows.push(format!(
        "{},,",
        csv_field(&relative_to(&scheme.site_packages, &record_dest))
    ));
    rows.sort();
    let mut record_text = String::new();
    for row in rows {
        record_text.push_str(&row);
        record_text.push('\n');
    }
    place(
        &mut out,
        InstalledFile {
            path: record_dest,
            data: record_text.into_bytes(),
            executable: false,
        },
    )?;

    Ok(out.into_values().collect())
}

struct Member {
    data: Vec<u8>,
    executable: bool,
}

/// Reads every file member, checking names and capping sizes.
fn read_members(wheel: &str, bytes: &[u8]) -> Result<BTreeMap<String, Member>, WheelError> {
    let zip_err = |e: zip::result::ZipError| WheelError::Zip {
        wheel: wheel.to_string(),
        message: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    if archive.len() > MAX_MEMBERS {
        return Err(WheelError::Invalid {
            wheel: wheel.to_string(),
            message: format!(
                "{} members, more than the {MAX_MEMBERS} graft accepts",
                archive.len()
            ),
        });
    }
    let mut members = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(zip_err)?;
        let raw = String::from_utf8_lossy(file.name_raw()).into_owned();
        let name = file.name().map_err(zip_err)?.into_owned();
        let err = |message: String| WheelError::Member {
            wheel: wheel.to_string(),
            member: raw.clone(),
            message,
        };
        check_member_name(&name).map_err(err)?;
        if file.is_symlink() {
            return Err(err(
                "a symbolic link (wheels hold regular files only)".into()
            ));
        }
        if file.is_dir() {
            continue;
        }
        let size = file.size();
        if size > MAX_MEMBER_SIZE {
            return Err(err(format!(
                "{size} bytes, more than the {MAX_MEMBER_SIZE} graft accepts per file"
            )));
        }
        total = total.saturating_add(size);
        if total > MAX_TOTAL_SIZE {
            return Err(err(format!(
                "the wheel unpacks to more than {MAX_TOTAL_SIZE} bytes"
            )));
        }
        let executable = file.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mut data = Vec::with_capacity(size as usize);
        // `take` bounds the read by the declared size plus one, so a lying header is
        // caught below instead of filling memory.
        (&mut file)
            .take(size + 1)
            .read_to_end(&mut data)
            .map_err(|e| err(format!("cannot decompress: {e}")))?;
        if data.len() as u64 != size {
            return Err(err(format!(
                "holds {} bytes, its header says {size}",
                data.len()
            )));
        }
        if members
            .insert(name.clone(), Member { data, executable })
            .is_some()
        {
            return Err(err("appears twice in the archive".into()));
        }
    }
    Ok(members)
}

/// A member name must be a plain relative path: no absolute path, no `..`, no `.`,
/// no empty component (except a directory's trailing slash), no backslash, no NUL.
fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty name".into());
    }
    if name.starts_with('/') || name.starts_with('\\') || name.as_bytes().get(1) == Some(&b':') {
        return Err("an absolute path".into());
    }
    if name.contains('\\') || name.contains('\0') {
        return Err("a backslash or NUL in the name".into());
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for c in trimmed.split('/') {
        match c {
            ".." => return Err("a `..` component leaves the install root".into()),
            "." | "" => return Err("an empty or `.` component".into()),
            _ => {}
        }
    }
    Ok(())
}

fn check_relative(path: &str) -> Result<(), String> {
    if path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "would be installed at {path:?}, outside the environment"
        ));
    }
    Ok(())
}

/// `WHEEL`: `Wheel-Version` must be 1.x; returns `Root-Is-Purelib`.
fn parse_wheel_metadata(wheel: &str, dist_info: &str, data: &[u8]) -> Result<bool, WheelError> {
    let err = |message: String| WheelError::Member {
        wheel: wheel.into(),
        member: format!("{dist_info}/WHEEL"),
        message,
    };
    let text = std::str::from_utf8(data).map_err(|_| err("not UTF-8".into()))?;
    let mut version = None;
    let mut purelib = None;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "Wheel-Version" => version = Some(v.trim().to_string()),
                "Root-Is-Purelib" => purelib = Some(v.trim().eq_ignore_ascii_case("true")),
                _ => {}
            }
        }
    }
    let version = version.ok_or_else(|| err("no Wheel-Version".into()))?;
    if version.split('.').next() != Some("1") {
        return Err(err(format!(
            "Wheel-Version {version} is not 1.x; graft cannot install it"
        )));
    }
    purelib.ok_or_else(|| err("no Root-Is-Purelib".into()))
}

/// One `RECORD` row: path, optional `algo=urlsafe-b64` hash, optional size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordRow {
    hash: Option<(String, String)>,
    size: Option<u64>,
}

/// RECORD is CSV (Python's `csv` module, default dialect): fields separated by commas,
/// optionally quoted with `"` and `""` inside quotes.
fn parse_record(wheel: &str, data: &[u8]) -> Result<BTreeMap<String, RecordRow>, WheelError> {
    let err = |line: usize, message: String| WheelError::Invalid {
        wheel: wheel.into(),
        message: format!("RECORD line {line}: {message}"),
    };
    let text = std::str::from_utf8(data).map_err(|_| err(0, "not UTF-8".into()))?;
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv(line).ok_or_else(|| err(n, "unbalanced quotes".into()))?;
        if fields.len() != 3 {
            return Err(err(
                n,
                format!("{} fields, expected path,hash,size", fields.len()),
            ));
        }
        let hash = if fields[1].is_empty() {
            None
        } else {
            let (algo, value) = fields[1]
                .split_once('=')
                .ok_or_else(|| err(n, format!("hash {:?} is not ALGO=VALUE", fields[1])))?;
            Some((algo.to_string(), value.to_string()))
        };
        let size = if fields[2].is_empty() {
            None
        } else {
            Some(
                fields[2]
                    .parse::<u64>()
                    .map_err(|_| err(n, format!("size {:?} is not a number", fields[2])))?,
            )
        };
        if rows
            .insert(fields[0].clone(), RecordRow { hash, size })
            .is_some()
        {
            return Err(err(n, format!("{:?} is listed twice", fields[0])));
        }
    }
    Ok(rows)
}

fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut cur));
            at_start = true;
        } else {
            cur.push(c);
            at_start = false;
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur);
    Some(fields)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Every member except RECORD (and its signatures) must be listed with a hash and size
/// that match; every listed path must be a member.
fn check_record(
    wheel: &str,
    dist_info: &str,
    members: &BTreeMap<String, Member>,
    record: &BTreeMap<String, RecordRow>,
) -> Result<(), WheelError> {
    let err = |member: &str, message: String| WheelError::Member {
        wheel: wheel.into(),
        member: member.into(),
        message,
    };
    let unhashed: BTreeSet<String> = ["RECORD", "RECORD.jws", "RECORD.p7s"]
        .iter()
        .map(|f| format!("{dist_info}/{f}"))
        .collect();
    for (path, member) in members {
        if unhashed.contains(path) {
            continue;
        }
        let row = record
            .get(path)
            .ok_or_else(|| err(path, "not listed in RECORD".into()))?;
        let (algo, expected) = row
            .hash
            .as_ref()
            .ok_or_else(|| err(path, "listed in RECORD without a hash".into()))?;
        let actual = match algo.as_str() {
            "sha256" => urlsafe_b64_nopad(&Sha256::digest(&member.data)),
            "sha384" => urlsafe_b64_nopad(&Sha384::digest(&member.data)),
            "sha512" => urlsafe_b64_nopad(&Sha512::digest(&member.data)),
            other => {
                return Err(err(
                    path,
                    format!("RECORD hash algorithm {other:?} is not sha256, sha384 or sha512"),
                ))
            }
        };
        if actual != expected.trim_end_matches('=') {
            return Err(err(
                path,
                format!("RECORD says {algo}={expected}, the contents hash to {algo}={actual}"),
            ));
        }
        if let Some(size) = row.size {
            if size != member.data.len() as u64 {
                return Err(err(
                    path,
                    format!(
                        "RECORD says {size} bytes, the file has {}",
                        member.data.len()
                    ),
                ));
            }
        }
    }
    for path in record.keys() {
        if !members.contains_key(path) && !unhashed.contains(path) {
            return Err(err(path, "listed in RECORD but not in the wheel".into()));
        }
    }
    Ok(())
}

/// RECORD's hash encoding: sha256, urlsafe base64 without padding.
pub fn record_hash(data: &[u8]) -> String {
    urlsafe_b64_nopad(&Sha256::digest(data))
}

fn urlsafe_b64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn join(dir: &str, rest: &str) -> String {
    if dir.is_empty() || dir == "." {
        rest.to_string()
    } else {
        format!("{dir}/{rest}")
    }
}

/// `path` relative to the directory `base` (both relative to the same root), with `..`
/// as needed: `bin/x` from `lib/python3.11/site-packages` is `../../../bin/x`.
fn relative_to(base: &str, path: &str) -> String {
    let base: Vec<&str> = base
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let target: Vec<&str> = path.split('/').collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; base.len() - common];
    parts.extend(&target[common..]);
    parts.join("/")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn scheme() -> Scheme {
        Scheme {
            site_packages: "lib/python3.11/site-packages".into(),
            scripts: "bin".into(),
            headers: "include/site/python3.11".into(),
            python: "/opt/heat-agent/bin/python3".into(),
        }
    }

    /// A wheel from (name, bytes, mode) members; RECORD is written from them unless the
    /// caller gives one.
    pub(crate) fn make_wheel(
        dist: &str,
        version: &str,
        files: &[(&str, &[u8], u32)],
        record: Option<&str>,
    ) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut zw = zip::ZipWriter::new(&mut buf);
            let di = format!("{dist}-{version}.dist-info");
            let wheel_meta =
                b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                    .to_vec();
            let mut all: Vec<(String, Vec<u8>, u32)> = files
                .iter()
                .map(|(n, d, m)| (n.to_string(), d.to_vec(), *m))
                .collect();
            all.push((format!("{di}/WHEEL"), wheel_meta, 0o644));
            let record_text = match record {
                Some(r) => r.to_string(),
                None => {
                    let mut r = String::new();
                    for (n, d, _) in &all {
                        r.push_str(&format!("{n},sha256={},{}\n", record_hash(d), d.len()));
                    }
                    r.push_str(&format!("{di}/RECORD,,\n"));
                    r
                }
            };
            all.push((format!("{di}/RECORD"), record_text.into_bytes(), 0o644));
            for (n, d, m) in all {
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(m);
                zw.start_file(n, opts).unwrap();
                zw.write_all(&d).unwrap();
            }
            zw.finish().unwrap();
        }
        buf.into_inner()
    }

    #[test]
    fn base64_matches_python_urlsafe_b64encode() {
        // python3 -c "import base64,hashlib;print(base64.urlsafe_b64encode(hashlib.sha256(b'').digest()).rstrip(b'='))"
        assert_eq!(
            record_hash(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(urlsafe_b64_nopad(b"\xfb\xff"), "-_8");
        assert_eq!(urlsafe_b64_nopad(b"abcd"), "YWJjZA");
    }

    #[test]
    fn relative_paths_climb_out_of_site_packages() {
        assert_eq!(
            relative_to("lib/python3.11/site-packages", "bin/x"),
            "../../../bin/x"
        );
        assert_eq!(
            relative_to(
                "lib/python3.11/site-packages",
                "lib/python3.11/site-packages/a/b"
            ),
            "a/b"
        );
    }

    #[test]
    fn installs_files_scripts_and_wrappers_with_a_new_record() {
        let ep = b"[console_scripts]\ndemo = demo.cli:main\n\n[other]\nx = y:z\n";
        let wheel = make_wheel(
            "demo",
            "1.0",
            &[
                ("demo/__init__.py", b"", 0o644),
                ("demo/cli.py", b"def main():\n    return 0\n", 0o644),
                (
                    "demo-1.0.data/scripts/run-it",
                    b"#!python\nprint(1)\n",
                    0o644,
                ),
                (
                    "demo-1.0.data/scripts/plain.sh",
                    b"#!/bin/sh\necho\n",
                    0o644,
                ),
                ("demo-1.0.data/data/share/man/demo.1", b".TH demo\n", 0o644),
                ("demo-1.0.dist-info/entry_points.txt", ep, 0o644),
                ("demo-1.0.dist-info/METADATA", b"Name: demo\n", 0o644),
            ],
            None,
        );
        let files = install("demo-1.0-py3-none-any.whl", &wheel, &scheme()).unwrap();
        let by: BTreeMap<_, _> = files.iter().map(|f| (f.path.as_str(), f)).collect();
        let sp = "lib/python3.11/site-packages";
        assert!(by.contains_key(format!("{sp}/demo/cli.py").as_str()));
        assert_eq!(
            by["bin/run-it"].data,
            b"#!/opt/heat-agent/bin/python3\nprint(1)\n"
        );
        assert!(by["bin/run-it"].executable && by["bin/plain.sh"].executable);
        assert_eq!(by["share/man/demo.1"].data, b".TH demo\n");
        let wrapper = String::from_utf8(by["bin/demo"].data.clone()).unwrap();
        assert!(
            wrapper.starts_with("#!/opt/heat-agent/bin/python3\n"),
            "{wrapper}"
        );
        assert!(
            wrapper.contains("from demo.cli import main\n") && wrapper.contains("sys.exit(main())")
        );
        assert_eq!(
            by[format!("{sp}/demo-1.0.dist-info/INSTALLER").as_str()].data,
            b"graft\n"
        );
        let record = String::from_utf8(
            by[format!("{sp}/demo-1.0.dist-info/RECORD").as_str()]
                .data
                .clone(),
        )
        .unwrap();
        let lines: Vec<&str> = record.lines().collect();
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(lines, sorted, "RECORD is sorted");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("../../../bin/demo,sha256=")));
        assert!(lines.contains(&"demo-1.0.dist-info/RECORD,,"));
        assert!(lines.contains(&format!("demo/__init__.py,sha256={},0", record_hash(b"")).as_str()));
        // Every installed file but RECORD is in RECORD with its real hash.
        for f in &files {
            let rel = relative_to(sp, &f.path);
            if rel.ends_with("/RECORD") {
                continue;
            }
            assert!(
                lines.contains(
                    &format!("{rel},sha256={},{}", record_hash(&f.data), f.data.len()).as_str()
                ),
                "{rel}"
            );
        }
    }

    #[test]
    fn record_mismatch_names_the_wheel_and_the_file() {
        let record = format!(
            "evil/x.py,sha256={},5\nevil-1.0.dist-info/WHEEL,sha256={},{}\nevil-1.0.dist-info/RECORD,,\n",
            record_hash(b"other"),
            record_hash(b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n".len()
        );
        let wheel = make_wheel(
            "evil",
            "1.0",
            &[("evil/x.py", b"hello", 0o644)],
            Some(&record),
        );
        let err = install("evil-1.0-py3-none-any.whl", &wheel, &scheme())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("evil-1.0-py3-none-any.whl")
                && err.contains("evil/x.py")
                && err.contains("hash"),
            "{err}"
        );
    }

    #[test]
    fn a_file_missing_from_record_is_an_error() {
        let wheel_meta =
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
        let record = format!(
            "evil-1.0.dist-info/WHEEL,sha256={},{}\nevil-1.0.dist-info/RECORD,,\n",
            record_hash(wheel_meta),
            wheel_meta.len()
        );
        let wheel = make_wheel(
            "evil",
            "1.0",
            &[("evil/hidden.py", b"x", 0o644)],
            Some(&record),
        );
        let err = install("evil-1.0-py3-none-any.whl", &wheel, &scheme())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("evil/hidden.py") && err.contains("not listed in RECORD"),
            "{err}"
        );
    }

    #[test]
    fn hostile_member_names_are_rejected() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\x", "C:/x"] {
            let wheel = make_wheel("evil", "1.0", &[(bad, b"x", 0o644)], Some(""));
            let err = install("evil-1.0-py3-none-any.whl", &wheel, &scheme())
                .unwrap_err()
                .to_string();
            assert!(err.contains("evil-1.0-py3-none-any.whl"), "{bad}: {err}");
            assert!(
                err.contains("absolute") || err.contains("..") || err.contains("backslash"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn symlink_members_are_rejected() {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut zw = zip::ZipWriter::new(&mut buf);
            zw.add_symlink(
                "evil/link",
                "/etc/shadow",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zw.finish().unwrap();
        }
        let err = install("evil-1.0-py3-none-any.whl", &buf.into_inner(), &scheme())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("evil/link") && err.contains("symbolic link"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"PK\x03\x04garbage", &[0u8; 100]] {
            assert!(install("x-1.0-py3-none-any.whl", bytes, &scheme()).is_err());
        }
    }

    #[test]
    fn csv_quoting_round_trips() {
        assert_eq!(
            split_csv("\"a,b\",sha256=x,3").unwrap(),
            vec!["a,b", "sha256=x", "3"]
        );
        assert_eq!(split_csv("\"a\"\"b\",,").unwrap(), vec!["a\"b", "", ""]);
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert!(split_csv("\"open,,").is_none());
    }
}
