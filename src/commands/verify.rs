//! `graft verify`: three checks.
//!
//! - `graft verify IMAGE [--manifest M]`: every manifest entry is in the guest with its
//!   type, mode, owner, size, sha256 and link target, the unit is enabled (its
//!   `*.wants/` link resolves to it), and nothing else is under the prefix. Without
//!   `--manifest`, the manifest is the one the payload put in the guest: at
//!   `<prefix>/share/graft/manifest.json` for the recipe's prefix (`--recipe`, when that
//!   file exists), else the only one found by scanning `/opt/*/` and `/usr/local/*/`.
//! - `graft verify IMAGE --lock L --base BASE`: rebuild the payload, inject it into a
//!   temporary copy of BASE in IMAGE's format, and compare the two byte for byte.
//! - `graft verify --rebuild PAYLOAD`: rebuild a payload archive and compare it.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::{GlobalArgs, ImageFormat as FormatArg, OutputArgs, VerifyArgs, VhdType};
use crate::commands::build::{assemble, open_cache, say, Inputs};
use crate::commands::Outcome;
use crate::disk::{Access, BlockDevice, ImageFormat};
use crate::guest::{FileKind, Guest, GuestError};
use crate::payload::archive::{self, Member};
use crate::payload::manifest::{Manifest, IN_GUEST_PATH};
use crate::payload::tree::Node;

pub fn verify(args: &VerifyArgs, global: &GlobalArgs) -> Result<Outcome> {
    match &args.rebuild {
        Some(payload) => verify_rebuild(payload, args, global),
        None => {
            let image = args.image.as_deref().context("give IMAGE")?;
            if args.base.is_some() {
                verify_against_base(image, args, global)
            } else {
                verify_manifest(image, args, global)
            }
        }
    }
}

fn verify_rebuild(
    payload_path: &std::path::Path,
    args: &VerifyArgs,
    global: &GlobalArgs,
) -> Result<Outcome> {
    if args.image.is_some() || args.base.is_some() {
        bail!("--rebuild checks a payload file; it takes no IMAGE or --base");
    }
    let target_name = args
        .target
        .as_deref()
        .context("--rebuild needs --target NAME (the target the payload was built for)")?;
    let inputs = Inputs::load(&args.recipe, &args.lock)?;
    let target = inputs.target(target_name, &args.lock)?;

    let payload = std::fs::read(payload_path)
        .with_context(|| format!("cannot read payload {}", payload_path.display()))?;
    let payload_digest = crate::util::sha256_hex(&payload);
    let label = payload_path.display().to_string();
    let members = archive::read_tar_gz(payload.as_slice(), 0, &label)?;
    // The payload says which prefix it was built for, in its in-guest manifest.
    let prefix = find_prefix(&members, &inputs.recipe.prefix).with_context(|| {
        format!("{label} holds no graft manifest (…/{IN_GUEST_PATH}); is it a graft payload?")
    })?;

    let cache = open_cache(global)?;
    super::fetch::fill_cache(&cache, &inputs, &[target], None, 4, global)?;
    let assembled = assemble(&inputs, target, Some(&prefix), &cache)?;
    let rebuilt = archive::write_tar_gz(&assembled.tree, inputs.lock.source_date_epoch, Vec::new())
        .context("cannot write the rebuilt payload in memory")?;
    let rebuilt_digest = crate::util::sha256_hex(&rebuilt);

    let difference = if rebuilt_digest == payload_digest {
        None
    } else {
        let theirs = members;
        let ours = archive::read_tar_gz(rebuilt.as_slice(), 0, "rebuilt payload")?;
        Some(first_difference(&theirs, &ours))
    };
    if global.json {
        let doc = serde_json::json!({
            "payload": label,
            "verified": difference.is_none(),
            "payload_sha256": payload_digest,
            "rebuilt_sha256": rebuilt_digest,
            "difference": difference,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    match difference {
        None => {
            say(
                global,
                format!(
                    "Verified {label}: rebuilt from {} (target {}), sha256 {payload_digest}",
                    args.lock.display(),
                    target.name
                ),
            );
            Ok(Outcome::Ok)
        }
        Some(d) => {
            if !global.json {
                eprintln!("{label} differs from its rebuild (sha256 {payload_digest}, rebuilt {rebuilt_digest}): {d}");
            }
            Ok(Outcome::Differs)
        }
    }
}

fn find_prefix(members: &[Member], recipe_prefix: &str) -> Option<String> {
    let manifests: Vec<&Member> = members
        .iter()
        .filter(|m| m.path.ends_with(&format!("/{IN_GUEST_PATH}")))
        .collect();
    let preferred = format!(
        "{}/{IN_GUEST_PATH}",
        recipe_prefix.trim_start_matches('/').trim_end_matches('/')
    );
    let chosen = manifests
        .iter()
        .find(|m| m.path == preferred)
        .or_else(|| manifests.first())?;
    if let Node::File { data, .. } = &chosen.entry.node {
        if let Ok(m) = Manifest::from_json(&String::from_utf8_lossy(data)) {
            return Some(m.prefix);
        }
    }
    // An unreadable manifest: fall back on its place in the tree.
    chosen
        .path
        .strip_suffix(&format!("/{IN_GUEST_PATH}"))
        .map(|p| format!("/{p}"))
}

/// The first entry, in archive order, where the payload (`theirs`) and the rebuild
/// (`ours`) disagree, and how.
pub fn first_difference(theirs: &[Member], ours: &[Member]) -> String {
    let mut i = 0;
    let mut j = 0;
    while i < theirs.len() || j < ours.len() {
        match (theirs.get(i), ours.get(j)) {
            (Some(t), Some(o)) if t.path == o.path => {
                if let Some(how) = compare(t, o) {
                    return format!("/{}: {how}", t.path);
                }
                i += 1;
                j += 1;
            }
            (Some(t), Some(o)) if t.path < o.path => {
                return format!("/{}: extra (in the payload, not in the rebuild)", t.path)
            }
            (Some(_), Some(o)) => {
                return format!("/{}: missing (in the rebuild, not in the payload)", o.path)
            }
            (Some(t), None) => {
                return format!("/{}: extra (in the payload, not in the rebuild)", t.path)
            }
            (None, Some(o)) => {
                return format!("/{}: missing (in the rebuild, not in the payload)", o.path)
            }
            (None, None) => break,
        }
    }
    "every entry is the same; the archive's encoding differs (tar headers or gzip stream)".into()
}

fn compare(t: &Member, o: &Member) -> Option<String> {
    let kind = |m: &Member| match &m.entry.node {
        Node::Dir => "directory",
        Node::File { .. } => "file",
        Node::Symlink { .. } => "symbolic link",
    };
    match (&t.entry.node, &o.entry.node) {
        (
            Node::File {
                sha256: a,
                data: da,
            },
            Node::File {
                sha256: b,
                data: db,
            },
        ) if a != b => {
            return Some(format!(
                "content differs (payload: {} bytes, sha256 {a}; rebuild: {} bytes, sha256 {b})",
                da.len(),
                db.len()
            ))
        }
        (Node::Symlink { target: a }, Node::Symlink { target: b }) if a != b => {
            return Some(format!(
                "link target differs (payload: {a:?}; rebuild: {b:?})"
            ))
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            return Some(format!(
                "type differs (payload: {}; rebuild: {})",
                kind(t),
                kind(o)
            ))
        }
        _ => {}
    }
    if t.entry.mode != o.entry.mode {
        return Some(format!(
            "mode differs (payload: {:04o}; rebuild: {:04o})",
            t.entry.mode, o.entry.mode
        ));
    }
    if (t.uid, t.gid) != (o.uid, o.gid) {
        return Some(format!(
            "owner differs (payload: {}:{}; rebuild: {}:{})",
            t.uid, t.gid, o.uid, o.gid
        ));
    }
    if t.mtime != o.mtime {
        return Some(format!(
            "mtime differs (payload: {}; rebuild: {})",
            t.mtime, o.mtime
        ));
    }
    None
}

/// One way the guest differs from the manifest.
#[derive(Debug, Clone, serde::Serialize)]
struct Finding {
    /// `missing`, `changed`, `extra` or `not-enabled`.
    kind: &'static str,
    path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

/// Bounds the walk of the prefix for extra files.
const MAX_WALK: usize = 2_000_000;

/// Finds the manifest the payload put in the guest (see the module comment).
fn manifest_in_guest(g: &Guest, recipe: &Path, image: &Path) -> Result<(String, Manifest)> {
    let mut looked = Vec::new();
    let mut found = Vec::new();
    if let Ok(text) = std::fs::read_to_string(recipe) {
        if let Ok(r) = crate::recipe::Recipe::parse(&text, &recipe.display().to_string()) {
            let p = format!("{}/{IN_GUEST_PATH}", r.prefix.trim_end_matches('/'));
            looked.push(p.clone());
            if g.stat(&p).is_ok() {
                found.push(p);
            }
        }
    }
    if found.is_empty() {
        for top in ["/opt", "/usr/local"] {
            looked.push(format!("{top}/*/{IN_GUEST_PATH}"));
            for name in g.names_in(top) {
                let p = format!("{top}/{name}/{IN_GUEST_PATH}");
                if g.stat(&p).is_ok() {
                    found.push(p);
                }
            }
        }
    }
    match found.len() {
        0 => bail!(
            "{}: no graft manifest in the guest (looked at {}); was `graft inject` run on this image? Give the manifest with --manifest",
            image.display(),
            looked.join(", ")
        ),
        1 => {}
        _ => bail!("{}: several graft manifests in the guest ({}); pick one with --manifest (a host copy)", image.display(), found.join(", ")),
    }
    let path = found.remove(0);
    let bytes = g
        .read(&path)
        .with_context(|| format!("{}: reading {path}", image.display()))?;
    let m = Manifest::from_json(&String::from_utf8_lossy(&bytes))
        .with_context(|| format!("{}: {path} is not a graft manifest", image.display()))?;
    Ok((path, m))
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::Dir => "dir",
        FileKind::File => "file",
        FileKind::Symlink => "symlink",
        FileKind::CharDevice => "char device",
        FileKind::BlockDevice => "block device",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
    }
}

/// Compares the guest with every manifest entry, the unit's enablement and the prefix's
/// contents. `manifest_path` (the in-guest copy, which cannot list itself) is not extra.
fn check_guest(g: &Guest, m: &Manifest, manifest_path: &str) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut listed = BTreeSet::new();
    let prefix = m.prefix.trim_end_matches('/');
    for e in &m.entries {
        listed.insert(e.path.clone());
        // Directories outside the prefix (`/opt`, `/etc/systemd/system`) were the guest's
        // before the injection and were kept as they were, symlinks included: they only
        // have to lead to a directory.
        let inside = e.path == prefix || e.path.starts_with(&format!("{prefix}/"));
        if e.kind == "dir" && !inside {
            match g.stat(&e.path) {
                Ok(st) if st.kind == FileKind::Dir => {}
                Ok(st) => out.push(Finding {
                    kind: "changed",
                    path: e.path.clone(),
                    detail: format!("type {}, manifest dir", kind_name(st.kind)),
                }),
                Err(_) => out.push(Finding {
                    kind: "missing",
                    path: e.path.clone(),
                    detail: String::new(),
                }),
            }
            continue;
        }
        let st = match g.lstat(&e.path) {
            Ok(st) => st,
            Err(GuestError::NotFound { .. }) => {
                out.push(Finding {
                    kind: "missing",
                    path: e.path.clone(),
                    detail: String::new(),
                });
                continue;
            }
            Err(err) => {
                out.push(Finding {
                    kind: "changed",
                    path: e.path.clone(),
                    detail: format!("cannot be read: {err}"),
                });
                continue;
            }
        };
        let mut how = Vec::new();
        let kind = kind_name(st.kind);
        if kind != e.kind {
            how.push(format!("type {kind}, manifest {}", e.kind));
        } else {
            let mode = format!("{:04o}", st.mode);
            if e.kind != "symlink" && mode != e.mode {
                how.push(format!("mode {mode}, manifest {}", e.mode));
            }
            if (st.uid, st.gid) != (e.uid, e.gid) {
                how.push(format!(
                    "owner {}:{}, manifest {}:{}",
                    st.uid, st.gid, e.uid, e.gid
                ));
            }
            match e.kind.as_str() {
                "file" => {
                    if st.size != e.size {
                        how.push(format!("size {}, manifest {}", st.size, e.size));
                    }
                    let data = g
                        .read(&e.path)
                        .with_context(|| format!("reading {}", e.path))?;
                    let sha = crate::util::sha256_hex(&data);
                    if Some(&sha) != e.sha256.as_ref() {
                        how.push(format!(
                            "sha256 {sha}, manifest {}",
                            e.sha256.as_deref().unwrap_or("none")
                        ));
                    }
                }
                "symlink" => {
                    let t = g
                        .read_link(&e.path)
                        .with_context(|| format!("reading link {}", e.path))?;
                    if Some(&t) != e.target.as_ref() {
                        how.push(format!(
                            "link target {t:?}, manifest {:?}",
                            e.target.as_deref().unwrap_or("")
                        ));
                    }
                }
                _ => {}
            }
        }
        if !how.is_empty() {
            out.push(Finding {
                kind: "changed",
                path: e.path.clone(),
                detail: how.join("; "),
            });
        }
    }
    // Enabled: some `*.wants/<unit>` link resolves, inside the guest, to the unit.
    if let Some(unit) = &m.unit {
        let name = unit.rsplit('/').next().unwrap_or(unit);
        let mut links: Vec<String> = m
            .entries
            .iter()
            .filter(|e| e.kind == "symlink" && e.path.ends_with(&format!(".wants/{name}")))
            .map(|e| e.path.clone())
            .collect();
        if links.is_empty() {
            links.push(format!(
                "/etc/systemd/system/multi-user.target.wants/{name}"
            ));
        }
        let unit_resolved = g.resolve(unit, true).ok();
        let enabled = links
            .iter()
            .any(|l| unit_resolved.is_some() && g.resolve(l, true).ok() == unit_resolved);
        if !enabled {
            out.push(Finding {
                kind: "not-enabled",
                path: unit.clone(),
                detail: format!("no link resolving to it at {}", links.join(", ")),
            });
        }
    }
    // Extra: under the prefix, not in the manifest.
    let mut stack = vec![m.prefix.trim_end_matches('/').to_string()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let entries = match g.read_dir(&dir) {
            Ok(e) => e,
            Err(_) => continue, // the prefix itself missing is already reported
        };
        for e in entries {
            seen += 1;
            if seen > MAX_WALK {
                bail!(
                    "more than {MAX_WALK} entries under {}: not walked to the end",
                    m.prefix
                );
            }
            let p = format!("{dir}/{}", e.name);
            if !listed.contains(&p) && p != manifest_path {
                out.push(Finding {
                    kind: "extra",
                    path: p.clone(),
                    detail: String::new(),
                });
            }
            if e.stat.kind == FileKind::Dir {
                stack.push(p);
            }
        }
    }
    out.sort_by(|a, b| (a.path.as_str(), a.kind).cmp(&(b.path.as_str(), b.kind)));
    Ok(out)
}

fn verify_manifest(image: &Path, args: &VerifyArgs, global: &GlobalArgs) -> Result<Outcome> {
    let layout = crate::guest::layout::open(image)
        .with_context(|| format!("opening {}", image.display()))?;
    let g = super::readable_guest(&layout, image)?;
    let (source, manifest) = match &args.manifest {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read manifest {}", p.display()))?;
            (
                p.display().to_string(),
                Manifest::from_json(&text)
                    .with_context(|| format!("{} is not a graft manifest", p.display()))?,
            )
        }
        None => manifest_in_guest(g, &args.recipe, image)?,
    };
    let in_guest_manifest = manifest.manifest_path.clone();
    let findings = check_guest(g, &manifest, &in_guest_manifest)?;
    let count = |k: &str| findings.iter().filter(|f| f.kind == k).count();
    if global.json {
        let doc = serde_json::json!({
            "image": image,
            "manifest": source,
            "target": manifest.target,
            "prefix": manifest.prefix,
            "entries": manifest.entries.len(),
            "verified": findings.is_empty(),
            "findings": findings,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for f in &findings {
            if f.detail.is_empty() {
                eprintln!("  {:<11} {}", f.kind, f.path);
            } else {
                eprintln!("  {:<11} {}: {}", f.kind, f.path, f.detail);
            }
        }
    }
    if findings.is_empty() {
        let unit = manifest
            .unit
            .as_deref()
            .map(|u| format!("; {u} enabled"))
            .unwrap_or_default();
        say(
            global,
            format!(
                "Verified {}: {} entries of {} (target {}) match {source}{unit}",
                image.display(),
                manifest.entries.len(),
                manifest.recipe,
                manifest.target
            ),
        );
        Ok(Outcome::Ok)
    } else {
        if !global.json {
            eprintln!(
                "{} differs from {source}: {} missing, {} changed, {} extra, {} not enabled",
                image.display(),
                count("missing"),
                count("changed"),
                count("extra"),
                count("not-enabled")
            );
        }
        Ok(Outcome::Differs)
    }
}

/// The first byte offset where two devices differ, or where one ends.
fn first_device_difference(a: &dyn BlockDevice, b: &dyn BlockDevice) -> Result<Option<u64>> {
    let len = a.len().min(b.len());
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(ba.len() as u64) as usize;
        a.read_at(&mut ba[..n], off)?;
        b.read_at(&mut bb[..n], off)?;
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .expect("a byte differs");
            return Ok(Some(off + i as u64));
        }
        off += n as u64;
    }
    Ok((a.len() != b.len()).then_some(len))
}

fn first_file_difference(a: &Path, b: &Path) -> Result<Option<u64>> {
    use std::io::Read;
    let mut fa = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(a).with_context(|| format!("reading {}", a.display()))?,
    );
    let mut fb = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(b).with_context(|| format!("reading {}", b.display()))?,
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut off = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(off + i as u64));
        }
        if na != nb {
            return Ok(Some(off + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        off += n as u64;
    }
    fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let k = r.read(&mut buf[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        Ok(n)
    }
}

/// Where a virtual-disk offset lies: which partition, and which 4 KiB block of it.
fn describe_offset(image: &Path, off: u64) -> String {
    if let Ok(layout) = crate::guest::layout::open(image) {
        for r in &layout.regions {
            let p = &r.partition;
            if off >= p.start && off < p.start + p.size {
                return format!("byte {off} of the virtual disk: partition {}, its 4 KiB block {} (byte {} in it)", p.index, (off - p.start) / 4096, off - p.start);
            }
        }
    }
    format!("byte {off} of the virtual disk (outside every partition)")
}

fn verify_against_base(image: &Path, args: &VerifyArgs, global: &GlobalArgs) -> Result<Outcome> {
    let base = args.base.as_deref().expect("checked by the caller");
    if args.manifest.is_some() {
        bail!("--manifest and --base are two different checks; give one");
    }
    let info =
        crate::disk::image_info(image).with_context(|| format!("reading {}", image.display()))?;
    let overlay = !info.backing_chain.is_empty();
    let (format, vhd_type) = match info.format {
        ImageFormat::Raw => (FormatArg::Raw, VhdType::Dynamic),
        ImageFormat::Qcow2 => (FormatArg::Qcow2, VhdType::Dynamic),
        ImageFormat::VhdFixed => (FormatArg::Vhd, VhdType::Fixed),
        ImageFormat::VhdDynamic => (FormatArg::Vhd, VhdType::Dynamic),
    };
    let work = tempfile::Builder::new()
        .prefix("graft-verify-")
        .tempdir()
        .context("creating a temporary directory")?;
    let rebuilt = work.path().join("rebuilt");
    let out = OutputArgs {
        output: Some(rebuilt.clone()),
        in_place: false,
        overlay,
        format: (!overlay).then_some(format),
        vhd_type,
    };
    let target = args.target.as_deref().unwrap_or("auto");
    let source = super::inject::Source::Lock {
        recipe: &args.recipe,
        lock: &args.lock,
        target,
    };
    let quiet = GlobalArgs {
        quiet: true,
        json: false,
        ..global.clone()
    };
    let (plan, _) = super::inject::run_inject(base, &out, &source, false, &quiet)
        .with_context(|| format!("re-injecting into {}", base.display()))?;

    let a = crate::disk::open_image(image, Access::ReadOnly)
        .with_context(|| format!("opening {}", image.display()))?;
    let b = crate::disk::open_image(&rebuilt, Access::ReadOnly)
        .context("opening the re-injected image")?;
    let disk_diff = first_device_difference(&*a, &*b).context("comparing the virtual disks")?;
    drop((a, b));
    // An overlay names its backing file, which depends on where it lies: only its disk
    // content is compared.
    let file_diff = if overlay || disk_diff.is_some() {
        None
    } else {
        first_file_difference(image, &rebuilt)?
    };
    let verdict = match (disk_diff, file_diff) {
        (Some(off), _) => Some(format!(
            "the virtual disks differ first at {}",
            describe_offset(image, off)
        )),
        (None, Some(off)) => Some(format!(
            "the virtual disks are identical, but the {} files differ first at byte {off}",
            info.format.name()
        )),
        (None, None) => None,
    };
    if global.json {
        let doc = serde_json::json!({
            "image": image,
            "base": base,
            "target": plan.manifest.target,
            "verified": verdict.is_none(),
            "disk_first_difference": disk_diff,
            "file_first_difference": file_diff,
            "container_compared": !overlay,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    match verdict {
        None => {
            let what = if overlay {
                "virtual disk identical (overlay: container not compared)"
            } else {
                "byte-identical"
            };
            say(
                global,
                format!(
                    "Verified {}: {what} to {} re-injected with {} (target {})",
                    image.display(),
                    base.display(),
                    args.lock.display(),
                    plan.manifest.target
                ),
            );
            Ok(Outcome::Ok)
        }
        Some(v) => {
            if !global.json {
                eprintln!(
                    "{} is not what {} gives when injected into {}: {v}",
                    image.display(),
                    args.lock.display(),
                    base.display()
                );
            }
            Ok(Outcome::Differs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::tree::Tree;

    fn members(tree: &Tree, epoch: i64) -> Vec<Member> {
        let bytes = archive::write_tar_gz(tree, epoch, Vec::new()).unwrap();
        archive::read_tar_gz(bytes.as_slice(), 0, "t").unwrap()
    }

    #[test]
    fn names_the_first_entry_and_how_it_differs() {
        let mut a = Tree::new();
        a.add_file("opt/p/a", b"1".to_vec(), 0o644).unwrap();
        a.add_file("opt/p/b", b"2".to_vec(), 0o644).unwrap();
        let base = members(&a, 1);

        let mut content = a.clone();
        content.add_file("opt/p/c", b"3".to_vec(), 0o644).unwrap();
        let mut b = Tree::new();
        b.add_file("opt/p/a", b"1".to_vec(), 0o755).unwrap();
        b.add_file("opt/p/b", b"X".to_vec(), 0o644).unwrap();
        assert_eq!(
            first_difference(&members(&b, 1), &base),
            "/opt/p/a: mode differs (payload: 0755; rebuild: 0644)"
        );
        assert!(first_difference(&members(&content, 1), &base).starts_with("/opt/p/c: extra"));
        assert!(first_difference(&base, &members(&content, 1)).starts_with("/opt/p/c: missing"));
        let mut c = Tree::new();
        c.add_file("opt/p/a", b"1".to_vec(), 0o644).unwrap();
        c.add_file("opt/p/b", b"X".to_vec(), 0o644).unwrap();
        assert!(first_difference(&members(&c, 1), &base).starts_with("/opt/p/b: content differs"));
        assert!(first_difference(&members(&a, 2), &base).starts_with("/opt: mtime differs"));
        assert!(first_difference(&base, &base).contains("encoding"));
    }
}
