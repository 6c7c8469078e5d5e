//! A virtual environment laid out natively, without running Python: what `python3 -m
//! venv --without-pip` creates on Linux, minus the activation scripts.
//!
//! Spec: <https://docs.python.org/3/library/venv.html> and PEP 405
//! (<https://peps.python.org/pep-0405/>): at startup the interpreter finds `pyvenv.cfg`
//! beside or one directory above its executable (`bin/python3`, a symlink to the guest's
//! interpreter), reads `home` and `include-system-site-packages`, and puts
//! `lib/pythonX.Y/site-packages` on `sys.path`.

use super::wheel::Scheme;

/// The parts of a venv the payload lays out, relative to the venv root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenvLayout {
    /// `pyvenv.cfg`'s text.
    pub pyvenv_cfg: String,
    /// Directories created even when empty, parents first.
    pub dirs: Vec<String>,
    /// (path, target) symlinks.
    pub symlinks: Vec<(String, String)>,
    /// Where wheels are installed.
    pub scheme: Scheme,
}

/// The venv for `interpreter` (an absolute guest path such as `/usr/bin/python3`) of
/// Python `major.minor`, rooted at the absolute guest path `venv_root`.
pub fn layout(interpreter: &str, major: u32, minor: u32, venv_root: &str) -> VenvLayout {
    let home = match interpreter.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
        None => ".".to_string(),
    };
    // `version` is MAJOR.MINOR: the guest's patch level is not known at build time, and
    // CPython reads only the `home` and `include-system-site-packages` keys.
    let pyvenv_cfg =
        format!("home = {home}\ninclude-system-site-packages = false\nversion = {major}.{minor}\n");
    let xy = format!("python{major}.{minor}");
    let site_packages = format!("lib/{xy}/site-packages");
    let root = venv_root.trim_end_matches('/');
    VenvLayout {
        pyvenv_cfg,
        dirs: vec![
            "bin".into(),
            "include".into(),
            "lib".into(),
            format!("lib/{xy}"),
            site_packages.clone(),
        ],
        symlinks: vec![
            ("bin/python3".into(), interpreter.to_string()),
            ("bin/python".into(), "python3".into()),
            (format!("bin/{xy}"), "python3".into()),
            // venv makes lib64 on 64-bit POSIX so that either name reaches site-packages.
            ("lib64".into(), "lib".into()),
        ],
        scheme: Scheme {
            site_packages,
            scripts: "bin".into(),
            headers: format!("include/site/{xy}"),
            python: format!("{root}/bin/python3"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_python_m_venv_writes() {
        // `python3.11 -m venv --without-pip /opt/heat-agent` writes home, the flag and a
        // full version; graft writes MAJOR.MINOR.
        let v = layout("/usr/bin/python3", 3, 11, "/opt/heat-agent");
        assert_eq!(
            v.pyvenv_cfg,
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
        );
        assert!(v
            .symlinks
            .contains(&("bin/python3".into(), "/usr/bin/python3".into())));
        assert!(v
            .symlinks
            .contains(&("bin/python".into(), "python3".into())));
        assert_eq!(v.scheme.site_packages, "lib/python3.11/site-packages");
        assert_eq!(v.scheme.python, "/opt/heat-agent/bin/python3");
    }
}
