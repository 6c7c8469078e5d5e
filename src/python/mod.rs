//! Python packaging: resolving through pip, wheel tags, wheel unpacking, the virtual
//! environment layout and console-script wrappers.

#[cfg(feature = "net")]
pub mod index;
pub mod pip;
#[cfg(feature = "net")]
pub mod resolve;
pub mod scripts;
pub mod tags;
pub mod venv;
pub mod version;
pub mod wheel;

/// PEP 503 name normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            in_sep = true;
            continue;
        }
        if in_sep && !out.is_empty() {
            out.push('-');
        }
        in_sep = false;
        out.extend(c.to_lowercase());
    }
    out
}
