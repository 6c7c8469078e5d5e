//! What is installed in the guest, read from its files (never by running anything):
//! OS release, Python versions, glibc version, architecture, init system, cloud-init,
//! SELinux mode. Each fact is `None` when the guest does not say, never a guess.

use std::collections::BTreeSet;

use serde::Serialize;

use super::guestfs::Guest;

/// `/etc/os-release` (os-release(5)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    pub name: Option<String>,
    pub version_codename: Option<String>,
    pub id_like: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PythonInfo {
    /// The version `/usr/bin/python3` leads to (e.g. `3.11`), if it exists.
    pub default: Option<String>,
    /// What `/usr/bin/python3` resolves to inside the guest.
    pub default_path: Option<String>,
    /// Every `pythonX.Y` found in /usr/bin, /usr/lib and /usr/local/bin, sorted by version.
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CloudInit {
    /// The version from the distribution metadata (`cloud_init-<v>.dist-info`/`.egg-info`).
    pub version: Option<String>,
    /// Where that metadata, or else the `cloud-init` program, was found.
    pub found_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestFacts {
    pub os: Option<OsRelease>,
    pub python: PythonInfo,
    pub glibc: Option<String>,
    /// `x86_64`, `aarch64`, `i686`, `armhf`, `riscv64`, `ppc64le`, `s390x` (uname -m style).
    pub architecture: Option<String>,
    /// Where the architecture was read from (an ELF header).
    pub architecture_from: Option<String>,
    /// `systemd`, `sysvinit`, `openrc`, `upstart`, `busybox`, or null.
    pub init: Option<String>,
    pub cloud_init: Option<CloudInit>,
    /// `enforcing`, `permissive`, `disabled` from /etc/selinux/config; null without it.
    pub selinux: Option<String>,
}

pub fn inspect(g: &Guest) -> GuestFacts {
    let python = python(g);
    let arch = architecture(g);
    GuestFacts {
        os: os_release(g),
        cloud_init: cloud_init(g, &python),
        python,
        glibc: glibc(g),
        architecture: arch.as_ref().map(|(a, _)| a.clone()),
        architecture_from: arch.map(|(_, p)| p),
        init: init_system(g),
        selinux: selinux(g),
    }
}

/// Parses os-release text: `KEY=value`, values optionally quoted with `"` or `'`, with
/// backslash escapes inside double quotes.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        let slot = match key.trim() {
            "ID" => &mut os.id,
            "VERSION_ID" => &mut os.version_id,
            "PRETTY_NAME" => &mut os.pretty_name,
            "NAME" => &mut os.name,
            "VERSION_CODENAME" => &mut os.version_codename,
            "ID_LIKE" => &mut os.id_like,
            _ => continue,
        };
        *slot = Some(value);
    }
    os
}

fn unquote(v: &str) -> String {
    let bytes = v.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        let inner = &v[1..v.len() - 1];
        if bytes[0] == b'"' {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            return out;
        }
        return inner.to_string();
    }
    v.to_string()
}

fn os_release(g: &Guest) -> Option<OsRelease> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| g.read(p).ok())
        .map(|b| parse_os_release(&String::from_utf8_lossy(&b)))
}

/// `3.11` from `python3.11`; `None` for `python3`, `python3.11-config`, `python3.11m`.
fn python_version_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix("python")?;
    let (major, minor) = rest.split_once('.')?;
    if major.is_empty()
        || minor.is_empty()
        || !major.bytes().all(|b| b.is_ascii_digit())
        || !minor.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(format!("{major}.{minor}"))
}

/// A dotted version as numbers, for ordering ("3.10" after "3.9").
pub(crate) fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn python(g: &Guest) -> PythonInfo {
    let mut info = PythonInfo::default();
    if let Ok(resolved) = g.resolve("/usr/bin/python3", true) {
        info.default = resolved.rsplit('/').next().and_then(python_version_of);
        info.default_path = Some(resolved);
    }
    let mut versions = BTreeSet::new();
    for dir in ["/usr/bin", "/usr/lib", "/usr/local/bin", "/usr/lib64"] {
        for name in g.names_in(dir) {
            if let Some(v) = python_version_of(&name) {
                versions.insert(v);
            }
        }
    }
    let mut versions: Vec<String> = versions.into_iter().collect();
    versions.sort_by_key(|v| version_key(v));
    info.versions = versions;
    info
}

const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/i386-linux-gnu",
    "/usr/lib/arm-linux-gnueabihf",
    "/usr/lib/riscv64-linux-gnu",
    "/usr/lib/powerpc64le-linux-gnu",
    "/usr/lib/s390x-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/lib",
];

/// glibc's version: from an old-style `libc-2.31.so` file name, else from the
/// "release version 2.36" banner inside `libc.so.6`.
fn glibc(g: &Guest) -> Option<String> {
    for dir in LIB_DIRS {
        for name in g.names_in(dir) {
            if let Some(v) = name
                .strip_prefix("libc-")
                .and_then(|r| r.strip_suffix(".so"))
            {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    return Some(v.to_string());
                }
            }
        }
    }
    for dir in LIB_DIRS {
        let path = format!("{dir}/libc.so.6");
        if let Ok(bytes) = g.read(&path) {
            if let Some(v) = banner_version(&bytes) {
                return Some(v);
            }
        }
    }
    None
}

/// Finds `release version X.Y` (glibc's banner) in `bytes`.
fn banner_version(bytes: &[u8]) -> Option<String> {
    let needle = b"release version ";
    let pos = bytes.windows(needle.len()).position(|w| w == needle)?;
    let rest = &bytes[pos + needle.len()..];
    let end = rest
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(rest.len());
    let v = std::str::from_utf8(&rest[..end])
        .ok()?
        .trim_end_matches('.');
    (!v.is_empty() && v.contains('.')).then(|| v.to_string())
}

/// The machine of an ELF file, uname -m style.
pub fn elf_architecture(h: &[u8]) -> Option<String> {
    if h.len() < 20 || h[..4] != *b"\x7fELF" {
        return None;
    }
    let class64 = h[4] == 2;
    let little = h[5] == 1;
    let machine = if little {
        u16::from_le_bytes([h[18], h[19]])
    } else {
        u16::from_be_bytes([h[18], h[19]])
    };
    let arch = match (machine, class64, little) {
        (0x3E, true, _) => "x86_64",
        (0x03, false, _) => "i686",
        (0xB7, true, _) => "aarch64",
        (0x28, false, _) => "armhf",
        (0xF3, true, _) => "riscv64",
        (0x15, true, true) => "ppc64le",
        (0x15, true, false) => "ppc64",
        (0x16, true, _) => "s390x",
        _ => return None,
    };
    Some(arch.to_string())
}

fn architecture(g: &Guest) -> Option<(String, String)> {
    for p in ["/bin/sh", "/usr/bin/env", "/sbin/init", "/bin/ls"] {
        let Ok(resolved) = g.resolve(p, true) else {
            continue;
        };
        if let Ok(bytes) = g.read(&resolved) {
            if let Some(a) = elf_architecture(&bytes[..bytes.len().min(64)]) {
                return Some((a, resolved));
            }
        }
    }
    None
}

fn init_system(g: &Guest) -> Option<String> {
    if let Ok(target) = g.resolve("/sbin/init", true) {
        let name = target.rsplit('/').next().unwrap_or("");
        let kind = match name {
            "systemd" => Some("systemd"),
            "openrc-init" => Some("openrc"),
            "busybox" => Some("busybox"),
            "upstart" => Some("upstart"),
            _ => None,
        };
        if let Some(k) = kind {
            return Some(k.to_string());
        }
        if g.exists("/etc/init.d/rc") || g.exists("/etc/inittab") {
            if g.exists("/sbin/openrc") || g.exists("/usr/sbin/openrc") {
                return Some("openrc".into());
            }
            if g.exists("/sbin/initctl") && g.exists("/etc/init") {
                return Some("upstart".into());
            }
            return Some("sysvinit".into());
        }
    }
    None
}

/// `22.4.2` from `cloud_init-22.4.2.egg-info`, `cloud_init-23.1-py3.11.egg-info` or
/// `cloud_init-24.1.dist-info`.
fn cloud_init_version_of(name: &str) -> Option<String> {
    let rest = name
        .strip_prefix("cloud_init-")
        .or_else(|| name.strip_prefix("cloud-init-"))?;
    let rest = rest
        .strip_suffix(".egg-info")
        .or_else(|| rest.strip_suffix(".dist-info"))?;
    let v = rest.split("-py").next()?;
    (!v.is_empty()).then(|| v.to_string())
}

fn cloud_init(g: &Guest, python: &PythonInfo) -> Option<CloudInit> {
    let mut dirs = vec!["/usr/lib/python3/dist-packages".to_string()];
    for v in &python.versions {
        for base in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
            dirs.push(format!("{base}/python{v}/site-packages"));
            dirs.push(format!("{base}/python{v}/dist-packages"));
        }
    }
    for dir in &dirs {
        for name in g.names_in(dir) {
            if let Some(version) = cloud_init_version_of(&name) {
                return Some(CloudInit {
                    version: Some(version),
                    found_at: format!("{dir}/{name}"),
                });
            }
        }
    }
    for p in ["/usr/bin/cloud-init", "/usr/local/bin/cloud-init"] {
        if g.exists(p) {
            return Some(CloudInit {
                version: None,
                found_at: p.to_string(),
            });
        }
    }
    None
}

fn selinux(g: &Guest) -> Option<String> {
    let text = g.read("/etc/selinux/config").ok()?;
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("SELINUX="))
        .map(|v| unquote(v.trim()).to_ascii_lowercase())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes_and_escapes() {
        let os = parse_os_release("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\n# ID=x\nNAME=\"a \\\"q\\\"\"\n");
        assert_eq!(os.id.as_deref(), Some("debian"));
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os.name.as_deref(), Some("a \"q\""));
    }

    #[test]
    fn names_to_versions() {
        assert_eq!(python_version_of("python3.11").as_deref(), Some("3.11"));
        assert_eq!(python_version_of("python3"), None);
        assert_eq!(python_version_of("python3.11-config"), None);
        assert_eq!(
            cloud_init_version_of("cloud_init-22.4.2.egg-info").as_deref(),
            Some("22.4.2")
        );
        assert_eq!(
            cloud_init_version_of("cloud_init-23.1-py3.11.egg-info").as_deref(),
            Some("23.1")
        );
        assert_eq!(
            cloud_init_version_of("cloud_init-24.1.dist-info").as_deref(),
            Some("24.1")
        );
        assert_eq!(
            banner_version(
                b"xx GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n"
            )
            .as_deref(),
            Some("2.36")
        );
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18] = 0x3E;
        assert_eq!(elf_architecture(&elf).as_deref(), Some("x86_64"));
        elf[18] = 0xB7;
        assert_eq!(elf_architecture(&elf).as_deref(), Some("aarch64"));
        assert_eq!(elf_architecture(b"#!/bin/sh\n"), None);
    }
}
