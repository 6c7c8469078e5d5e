//! The one HTTP client graft uses for every download.
//!
//! TLS is rustls with the platform verifier, so the system certificate store is trusted
//! (a company's TLS-intercepting proxy whose CA is installed on the host works). On top
//! of that, pip's own network settings are honoured, because graft's users have already
//! configured pip for their network:
//! - `cert` (`PIP_CERT` or pip.conf `cert = ...`): a PEM bundle added as extra roots;
//! - `proxy` (`PIP_PROXY` or pip.conf): a proxy for every request;
//! - `timeout` / `default-timeout`: the per-operation network timeout.
//!
//! `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (and their lower-case forms)
//! are read by reqwest itself, as curl reads them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::python::pip::PipConfig;

/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default for each network operation (send, every read of a body), as pip's 15 s
/// is short for a slow mirror.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("cannot read the CA bundle {path} (pip's `cert` setting): {source}")]
    CertRead {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the CA bundle {path} (pip's `cert` setting) holds no usable PEM certificate: {message}"
    )]
    CertParse { path: String, message: String },
    #[error("pip's `proxy` setting {proxy:?} is not a usable proxy URL: {source}")]
    Proxy {
        proxy: String,
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Network settings beyond the environment's proxy variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpSettings {
    /// A PEM bundle whose certificates are trusted in addition to the system store.
    pub extra_ca_bundle: Option<PathBuf>,
    /// A proxy for every request (pip's `--proxy`), beside the `*_PROXY` variables.
    pub proxy: Option<String>,
    /// Per-operation timeout.
    pub timeout: Option<Duration>,
}

impl HttpSettings {
    /// The settings pip is configured with (see the module documentation).
    pub fn from_pip(config: &PipConfig) -> HttpSettings {
        let timeout = config
            .get("timeout")
            .or_else(|| config.get("default-timeout"))
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t > 0.0 && *t < 86_400.0)
            .map(Duration::from_secs_f64);
        HttpSettings {
            extra_ca_bundle: config.get("cert").map(PathBuf::from),
            proxy: config.get("proxy").map(str::to_string),
            timeout,
        }
    }
}

/// The user agent: `graft/<version>`.
pub fn user_agent() -> String {
    format!("graft/{}", env!("CARGO_PKG_VERSION"))
}

/// A client configured like the host's pip (the interpreter `$GRAFT_PYTHON`, else
/// `python3`; without one, only the environment and the system store apply).
pub fn client() -> Result<reqwest::blocking::Client, HttpError> {
    client_with(&HttpSettings::from_pip(&PipConfig::host()))
}

/// A client with explicit settings.
pub fn client_with(settings: &HttpSettings) -> Result<reqwest::blocking::Client, HttpError> {
    let mut builder = reqwest::blocking::Client::builder()
        .user_agent(user_agent())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(settings.timeout.unwrap_or(DEFAULT_TIMEOUT));
    if let Some(path) = &settings.extra_ca_bundle {
        builder = builder.tls_certs_merge(read_pem_bundle(path)?);
    }
    if let Some(proxy) = &settings.proxy {
        let proxy_url = if proxy.contains("://") {
            proxy.clone()
        } else {
            format!("http://{proxy}")
        };
        let p = reqwest::Proxy::all(&proxy_url)
            .map_err(|source| HttpError::Proxy {
                proxy: proxy.clone(),
                source,
            })?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(p);
    }
    builder.build().map_err(HttpError::Build)
}

fn read_pem_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let pem = std::fs::read(path).map_err(|source| HttpError::CertRead {
        path: path.display().to_string(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| HttpError::CertParse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(HttpError::CertParse {
            path: path.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_settings_are_taken_over() {
        let c = PipConfig::parse(
            "global.cert='/etc/ssl/corp.pem'\n:env:.default-timeout='180'\nglobal.proxy='proxy.corp:3128'\n",
        );
        let s = HttpSettings::from_pip(&c);
        assert_eq!(
            s.extra_ca_bundle.as_deref(),
            Some(Path::new("/etc/ssl/corp.pem"))
        );
        assert_eq!(s.timeout, Some(Duration::from_secs(180)));
        assert_eq!(s.proxy.as_deref(), Some("proxy.corp:3128"));
        assert_eq!(
            HttpSettings::from_pip(&PipConfig::parse("global.timeout='nan'\n")).timeout,
            None
        );
    }

    #[test]
    fn a_client_builds_with_the_system_bundle_as_extra_roots() {
        // Any PEM bundle will do; the Debian system bundle is what pip.conf names here.
        let bundle = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists());
        let settings = HttpSettings {
            extra_ca_bundle: bundle.map(Path::to_path_buf),
            proxy: Some("proxy.invalid:3128".into()),
            timeout: None,
        };
        client_with(&settings).unwrap();
    }

    #[test]
    fn a_bundle_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = client_with(&HttpSettings {
            extra_ca_bundle: Some(path),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let missing = client_with(&HttpSettings {
            extra_ca_bundle: Some(dir.path().join("missing.pem")),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("missing.pem") && missing.contains("cert"),
            "{missing}"
        );
    }
}
