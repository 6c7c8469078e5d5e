//! PEP 440 versions and version specifiers, as far as graft needs them: picking a data
//! archive's release from the index without asking pip (which would run the source
//! release's build code to learn its metadata).
//! Spec: <https://peps.python.org/pep-0440/>.

use std::cmp::Ordering;

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub epoch: u64,
    pub release: Vec<u64>,
    /// (kind 0 = a, 1 = b, 2 = rc, number)
    pub pre: Option<(u8, u64)>,
    pub post: Option<u64>,
    pub dev: Option<u64>,
    pub local: Option<String>,
}

impl Version {
    /// Parses a version; `None` when it is not PEP 440.
    pub fn parse(text: &str) -> Option<Version> {
        let s = text.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let (s, local) = match s.split_once('+') {
            Some((v, l))
                if !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
            {
                (v, Some(l.replace(['-', '_'], ".")))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let (epoch, s) = match s.split_once('!') {
            Some((e, rest)) => (e.parse().ok()?, rest),
            None => (0, s),
        };
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut release = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || i - start > 18 || release.len() >= 32 {
                return None;
            }
            release.push(s[start..i].parse().ok()?);
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        let mut rest = &s[i..];
        let mut pre = None;
        let mut post = None;
        let mut dev = None;
        // Optional separators (`.`, `-`, `_`) before each suffix, as PEP 440 normalises.
        let strip_sep = |r: &str| r.strip_prefix(['.', '-', '_']).unwrap_or(r).to_string();
        let number = |r: &str| -> (u64, usize) {
            let r2 = r.strip_prefix(['.', '-', '_']).unwrap_or(r);
            let skipped = r.len() - r2.len();
            let digits = r2.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 18 {
                (0, 0)
            } else {
                (r2[..digits].parse().unwrap_or(0), skipped + digits)
            }
        };
        let r = strip_sep(rest);
        for (word, kind) in [
            ("alpha", 0),
            ("beta", 1),
            ("preview", 2),
            ("pre", 2),
            ("rc", 2),
            ("a", 0),
            ("b", 1),
            ("c", 2),
        ] {
            if let Some(after) = r.strip_prefix(word) {
                let (n, used) = number(after);
                pre = Some((kind, n));
                rest = &rest[rest.len() - after.len() + used..];
                break;
            }
        }
        let r = strip_sep(rest);
        for word in ["post", "rev", "r"] {
            if let Some(after) = r.strip_prefix(word) {
                let (n, used) = number(after);
                post = Some(n);
                rest = &rest[rest.len() - after.len() + used..];
                break;
            }
        }
        if post.is_none() {
            if let Some(after) = rest.strip_prefix('-') {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 && digits <= 18 {
                    post = after[..digits].parse().ok();
                    rest = &after[digits..];
                }
            }
        }
        let r = strip_sep(rest);
        if let Some(after) = r.strip_prefix("dev") {
            let (n, used) = number(after);
            dev = Some(n);
            rest = &rest[rest.len() - after.len() + used..];
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// A pre-release or development release (not "final" in PEP 440's sense; post
    /// releases are final).
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    fn release_at(&self, i: usize) -> u64 {
        self.release.get(i).copied().unwrap_or(0)
    }

    fn cmp_release(&self, other: &Version) -> Ordering {
        let n = self.release.len().max(other.release.len());
        (0..n)
            .map(|i| self.release_at(i).cmp(&other.release_at(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// The sort key of PEP 440's ordering (local labels ignored).
    fn suffix_key(&self) -> (i8, u64, i8, u64, i8, u64) {
        // dev-only releases sort before pre-releases of the same release.
        let (pre_rank, pre_n) = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0),
            (Some((k, n)), _, _) => (k as i8, n),
            (None, _, _) => (3, 0),
        };
        let (post_rank, post_n) = match self.post {
            Some(n) => (1, n),
            None => (0, 0),
        };
        let (dev_rank, dev_n) = match self.dev {
            Some(n) => (0, n),
            None => (1, 0),
        };
        (pre_rank, pre_n, post_rank, post_n, dev_rank, dev_n)
    }
}

/// PEP 440's normalised form (`1.0rc1`, `2!1.0.post3.dev1+local`).
impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let release: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&release.join("."))?;
        if let Some((kind, n)) = self.pre {
            write!(f, "{}{n}", ["a", "b", "rc"][kind.min(2) as usize])?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if let Some(local) = &self.local {
            write!(f, "+{local}")?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.cmp_release(other))
            .then_with(|| self.suffix_key().cmp(&other.suffix_key()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One clause of a specifier set, e.g. `>=9.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specifier {
    pub op: String,
    pub version: String,
}

/// A requirement as graft reads it for data archives: a name and comma-joined
/// specifiers (`heat-agents>=9,<10`). Extras and markers are not allowed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleRequirement {
    pub name: String,
    pub specifiers: Vec<Specifier>,
}

impl SimpleRequirement {
    pub fn parse(text: &str) -> Result<SimpleRequirement, String> {
        let text = text.trim();
        let name_len = text
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
            .count();
        if name_len == 0 {
            return Err(format!("{text:?} does not start with a distribution name"));
        }
        let name = text[..name_len].to_string();
        let rest = text[name_len..].trim();
        let mut specifiers = Vec::new();
        if !rest.is_empty() {
            for clause in rest.split(',') {
                let clause = clause.trim();
                let op_len = clause.bytes().take_while(|b| b"=!<>~".contains(b)).count();
                let op = &clause[..op_len];
                let version = clause[op_len..].trim();
                if !["==", "!=", ">=", "<=", ">", "<", "~="].contains(&op) || version.is_empty() {
                    return Err(format!(
                        "{text:?}: {clause:?} is not a version clause graft understands \
                         (==, !=, >=, <=, >, <, ~=; extras and markers are not allowed for archives)"
                    ));
                }
                let bare = version.strip_suffix(".*").unwrap_or(version);
                if Version::parse(bare).is_none()
                    || (version.ends_with(".*") && !matches!(op, "==" | "!="))
                {
                    return Err(format!(
                        "{text:?}: {version:?} is not a valid version for {op}"
                    ));
                }
                specifiers.push(Specifier {
                    op: op.to_string(),
                    version: version.to_string(),
                });
            }
        }
        Ok(SimpleRequirement { name, specifiers })
    }

    /// True when `version` satisfies every clause.
    pub fn matches(&self, version: &Version) -> bool {
        self.specifiers.iter().all(|s| s.matches(version))
    }
}

impl Specifier {
    pub fn matches(&self, v: &Version) -> bool {
        if let Some(prefix) = self.version.strip_suffix(".*") {
            let Some(p) = Version::parse(prefix) else {
                return false;
            };
            let hit =
                v.epoch == p.epoch && (0..p.release.len()).all(|i| v.release_at(i) == p.release[i]);
            return if self.op == "==" { hit } else { !hit };
        }
        let Some(s) = Version::parse(&self.version) else {
            return false;
        };
        // Without a local label in the specifier, a candidate's local label is ignored.
        let equal = v.cmp(&s).is_eq() && (s.local.is_none() || s.local == v.local);
        match self.op.as_str() {
            "==" => equal,
            "!=" => !equal,
            ">=" => *v >= s,
            "<=" => *v <= s,
            // PEP 440: `>V` excludes post-releases of V, `<V` pre-releases of V.
            ">" => *v > s && !(v.post.is_some() && v.cmp_release(&s).is_eq() && s.post.is_none()),
            "<" => {
                *v < s && !(v.is_prerelease() && !s.is_prerelease() && v.cmp_release(&s).is_eq())
            }
            "~=" => {
                if s.release.len() < 2 {
                    return false;
                }
                let prefix = &s.release[..s.release.len() - 1];
                *v >= s
                    && v.epoch == s.epoch
                    && prefix
                        .iter()
                        .enumerate()
                        .all(|(i, p)| v.release_at(i) == *p)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn pep440_ordering_examples() {
        let ordered = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.1.dev1",
            "1!0.5",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) <= v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0").cmp(&v("1.0.0")), Ordering::Equal);
        assert_eq!(
            v("1!1.0-RC.1.post-2.DEV3+Ub-1").to_string(),
            "1!1.0rc1.post2.dev3+ub.1"
        );
        assert!(v("1.10.0") > v("1.9.0"));
        assert!(v("9.0.0.0rc1").is_prerelease());
        assert!(!v("1.0.post1").is_prerelease());
        for bad in ["", "abc", "1..0", "1.0+", "1.0-foo", "1.0a1b2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn specifiers_select_as_pip_would() {
        let r = SimpleRequirement::parse("heat-agents>=9.0, <13,!=10.0.0").unwrap();
        assert_eq!(r.name, "heat-agents");
        assert!(r.matches(&v("9.0.0")) && r.matches(&v("12.1.0")));
        assert!(!r.matches(&v("13.0.0")) && !r.matches(&v("10.0.0")) && !r.matches(&v("8.9")));
        assert!(
            !r.matches(&v("13.0.0rc1")),
            "<13 excludes 13's pre-releases"
        );
        let eq = SimpleRequirement::parse("x==9.0.0").unwrap();
        assert!(eq.matches(&v("9.0")) && !eq.matches(&v("9.0.1")));
        let wild = SimpleRequirement::parse("x==9.*").unwrap();
        assert!(wild.matches(&v("9.4.1")) && !wild.matches(&v("10.0")));
        let compat = SimpleRequirement::parse("x~=2.2").unwrap();
        assert!(
            compat.matches(&v("2.9")) && !compat.matches(&v("3.0")) && !compat.matches(&v("2.1"))
        );
        assert!(SimpleRequirement::parse("x").unwrap().specifiers.is_empty());
        for bad in [
            "x[extra]",
            "x>=",
            "x=1",
            "x ; python_version<'3'",
            ">=1",
            "x>=1.*",
        ] {
            assert!(SimpleRequirement::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_agree_with_pips_packaging() {
        // Oracle: pip's vendored packaging.version on a handful of pairs.
        let pairs = [
            ("1.0rc1", "1.0"),
            ("1.0.post1", "1.0"),
            ("2.0.dev1", "2.0a1"),
            ("1!1.0", "2.0"),
            ("1.0-1", "1.0"),
        ];
        let script = format!(
            "import pip._vendor\ntry:\n    from pip._vendor.packaging.version import Version as V\nexcept ImportError:\n    from packaging.version import Version as V\nfor a, b in {pairs:?}:\n    print((V(a) > V(b)) - (V(a) < V(b)))\n"
        )
        .replace('[', "(")
        .replace(']', ")");
        let out = std::process::Command::new(crate::python::pip::default_python())
            .args(["-c", &script])
            .output()
            .expect("the tests need python3 with pip");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected: Vec<i32> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let ours: Vec<i32> = pairs.iter().map(|(a, b)| v(a).cmp(&v(b)) as i32).collect();
        assert_eq!(ours, expected);
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn version_and_specifier_parsers_never_panic(text in "[0-9a-z.!+*_<>=~, -]{0,40}") {
            if let Some(v) = Version::parse(&text) {
                // What parses has a normalised form that parses to the same version.
                let again = Version::parse(&v.to_string()).unwrap();
                prop_assert_eq!(again.cmp(&v), std::cmp::Ordering::Equal);
            }
            if let Ok(r) = SimpleRequirement::parse(&format!("x{text}")) {
                let _ = r.matches(&Version::parse("1.0").unwrap());
            }
        }
    }
}
