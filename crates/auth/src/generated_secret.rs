//! The development signing secret: when no key is configured, `serve` makes one on its first
//! start and keeps it in the data folder, readable by its owner only, so that `serve` and
//! `token` agree without any set-up. Only `serve` makes it: another command that finds none
//! says where it looked, rather than signing with a secret no running service knows.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use secrecy::SecretString;

use crate::AuthSettings;

/// The file name of the generated secret inside the data folder.
pub const GENERATED_SECRET_FILE: &str = "hmac-secret";

/// Where the signing key of [`AuthSettings::with_generated_secret`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Keys are configured; nothing was read or generated.
    Configured,
    /// Read from, or newly written to, this file.
    DataDir(PathBuf),
}

/// Whether a missing generated secret may be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Make it (`serve`).
    Create,
    /// Refuse, naming where it was looked for (every other command).
    Refuse,
}

/// Why no generated secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum GeneratedSecretError {
    /// None was made yet, and this command may not make one.
    #[error(
        "no token key is configured (auth.hmac_secret, auth.public_key_files or auth.jwks_file) \
         and no generated secret exists at {0}: start `csbs-api serve` once with this data \
         folder (it makes the secret), point data_dir (CSBS__DATA_DIR) at the service's data \
         folder, or set CSBS__AUTH__HMAC_SECRET"
    )]
    Missing(PathBuf),
    /// The file could not be read, written or its folder made.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was tried.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl AuthSettings {
    /// Makes sure these settings have a key: when none is configured, takes the generated
    /// secret from `data_dir`, making it first if `if_missing` allows.
    pub fn with_generated_secret(
        &mut self,
        data_dir: &Path,
        if_missing: IfMissing,
    ) -> Result<SecretSource, GeneratedSecretError> {
        // With Keystone configured, tokens come from Keystone: no secret is made that would
        // let whoever reads the data folder mint tokens beside it.
        if self.has_jwt_keys() || self.keystone_url().is_some() {
            return Ok(SecretSource::Configured);
        }
        let path = data_dir.join(GENERATED_SECRET_FILE);
        let secret = match if_missing {
            IfMissing::Create => load_or_create(&path)?,
            IfMissing::Refuse if !path.exists() => return Err(GeneratedSecretError::Missing(path)),
            IfMissing::Refuse => read_existing(&path)?,
        };
        self.hmac_secret = Some(secret);
        Ok(SecretSource::DataDir(path))
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> GeneratedSecretError {
    GeneratedSecretError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn load_or_create(path: &Path) -> Result<SecretString, GeneratedSecretError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create the data folder", dir, e))?;
    }
    let fresh = random_hex::<32>();

    // Written whole under a name of its own, then linked into place: a reader (another
    // process starting at once) never sees a half-written file, and whoever links first wins.
    let draft = path.with_extension(format!("draft-{}", random_hex::<8>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&draft)
        .and_then(|mut file| {
            file.write_all(fresh.as_bytes())?;
            file.sync_all()
        })
        .map_err(|e| io("write", &draft, e));
    let linked = written.and_then(|()| match std::fs::hard_link(&draft, path) {
        Ok(()) => Ok(true),
        // Another process (or an earlier start) made it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(io("create", path, error)),
    });
    let _ = std::fs::remove_file(&draft);
    if linked? {
        Ok(SecretString::from(fresh))
    } else {
        read_existing(path)
    }
}

/// `N` random bytes, in hex.
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret in `path`; an empty file is an error that names it.
fn read_existing(path: &Path) -> Result<SecretString, GeneratedSecretError> {
    let text = std::fs::read_to_string(path).map_err(|e| io("read", path, e))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(io(
            "use",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
        ));
    }
    Ok(SecretString::from(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("csbs-secret-{}", random_hex::<8>()))
    }

    #[test]
    fn the_secret_is_made_once_and_private() {
        let dir = scratch();
        let path = dir.join(GENERATED_SECRET_FILE);
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

    #[test]
    fn processes_starting_at_once_get_one_whole_secret() {
        let dir = scratch();
        let path = dir.join(GENERATED_SECRET_FILE);
        let secrets: Vec<String> = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| load_or_create(&path).unwrap()))
                .collect();
            makers
                .into_iter()
                .map(|maker| maker.join().unwrap().expose_secret().to_owned())
                .collect()
        });
        assert!(
            secrets.iter().all(|s| s.len() == 64 && *s == secrets[0]),
            "{secrets:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no drafts are left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_empty_secret_file_is_an_error_naming_it() {
        let dir = scratch();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(GENERATED_SECRET_FILE);
        std::fs::write(&path, "").unwrap();
        let error = AuthSettings::default()
            .with_generated_secret(&dir, IfMissing::Refuse)
            .unwrap_err();
        assert!(
            error.to_string().contains(&path.display().to_string())
                && error.to_string().contains("empty"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_a_command_that_may_create_it_makes_the_secret() {
        let dir = scratch();
        let mut settings = AuthSettings::default();
        let refused = settings
            .with_generated_secret(&dir, IfMissing::Refuse)
            .unwrap_err();
        assert!(
            matches!(&refused, GeneratedSecretError::Missing(p) if p == &dir.join(GENERATED_SECRET_FILE))
        );
        assert!(refused.to_string().contains(&dir.display().to_string()));
        assert!(!dir.exists(), "nothing is made when refused");
        assert!(settings.hmac_secret.is_none());

        let made = settings
            .with_generated_secret(&dir, IfMissing::Create)
            .unwrap();
        assert_eq!(made, SecretSource::DataDir(dir.join(GENERATED_SECRET_FILE)));
        let mut other = AuthSettings::default();
        other
            .with_generated_secret(&dir, IfMissing::Refuse)
            .unwrap();
        assert_eq!(
            other.hmac_secret.unwrap().expose_secret(),
            settings.hmac_secret.unwrap().expose_secret(),
            "the next command finds the secret serve made"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn with_keystone_no_secret_is_made() {
        let dir = scratch();
        let mut settings = AuthSettings::default();
        settings.keystone.url = Some("http://keystone:5000/v3".to_owned());
        let source = settings
            .with_generated_secret(&dir, IfMissing::Create)
            .unwrap();
        assert_eq!(source, SecretSource::Configured);
        assert!(settings.hmac_secret.is_none());
        assert!(!dir.exists());
    }
}
