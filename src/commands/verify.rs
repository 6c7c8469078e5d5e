//! `graft verify`: `--rebuild` rebuilds a payload from the lockfile and compares it byte
//! for byte; the image modes belong to issue 6.

use anyhow::{bail, Context, Result};

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::commands::build::{assemble, open_cache, say, Inputs};
use crate::commands::Outcome;
use crate::payload::archive::{self, Member};
use crate::payload::manifest::{Manifest, IN_GUEST_PATH};
use crate::payload::tree::Node;

pub fn verify(args: &VerifyArgs, global: &GlobalArgs) -> Result<Outcome> {
    match &args.rebuild {
        Some(payload) => verify_rebuild(payload, args, global),
        None => bail!("`graft verify IMAGE` is not implemented yet (issue 6); `graft verify --rebuild PAYLOAD` is"),
    }
}

fn verify_rebuild(payload_path: &std::path::Path, args: &VerifyArgs, global: &GlobalArgs) -> Result<Outcome> {
    if args.image.is_some() || args.base.is_some() {
        bail!("--rebuild checks a payload file; it takes no IMAGE or --base (those are issue 6)");
    }
    let target_name = args.target.as_deref().context("--rebuild needs --target NAME (the target the payload was built for)")?;
    let inputs = Inputs::load(&args.recipe, &args.lock)?;
    let target = inputs.target(target_name, &args.lock)?;

    let payload = std::fs::read(payload_path).with_context(|| format!("cannot read payload {}", payload_path.display()))?;
    let payload_digest = crate::util::sha256_hex(&payload);
    let label = payload_path.display().to_string();
    let members = archive::read_tar_gz(payload.as_slice(), 0, &label)?;
    // The payload says which prefix it was built for, in its in-guest manifest.
    let prefix = find_prefix(&members, &inputs.recipe.prefix)
        .with_context(|| format!("{label} holds no graft manifest (…/{IN_GUEST_PATH}); is it a graft payload?"))?;

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
            say(global, format!("Verified {label}: rebuilt from {} (target {}), sha256 {payload_digest}", args.lock.display(), target.name));
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
    let manifests: Vec<&Member> = members.iter().filter(|m| m.path.ends_with(&format!("/{IN_GUEST_PATH}"))).collect();
    let preferred = format!("{}/{IN_GUEST_PATH}", recipe_prefix.trim_start_matches('/').trim_end_matches('/'));
    let chosen = manifests.iter().find(|m| m.path == preferred).or_else(|| manifests.first())?;
    if let Node::File { data, .. } = &chosen.entry.node {
        if let Ok(m) = Manifest::from_json(&String::from_utf8_lossy(data)) {
            return Some(m.prefix);
        }
    }
    // An unreadable manifest: fall back on its place in the tree.
    chosen.path.strip_suffix(&format!("/{IN_GUEST_PATH}")).map(|p| format!("/{p}"))
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
            (Some(t), Some(o)) if t.path < o.path => return format!("/{}: extra (in the payload, not in the rebuild)", t.path),
            (Some(_), Some(o)) => return format!("/{}: missing (in the rebuild, not in the payload)", o.path),
            (Some(t), None) => return format!("/{}: extra (in the payload, not in the rebuild)", t.path),
            (None, Some(o)) => return format!("/{}: missing (in the rebuild, not in the payload)", o.path),
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
        (Node::File { sha256: a, data: da }, Node::File { sha256: b, data: db }) if a != b => {
            return Some(format!("content differs (payload: {} bytes, sha256 {a}; rebuild: {} bytes, sha256 {b})", da.len(), db.len()))
        }
        (Node::Symlink { target: a }, Node::Symlink { target: b }) if a != b => {
            return Some(format!("link target differs (payload: {a:?}; rebuild: {b:?})"))
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            return Some(format!("type differs (payload: {}; rebuild: {})", kind(t), kind(o)))
        }
        _ => {}
    }
    if t.raw_mode != o.raw_mode {
        return Some(format!("mode differs (payload: {:04o}; rebuild: {:04o})", t.raw_mode, o.raw_mode));
    }
    if (t.uid, t.gid) != (o.uid, o.gid) {
        return Some(format!("owner differs (payload: {}:{}; rebuild: {}:{})", t.uid, t.gid, o.uid, o.gid));
    }
    if t.mtime != o.mtime {
        return Some(format!("mtime differs (payload: {}; rebuild: {})", t.mtime, o.mtime));
    }
    None
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
        assert_eq!(first_difference(&members(&b, 1), &base), "/opt/p/a: mode differs (payload: 0755; rebuild: 0644)");
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
