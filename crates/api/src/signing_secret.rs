//! The development signing secret: when no key is configured, the service makes one on first
//! start and keeps it in the data folder, readable by its owner only, so that `serve` and
//! `token` agree without any set-up.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use secrecy::SecretString;

use crate::settings::Settings;

/// The file name of the generated secret inside `data_dir`.
pub const SECRET_FILE: &str = "hmac-secret";

/// Where the secret came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Keys are configured; nothing was generated.
    Configured,
    /// Read from, or newly written to, this file.
    DataDir(PathBuf),
}

/// Makes sure `settings.auth` has a key: when none is configured, loads the secret from the
/// data folder, generating it there first if needed.
pub fn ensure_signing_key(settings: &mut Settings) -> anyhow::Result<SecretSource> {
    let auth = &settings.auth;
    if auth.hmac_secret.is_some() || !auth.public_key_files.is_empty() || auth.jwks_file.is_some() {
        return Ok(SecretSource::Configured);
    }
    let path = settings.data_dir.join(SECRET_FILE);
    let secret = load_or_create(&path)?;
    settings.auth.hmac_secret = Some(secret);
    Ok(SecretSource::DataDir(path))
}

fn load_or_create(path: &Path) -> anyhow::Result<SecretString> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(SecretString::from(fresh))
        }
        // Another process (or an earlier start) made it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(SecretString::from(text.trim().to_owned()))
        }
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_secret_is_made_once_and_private() {
        let dir = std::env::temp_dir().join(format!("csbs-secret-{}", uuid::Uuid::new_v4()));
        let path = dir.join(SECRET_FILE);
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
