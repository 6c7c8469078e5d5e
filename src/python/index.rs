//! A client for a Python package index's "simple" repository API.
//!
//! - PEP 503 (HTML): <https://peps.python.org/pep-0503/>, with PEP 592 `data-yanked` and
//!   PEP 503's `data-requires-python`;
//! - PEP 691 (JSON, `application/vnd.pypi.simple.v1+json`):
//!   <https://peps.python.org/pep-0691/>, with PEP 700's `size`:
//!   <https://peps.python.org/pep-0700/>.
//!
//! The index's address is never part of graft: it comes from the user (`--index-url`) or
//! from pip's configuration, and pip's own default is asked of the host's pip. A
//! `file://` URL names a local PEP 503 directory tree (`<root>/<project>/index.html`),
//! which is how the offline tests and air-gapped mirrors work; pip reads the same tree.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use reqwest::Url;
use thiserror::Error;

use crate::python::pip::{PipConfig, PipError};

/// Index pages larger than this are refused rather than read into memory.
const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many files are taken from one project page.
const MAX_FILES: usize = 200_000;

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("package index URL {url:?} is not usable: {message}")]
    BadUrl { url: String, message: String },
    #[error(
        "cannot reach the package index at {url} (looking up {project:?}): {message}. \
         Is the network up, and is pip's proxy/certificate configuration right? \
         To work from the cache without network, use --offline"
    )]
    Connect {
        project: String,
        url: String,
        message: String,
    },
    #[error("no distribution named {project:?} on the package index ({url} answered 404)")]
    NotFound { project: String, url: String },
    #[error("the package index answered HTTP {status} for {url} (looking up {project:?})")]
    Status {
        project: String,
        url: String,
        status: u16,
    },
    #[error("the package index page {url} for {project:?} cannot be read: {message}")]
    Page {
        project: String,
        url: String,
        message: String,
    },
    #[error("cannot read {path} (package index for {project:?}): {source}")]
    Local {
        project: String,
        path: String,
        source: std::io::Error,
    },
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("cannot find the package index: {0}")]
    Pip(#[from] PipError),
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
}

/// One file a project page lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute URL (resolved against the page's URL).
    pub url: String,
    /// Lower-case hex, when the index gives one.
    pub sha256: Option<String>,
    /// PEP 700 size, when the index gives one.
    pub size: Option<u64>,
    pub yanked: bool,
    pub requires_python: Option<String>,
}

/// A simple-API package index.
pub struct PackageIndex {
    /// The simple API's base URL, ending in `/`.
    base: Url,
    client: Option<reqwest::blocking::Client>,
}

impl std::fmt::Debug for PackageIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageIndex")
            .field("base", &self.base.as_str())
            .finish()
    }
}

impl PackageIndex {
    /// The index pip would use: explicit flag > `PIP_INDEX_URL` > pip's config files >
    /// pip's own built-in default (asked of the host's pip, so that graft names no host).
    pub fn discover(explicit: Option<&str>, python: &Path) -> Result<PackageIndex, IndexError> {
        let given = explicit
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .or_else(|| {
                std::env::var("PIP_INDEX_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
            });
        // pip's configuration also gives the certificates, proxy and timeout; a host
        // without pip can still use an explicitly given index.
        let (url, config) = match given {
            Some(url) => (url, PipConfig::load(python).ok()),
            None => {
                let config = PipConfig::load(python)?;
                let url = match config.get("index-url") {
                    Some(u) => u.to_string(),
                    None => pip_default_index(python)?,
                };
                (url, Some(config))
            }
        };
        let index = PackageIndex::new_without_client(&url)?;
        if index.base.scheme() == "file" {
            return Ok(index);
        }
        let settings = crate::http::HttpSettings::from_pip(&config.unwrap_or_default());
        Ok(index.with_client(crate::http::client_with(&settings)?))
    }

    /// An index at `simple_url` (`http://`, `https://` or `file://`), reached with
    /// [`crate::http::client`].
    pub fn new(simple_url: &str) -> Result<PackageIndex, IndexError> {
        let index = PackageIndex::new_without_client(simple_url)?;
        if index.base.scheme() == "file" {
            return Ok(index);
        }
        Ok(index.with_client(crate::http::client()?))
    }

    fn new_without_client(simple_url: &str) -> Result<PackageIndex, IndexError> {
        let bad = |message: &str| IndexError::BadUrl {
            url: redact(simple_url),
            message: message.to_string(),
        };
        let mut base = Url::parse(simple_url.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https" | "file") {
            return Err(bad(
                "only http://, https:// and file:// indexes are supported",
            ));
        }
        if base.cannot_be_a_base() {
            return Err(bad("not a hierarchical URL"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_fragment(None);
        Ok(PackageIndex { base, client: None })
    }

    /// The same index with an explicit client (tests, or settings not from pip).
    pub fn with_client(mut self, client: reqwest::blocking::Client) -> PackageIndex {
        if self.base.scheme() != "file" {
            self.client = Some(client);
        }
        self
    }

    /// The simple API base URL, ending in `/`.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// The base URL for messages: without a password.
    pub fn display_url(&self) -> String {
        redact(self.base.as_str())
    }

    /// The project page's URL: base + normalised name + `/`.
    pub fn project_url(&self, project: &str) -> Result<Url, IndexError> {
        let name = normalize_name(project);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(IndexError::BadUrl {
                url: redact(self.base.as_str()),
                message: format!("{project:?} is not a valid distribution name"),
            });
        }
        self.base
            .join(&format!("{name}/"))
            .map_err(|e| IndexError::BadUrl {
                url: redact(self.base.as_str()),
                message: e.to_string(),
            })
    }

    /// Every file the index lists for `project`. PEP 691 JSON is asked for first; an
    /// index that answers with HTML is read as PEP 503.
    pub fn project_files(&self, project: &str) -> Result<Vec<IndexFile>, IndexError> {
        let page_url = self.project_url(project)?;
        let (final_url, content_type, body) = match &self.client {
            None => self.read_local_page(project, &page_url)?,
            Some(client) => self.read_remote_page(client, project, &page_url)?,
        };
        let page_err = |message: String| IndexError::Page {
            project: project.to_string(),
            url: redact(final_url.as_str()),
            message,
        };
        let text = String::from_utf8(body).map_err(|_| page_err("not UTF-8".into()))?;
        let is_json = content_type
            .as_deref()
            .is_some_and(|c| c.trim().starts_with("application/vnd.pypi.simple.v1+json"))
            || (content_type.is_none() && text.trim_start().starts_with('{'));
        let files = if is_json {
            parse_json_page(&text, &final_url)
        } else {
            parse_html_page(&text, &final_url)
        };
        files.map_err(page_err)
    }

    /// The listing entry of one locked file (`graft fetch` looks artifacts up by name
    /// and file name, as the lockfile records no URL). `None` if the index does not list
    /// it; the caller checks the hash it downloads against the lockfile's.
    pub fn find_file(
        &self,
        project: &str,
        filename: &str,
    ) -> Result<Option<IndexFile>, IndexError> {
        Ok(self
            .project_files(project)?
            .into_iter()
            .find(|f| f.filename == filename))
    }

    fn read_local_page(
        &self,
        project: &str,
        page_url: &Url,
    ) -> Result<(Url, Option<String>, Vec<u8>), IndexError> {
        let dir = page_url.to_file_path().map_err(|_| IndexError::BadUrl {
            url: redact(page_url.as_str()),
            message: "not a local path".into(),
        })?;
        let path = dir.join("index.html");
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IndexError::NotFound {
                    project: project.to_string(),
                    url: redact(page_url.as_str()),
                })
            }
            Err(source) => {
                return Err(IndexError::Local {
                    project: project.to_string(),
                    path: path.display().to_string(),
                    source,
                })
            }
            Ok(m) if m.len() > MAX_PAGE_BYTES => {
                return Err(IndexError::Page {
                    project: project.to_string(),
                    url: redact(page_url.as_str()),
                    message: format!(
                        "{} bytes is more than the {MAX_PAGE_BYTES} graft reads",
                        m.len()
                    ),
                })
            }
            Ok(_) => {}
        }
        let body = std::fs::read(&path).map_err(|source| IndexError::Local {
            project: project.to_string(),
            path: path.display().to_string(),
            source,
        })?;
        Ok((page_url.clone(), Some("text/html".into()), body))
    }

    fn read_remote_page(
        &self,
        client: &reqwest::blocking::Client,
        project: &str,
        page_url: &Url,
    ) -> Result<(Url, Option<String>, Vec<u8>), IndexError> {
        let response = client
            .get(page_url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
            )
            .send()
            .map_err(|e| connect_error(project, page_url, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(IndexError::NotFound {
                project: project.to_string(),
                url: redact(page_url.as_str()),
            });
        }
        if !status.is_success() {
            return Err(IndexError::Status {
                project: project.to_string(),
                url: redact(page_url.as_str()),
                status: status.as_u16(),
            });
        }
        let final_url = response.url().clone();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let mut body = Vec::new();
        response
            .take(MAX_PAGE_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| IndexError::Connect {
                project: project.to_string(),
                url: redact(page_url.as_str()),
                message: e.to_string(),
            })?;
        if body.len() as u64 > MAX_PAGE_BYTES {
            return Err(IndexError::Page {
                project: project.to_string(),
                url: redact(final_url.as_str()),
                message: format!("larger than the {MAX_PAGE_BYTES} bytes graft reads"),
            });
        }
        Ok((final_url, content_type, body))
    }

    /// Streams one file to `out`, calling `progress(bytes_so_far)`; returns its length.
    /// Hashes are not checked here (the cache and `graft lock` do that).
    pub fn download(
        &self,
        file_url: &str,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, IndexError> {
        let url = Url::parse(file_url).map_err(|e| IndexError::BadUrl {
            url: redact(file_url),
            message: e.to_string(),
        })?;
        let fail = |message: String| IndexError::Download {
            url: redact(file_url),
            message,
        };
        let mut reader: Box<dyn Read> = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|_| fail("not a local path".into()))?;
                Box::new(
                    std::fs::File::open(&path)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?,
                )
            }
            "http" | "https" => {
                let client = match &self.client {
                    Some(c) => c.clone(),
                    None => crate::http::client()?,
                };
                let response = client
                    .get(url.clone())
                    .send()
                    .map_err(|e| connect_error("(download)", &url, &e))?;
                if !response.status().is_success() {
                    return Err(fail(format!("HTTP {}", response.status().as_u16())));
                }
                Box::new(response)
            }
            other => return Err(fail(format!("unsupported URL scheme {other:?}"))),
        };
        let mut buf = vec![0u8; 128 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| fail(format!("writing: {e}")))?;
            total += n as u64;
            progress(total);
        }
        Ok(total)
    }
}

fn connect_error(project: &str, url: &Url, e: &reqwest::Error) -> IndexError {
    // reqwest's Display is terse; its source chain names the actual cause (DNS, refused,
    // certificate).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = source {
        if depth > 8 {
            break;
        }
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
        depth += 1;
    }
    IndexError::Connect {
        project: project.to_string(),
        url: redact(url.as_str()),
        message,
    }
}

/// `url` with any password replaced by `****`, for messages (pip.conf index URLs may
/// carry credentials).
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_string(),
    }
}

/// pip's built-in default index, asked of the host's pip so graft's code names no host.
pub fn pip_default_index(python: &Path) -> Result<String, IndexError> {
    let out = Command::new(python)
        .args([
            "-c",
            "from pip._internal.models.index import PyPI; print(PyPI.simple_url)",
        ])
        .output()
        .map_err(|source| PipError::NoPython {
            python: python.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || text.is_empty() {
        return Err(PipError::NoPip {
            python: python.display().to_string(),
            detail: String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("no default index")
                .to_string(),
        }
        .into());
    }
    Ok(text)
}

pub use super::normalize_name;

/// Parses a PEP 691 JSON project page.
pub fn parse_json_page(text: &str, page_url: &Url) -> Result<Vec<IndexFile>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: std::collections::BTreeMap<String, String>,
        #[serde(default, rename = "requires-python")]
        requires_python: Option<String>,
        #[serde(default)]
        yanked: Option<serde_json::Value>,
        #[serde(default)]
        size: Option<u64>,
    }
    let page: Page = serde_json::from_str(text).map_err(|e| format!("PEP 691 JSON: {e}"))?;
    if page.files.len() > MAX_FILES {
        return Err(format!(
            "{} files is more than the {MAX_FILES} graft reads",
            page.files.len()
        ));
    }
    page.files
        .into_iter()
        .map(|f| {
            let url = page_url
                .join(&f.url)
                .map_err(|e| format!("file {:?}: url {:?}: {e}", f.filename, f.url))?;
            check_filename(&f.filename)?;
            let yanked = match f.yanked {
                None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {
                    false
                }
                // PEP 691: true, or a string giving the reason.
                Some(_) => true,
            };
            Ok(IndexFile {
                sha256: f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
                url: strip_fragment(url),
                filename: f.filename,
                size: f.size,
                yanked,
                requires_python: f.requires_python.filter(|s| !s.trim().is_empty()),
            })
        })
        .collect()
}

/// Parses a PEP 503 HTML project page: every `<a href>`; the file name is the URL
/// path's last segment, the hash the `#sha256=` fragment.
pub fn parse_html_page(text: &str, page_url: &Url) -> Result<Vec<IndexFile>, String> {
    let mut base = page_url.clone();
    let mut files = Vec::new();
    for tag in tags(text) {
        if files.len() > MAX_FILES {
            return Err(format!("more than the {MAX_FILES} files graft reads"));
        }
        match tag.name.as_str() {
            "base" => {
                if let Some(href) = tag.attr("href") {
                    base = page_url
                        .join(&href)
                        .map_err(|e| format!("<base href={href:?}>: {e}"))?;
                }
            }
            "a" => {
                let Some(href) = tag.attr("href") else {
                    continue;
                };
                let url = base
                    .join(&href)
                    .map_err(|e| format!("<a href={href:?}>: {e}"))?;
                let filename = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .map(percent_decode)
                    .unwrap_or_default();
                if filename.is_empty() {
                    continue;
                }
                check_filename(&filename)?;
                let sha256 = url.fragment().and_then(|f| {
                    f.split('&')
                        .find_map(|kv| kv.strip_prefix("sha256="))
                        .map(|h| h.to_ascii_lowercase())
                });
                files.push(IndexFile {
                    filename,
                    url: strip_fragment(url),
                    sha256,
                    size: None,
                    yanked: tag.attr("data-yanked").is_some(),
                    requires_python: tag
                        .attr("data-requires-python")
                        .filter(|s| !s.trim().is_empty()),
                });
            }
            _ => {}
        }
    }
    Ok(files)
}

fn strip_fragment(mut url: Url) -> String {
    url.set_fragment(None);
    url.to_string()
}

fn check_filename(name: &str) -> Result<(), String> {
    if !crate::util::is_plain_filename(name) {
        return Err(format!("file name {name:?} is not a plain file name"));
    }
    Ok(())
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One start tag: lower-case name and its attributes (entity-decoded).
struct Tag {
    name: String,
    attrs: Vec<(String, Option<String>)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone().unwrap_or_default())
    }
}

/// The start tags of an HTML document, tolerant of anything else in it. Comments are
/// skipped; the scan always moves forward, so it ends on any input.
fn tags(text: &str) -> Vec<Tag> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        if text[i..].starts_with("<!--") {
            i = match text[i + 4..].find("-->") {
                Some(end) => i + 4 + end + 3,
                None => bytes.len(),
            };
            continue;
        }
        i += 1;
        let name_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == name_start {
            continue;
        }
        let name = text[name_start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            if bytes[i] == b'>' {
                i += 1;
                break;
            }
            if bytes[i] == b'/' {
                i += 1;
                continue;
            }
            let key_start = i;
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && !matches!(bytes[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            if i == key_start {
                // A stray character such as a quote: skip it so the scan moves on.
                i += 1;
                continue;
            }
            let key = text[key_start..i].to_ascii_lowercase();
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let value = if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    let quote = bytes[i];
                    let start = i + 1;
                    let end = bytes[start..]
                        .iter()
                        .position(|&b| b == quote)
                        .map_or(bytes.len(), |p| start + p);
                    i = (end + 1).min(bytes.len());
                    &text[start..end]
                } else {
                    let start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    &text[start..i]
                };
                attrs.push((key, Some(decode_entities(value))));
            } else {
                attrs.push((key, None));
            }
        }
        out.push(Tag { name, attrs });
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        // Bytes, not a str slice: byte 12 may fall inside a multi-byte character, and ';'
        // is ASCII, so its position is a character boundary.
        let end = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';');
        let decoded = end.and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                    } else if let Some(dec) = entity.strip_prefix('#') {
                        dec.parse::<u32>().ok().and_then(char::from_u32)
                    } else {
                        None
                    }
                }
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &str = r#"<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.1"><title>Links for six</title></head>
<body><h1>Links for six</h1>
<!-- <a href="commented-out-1.0.tar.gz">no</a> -->
<a href="../../packages/ab/cd/six-1.16.0-py2.py3-none-any.whl#sha256=8ABB2F1D86890A2DFB989F9A77CFCFD3E47C2A354B01111771326F8AA26E0254" data-requires-python="&gt;=2.7, !=3.0.*">six-1.16.0-py2.py3-none-any.whl</a><br/>
<a href='https://mirror.example/six-1.15.0.tar.gz#md5=00' data-yanked="">six-1.15.0.tar.gz</a>
<A HREF=six%2B1.0.zip data-yanked=broken>odd</A>
</body></html>"#;

    #[test]
    fn pep503_html_page_is_parsed() {
        let page = Url::parse("https://index.example/simple/six/").unwrap();
        let files = parse_html_page(HTML, &page).unwrap();
        assert_eq!(files.len(), 3, "{files:#?}");
        let whl = &files[0];
        assert_eq!(whl.filename, "six-1.16.0-py2.py3-none-any.whl");
        assert_eq!(
            whl.url,
            "https://index.example/packages/ab/cd/six-1.16.0-py2.py3-none-any.whl"
        );
        assert_eq!(
            whl.sha256.as_deref(),
            Some("8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254")
        );
        assert_eq!(whl.requires_python.as_deref(), Some(">=2.7, !=3.0.*"));
        assert!(!whl.yanked);
        assert_eq!(whl.size, None);
        assert_eq!(files[1].sha256, None, "only sha256 fragments count");
        assert!(files[1].yanked);
        assert_eq!(files[1].url, "https://mirror.example/six-1.15.0.tar.gz");
        assert_eq!(files[2].filename, "six+1.0.zip");
        assert!(files[2].yanked);
    }

    #[test]
    fn base_tag_moves_relative_links() {
        let page = Url::parse("file:///srv/simple/six/").unwrap();
        let html = r#"<base href="/files/"><a href="six-1.0-py3-none-any.whl">x</a>"#;
        let files = parse_html_page(html, &page).unwrap();
        assert_eq!(files[0].url, "file:///files/six-1.0-py3-none-any.whl");
    }

    #[test]
    fn pep691_json_page_is_parsed_with_pep700_sizes() {
        let json = r#"{"meta":{"api-version":"1.1"},"name":"heat-agents","versions":["9.0.0"],
          "files":[
            {"filename":"heat-agents-9.0.0.tar.gz","url":"../../files/heat-agents-9.0.0.tar.gz",
             "hashes":{"sha256":"AA00000000000000000000000000000000000000000000000000000000000000"},
             "requires-python":">=3.8","size":123456,"yanked":false},
            {"filename":"heat-agents-8.0.0.tar.gz","url":"https://cdn.example/h-8.tar.gz#frag",
             "hashes":{},"yanked":"broken release"},
            {"filename":"heat_agents-9.0.0-py3-none-any.whl","url":"x.whl","hashes":{"md5":"0"},"requires-python":""}
          ]}"#;
        let page = Url::parse("https://index.example/simple/heat-agents/").unwrap();
        let files = parse_json_page(json, &page).unwrap();
        assert_eq!(
            files[0].url,
            "https://index.example/files/heat-agents-9.0.0.tar.gz"
        );
        assert_eq!(files[0].size, Some(123456));
        assert_eq!(
            files[0].sha256.as_deref(),
            Some(&*format!("aa{}", "0".repeat(62)))
        );
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert!(!files[0].yanked);
        assert!(files[1].yanked);
        assert_eq!(files[1].url, "https://cdn.example/h-8.tar.gz");
        assert_eq!(files[2].sha256, None);
        assert_eq!(files[2].requires_python, None);
        assert_eq!(
            files[2].url,
            "https://index.example/simple/heat-agents/x.whl"
        );
    }

    #[test]
    fn hostile_pages_are_errors_or_ignored_not_panics() {
        let page = Url::parse("https://index.example/simple/x/").unwrap();
        for html in [
            "<",
            "<a",
            "<a href=",
            "<a href=\"",
            "<a href='x",
            "<!--",
            "&#xFFFFFFFF;<a href=x&#99999999;>",
            "<a =x>",
            "<\u{e9}>",
        ] {
            let _ = parse_html_page(html, &page);
        }
        assert!(parse_html_page(r#"<a href="../evil/..%2F.hidden">x</a>"#, &page).is_err());
        assert!(parse_json_page(
            "{\"files\": [{\"filename\": \"../x\", \"url\": \"x\"}]}",
            &page
        )
        .is_err());
        assert!(parse_json_page("[]", &page).is_err());
    }

    #[test]
    fn names_are_normalised_as_pep503_says() {
        assert_eq!(normalize_name("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize_name("FRIENDLY_BARD"), "friendly-bard");
        assert_eq!(normalize_name("friendly.-_bard"), "friendly-bard");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
        assert_eq!(normalize_name("zope.interface"), "zope-interface");
    }

    #[test]
    fn file_index_lists_and_downloads_and_says_404_as_no_distribution() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("simple");
        std::fs::create_dir_all(root.join("six")).unwrap();
        std::fs::write(dir.path().join("six-1.0-py3-none-any.whl"), b"wheel bytes").unwrap();
        std::fs::write(
            root.join("six/index.html"),
            "<a href=\"../../six-1.0-py3-none-any.whl#sha256=abc\">six-1.0-py3-none-any.whl</a>",
        )
        .unwrap();
        let url = Url::from_directory_path(&root).unwrap();
        let index = PackageIndex::new(url.as_str().trim_end_matches('/')).unwrap();
        assert!(index.url().ends_with("/simple/"));
        let files = index.project_files("Six").unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(
            index
                .find_file("six", "six-1.0-py3-none-any.whl")
                .unwrap()
                .as_ref(),
            Some(&files[0])
        );
        assert_eq!(
            index.find_file("six", "six-2.0-py3-none-any.whl").unwrap(),
            None
        );
        let mut out = Vec::new();
        let mut seen = 0;
        let n = index
            .download(&files[0].url, &mut out, &mut |b| seen = b)
            .unwrap();
        assert_eq!((n, seen, out.as_slice()), (11, 11, &b"wheel bytes"[..]));
        let err = index.project_files("no-such-thing").unwrap_err();
        assert!(matches!(err, IndexError::NotFound { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("no distribution named \"no-such-thing\""),
            "{msg}"
        );
    }

    #[test]
    fn unreachable_index_says_network_and_offline() {
        // Port 9 on localhost: nothing listens, the connection is refused at once.
        let index = PackageIndex::new("http://127.0.0.1:9/simple").unwrap();
        let msg = index.project_files("six").unwrap_err().to_string();
        assert!(
            msg.contains("cannot reach the package index")
                && msg.contains("--offline")
                && msg.contains("six"),
            "{msg}"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let index = PackageIndex::new("http://me:s3cret@127.0.0.1:9/simple").unwrap();
        assert!(index.url().contains("s3cret"), "pip needs the real URL");
        assert_eq!(index.display_url(), "http://me:****@127.0.0.1:9/simple/");
        let msg = index.project_files("six").unwrap_err().to_string();
        assert!(!msg.contains("s3cret") && msg.contains("****"), "{msg}");
    }

    #[test]
    fn non_index_urls_are_refused() {
        assert!(PackageIndex::new("ftp://x/simple").is_err());
        assert!(PackageIndex::new("not a url").is_err());
        let index = PackageIndex::new("https://index.example/simple").unwrap();
        assert!(index.project_url("../etc").is_err());
        assert_eq!(
            index.project_url("Zope.Interface").unwrap().as_str(),
            "https://index.example/simple/zope-interface/"
        );
    }

    #[test]
    fn discover_prefers_the_explicit_url_and_works_without_pip_for_it() {
        let index = PackageIndex::discover(
            Some("file:///srv/simple"),
            Path::new("/nonexistent/python3"),
        )
        .unwrap();
        assert_eq!(index.url(), "file:///srv/simple/");
        let err = PackageIndex::discover(None, Path::new("/nonexistent/python3"));
        if std::env::var_os("PIP_INDEX_URL").is_none() {
            let msg = err.unwrap_err().to_string();
            assert!(msg.contains("python3-pip"), "{msg}");
        }
    }

    #[test]
    fn pip_default_index_comes_from_the_host_pip() {
        // Oracle: pip. Whatever pip's built-in default is, it is an https simple index.
        let url = pip_default_index(&crate::python::pip::default_python()).unwrap();
        assert!(
            url.starts_with("https://") && url.trim_end_matches('/').ends_with("/simple"),
            "{url}"
        );
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn html_and_json_parsers_never_panic(text in "(<a href=|<base |['\"#=&;<>/ .a-z0-9]|sha256=|&#x|<!--|-->){0,60}") {
            let page = Url::parse("https://index.example/simple/x/").unwrap();
            let _ = parse_html_page(&text, &page);
            let _ = parse_json_page(&text, &page);
        }

        #[test]
        fn any_string_is_safe_for_the_html_parser(text in any::<String>()) {
            let page = Url::parse("file:///srv/simple/x/").unwrap();
            let _ = parse_html_page(&text, &page);
            let _ = normalize_name(&text);
        }
    }
}
