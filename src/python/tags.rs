//! Wheel platform tags a target accepts, derived from its glibc and architecture.
//!
//! PEP 600 (<https://peps.python.org/pep-0600/>): a `manylinux_2_N_<arch>` wheel runs
//! on any glibc 2.N or newer, so a guest with glibc 2.M accepts every N ≤ M. The legacy
//! names of PEP 513/571/599 (`manylinux1` = 2.5, `manylinux2010` = 2.12,
//! `manylinux2014` = 2.17) are aliases and are listed where they apply. pip's
//! `--platform` does not widen a tag to the older ones it implies, so graft passes the
//! whole list, in the order `packaging.tags` yields it (newest first).
//!
//! `linux_<arch>` is deliberately absent: such a wheel was built against whatever the
//! builder's system happened to have, promises nothing about the guest, and a wheel that
//! works on the build host may not load in the guest.

use crate::recipe::Target;

/// The oldest glibc minor with manylinux tags for `arch` (as packaging's
/// `_manylinux.platform_tags` has it: 2.5 on x86, 2.17 elsewhere).
fn oldest_glibc_minor(arch: &str) -> u32 {
    if matches!(arch, "x86_64" | "i686") {
        5
    } else {
        17
    }
}

/// Every manylinux platform tag a glibc `2.minor` system on `arch` accepts, newest
/// first; each legacy alias follows the `manylinux_2_N` tag of the same glibc.
pub fn manylinux_tags(arch: &str, glibc_minor: u32) -> Vec<String> {
    let mut tags = Vec::new();
    let oldest = oldest_glibc_minor(arch);
    let mut minor = glibc_minor;
    while minor >= oldest {
        tags.push(format!("manylinux_2_{minor}_{arch}"));
        let legacy = match minor {
            17 => Some("manylinux2014"),
            12 => Some("manylinux2010"),
            5 => Some("manylinux1"),
            _ => None,
        };
        if let Some(legacy) = legacy {
            tags.push(format!("{legacy}_{arch}"));
        }
        minor -= 1;
    }
    tags
}

/// The platform tags passed to pip for `target`: the derived manylinux list, then the
/// recipe's extra `platforms` not already in it.
pub fn platform_tags(target: &Target) -> Result<Vec<String>, String> {
    let (_, glibc_minor) = target.glibc_version()?;
    let mut tags = manylinux_tags(&target.arch, glibc_minor);
    if tags.is_empty() {
        return Err(format!(
            "[[target]] {:?}: glibc = {:?} is older than the oldest manylinux glibc for {} (2.{}): \
             no wheel can be built for it",
            target.name,
            target.glibc,
            target.arch,
            oldest_glibc_minor(&target.arch)
        ));
    }
    for extra in &target.platforms {
        if !tags.contains(extra) {
            tags.push(extra.clone());
        }
    }
    Ok(tags)
}

/// The ABI tags pip is told a target accepts: its own (`cp311`), the stable ABI, and
/// pure-Python `none`.
pub fn abi_tags(target: &Target) -> Vec<String> {
    let mut abis = vec![target.abi_tag()];
    for extra in ["abi3", "none"] {
        if !abis.iter().any(|a| a == extra) {
            abis.push(extra.to_string());
        }
    }
    abis
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const GLIBC_MINORS: [u32; 9] = [5, 12, 16, 17, 28, 34, 35, 36, 39];

    /// The lists pip's vendored `packaging` computes for systems with these arches and
    /// glibcs (its glibc probe and ABI probe replaced), one `arch minor: tags` line each.
    fn packaging_oracle(arches: &[&str]) -> Vec<String> {
        // Distributions that unbundle pip's vendored packages (Debian) make them
        // importable once `pip._vendor` is; newer packaging takes a list of arches.
        let script = format!(
            "import pip._vendor\n\
             try:\n\
             \x20   from pip._vendor.packaging import _manylinux as m\n\
             except ImportError:\n\
             \x20   from packaging import _manylinux as m\n\
             m._have_compatible_abi = lambda *a, **k: True\n\
             for arch in {arches:?}:\n\
             \x20   for minor in {GLIBC_MINORS:?}:\n\
             \x20       m._get_glibc_version = lambda: (2, minor)\n\
             \x20       try:\n\
             \x20           tags = list(m.platform_tags('linux_' + arch, arch))\n\
             \x20       except TypeError:\n\
             \x20           tags = list(m.platform_tags([arch]))\n\
             \x20       print(arch, minor, ':', ' '.join(tags))\n"
        );
        let out = Command::new(crate::python::pip::default_python())
            .args(["-c", &script])
            .output()
            .expect("the tests need python3 with pip (apt-get install python3-pip)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    #[test]
    fn tags_match_pips_packaging_for_every_arch_and_the_shipped_glibcs() {
        let expected = packaging_oracle(crate::recipe::KNOWN_ARCHES);
        let mut ours = Vec::new();
        for arch in crate::recipe::KNOWN_ARCHES {
            for minor in GLIBC_MINORS {
                ours.push(
                    format!("{arch} {minor} : {}", manylinux_tags(arch, minor).join(" "))
                        .trim_end()
                        .to_string(),
                );
            }
        }
        assert_eq!(ours, expected);
    }

    #[test]
    fn debian_12_x86_64_list_has_the_aliases_and_no_linux_tag() {
        let tags = manylinux_tags("x86_64", 36);
        assert_eq!(
            tags.first().map(String::as_str),
            Some("manylinux_2_36_x86_64")
        );
        assert_eq!(tags.last().map(String::as_str), Some("manylinux1_x86_64"));
        for alias in ["manylinux2014_x86_64", "manylinux2010_x86_64"] {
            assert!(tags.iter().any(|t| t == alias), "{alias}");
        }
        assert!(!tags.iter().any(|t| t.starts_with("linux_")));
        assert_eq!(tags.len(), 32 + 3);
        let arm = manylinux_tags("aarch64", 36);
        assert_eq!(
            arm.last().map(String::as_str),
            Some("manylinux2014_aarch64")
        );
        assert!(manylinux_tags("aarch64", 16).is_empty());
    }
}
