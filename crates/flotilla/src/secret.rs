//! The cluster secret behind service credentials: from configuration, or generated once into the
//! data directory (mode 0600, in a 0700 directory; an existing looser one is tightened) so that
//! processes sharing a data directory agree on it.

use anyhow::{Context, bail};
use std::io::Write;
use std::path::Path;

const FILE: &str = "service-secret";
const MIN_LEN: usize = 32;

/// The configured secret, or the one stored in `data_dir` (created if absent).
pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < MIN_LEN {
            bail!("service_secret must be at least {MIN_LEN} characters");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    flotilla_chassis::private_files::private_dir(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let path = data_dir.join(FILE);
    flotilla_chassis::private_files::tighten_file(&path)
        .with_context(|| format!("tightening {}", path.display()))?;
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= MIN_LEN {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(hex.as_bytes())?;
    Ok(hex.into_bytes())
}
