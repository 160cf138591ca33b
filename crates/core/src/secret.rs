//! Random secrets and the secrets evently keeps in its data directory.
//!
//! With no configuration evently must still be safe: there is no built-in default key. The first
//! start generates a random secret and keeps it in the data directory (mode 0600), so restarts
//! keep signed tokens valid.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use std::path::Path;

/// `n` random bytes from the operating system's CSPRNG.
///
/// # Errors
/// When the operating system has no randomness to give (not expected on any supported OS).
pub fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(buf)
}

/// A random token of 256 bits, URL-safe base64 without padding (43 characters).
///
/// # Errors
/// As [`random_bytes`].
pub fn random_token() -> anyhow::Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// Reads the secret kept in `dir/name`, or generates one, writes it with mode 0600 and returns it.
///
/// # Errors
/// When the directory cannot be created or the file cannot be read or written.
pub fn load_or_create(dir: &Path, name: &str) -> anyhow::Result<SecretString> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => {
            return Ok(SecretString::from(existing.trim().to_owned()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let value = URL_SAFE_NO_PAD.encode(random_bytes::<48>()?);
    write_private(&path, &value).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(file = %path.display(), "generated a new secret in the data directory");
    Ok(SecretString::from(value))
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
