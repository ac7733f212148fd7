//! The self-signed certificate a server uses when given none: created in
//! the data directory on first start, reused afterwards so that clients'
//! pinned fingerprints stay valid.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// Returns the paths of the certificate and key in `data_dir`, creating
/// them first if they do not exist. The flag says whether they were created.
pub fn ensure_self_signed(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, bool)> {
    let cert = data_dir.join(CERT_FILE);
    let key = data_dir.join(KEY_FILE);
    if cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = std::env::var("HOSTNAME") {
        names.push(host);
    }
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    // Write the key first and restrict it before it holds anything.
    std::fs::write(&key, b"").with_context(|| format!("creating {}", key.display()))?;
    crate::platform::restrict_to_owner(&key)?;
    std::fs::write(&key, generated.key_pair.serialize_pem())
        .with_context(|| format!("writing {}", key.display()))?;
    std::fs::write(&cert, generated.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key, true))
}
