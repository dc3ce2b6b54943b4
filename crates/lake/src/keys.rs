//! Access keys of the lake. Each key belongs to one AWS-style account ID;
//! every resource and ARN carries that account, and a key sees only its own
//! account's resources.
//!
//! Keys come from configuration. With none configured, the lake makes a key
//! pair on first start and keeps it in its directory (mode 0600), so that
//! there is never a fixed, well-known secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// One access key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    /// The public half, e.g. `AKIA...`.
    pub access_key_id: String,
    /// The signing secret.
    pub secret_access_key: String,
    /// The 12-digit account the key acts for.
    pub account_id: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

impl AccessKey {
    /// A fresh random key for a fresh random account.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pick = |rng: &mut rand::rngs::ThreadRng, set: &[u8], n: usize| -> String {
            (0..n)
                .map(|_| set[rng.random_range(0..set.len())] as char)
                .collect()
        };
        let access_key_id = format!("AKIA{}", pick(&mut rng, UPPER, 16));
        let secret_access_key = pick(&mut rng, SECRET, 40);
        let account_id = format!(
            "{}{}",
            rng.random_range(1..10),
            pick(&mut rng, b"0123456789", 11)
        );
        Self {
            access_key_id,
            secret_access_key,
            account_id,
        }
    }

    /// Checks the shape of a configured key, so a typo fails at start-up.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = (16..=128).contains(&self.access_key_id.len())
            && self
                .access_key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric());
        if !id_ok {
            return Err("access key ID must be 16-128 letters and digits".into());
        }
        if self.secret_access_key.len() < 16 {
            return Err("secret access key must be at least 16 characters".into());
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "account ID must be 12 digits, got {:?}",
                self.account_id
            ));
        }
        Ok(())
    }
}

/// The keys the lake accepts, by access key ID.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: HashMap<String, AccessKey>,
}

impl Keyring {
    /// A keyring holding `keys`.
    pub fn new(keys: impl IntoIterator<Item = AccessKey>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|k| (k.access_key_id.clone(), k))
                .collect(),
        }
    }

    /// The key with this ID.
    pub fn get(&self, access_key_id: &str) -> Option<&AccessKey> {
        self.keys.get(access_key_id)
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Name of the generated credentials file inside the lake directory.
pub const GENERATED_KEY_FILE: &str = "lake-credentials.json";

/// Reads the generated key from `dir`, making and storing one on first use.
/// Returns the key, the file's path and whether it was made just now.
pub fn load_or_generate(dir: &Path) -> std::io::Result<(AccessKey, PathBuf, bool)> {
    let path = dir.join(GENERATED_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let key: AccessKey = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            Ok((key, path, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = AccessKey::generate();
            write_private(&path, &serde_json::to_vec_pretty(&key)?)?;
            Ok((key, path, true))
        }
        Err(e) => Err(e),
    }
}

/// Writes a file only its owner can read, atomically.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let a = AccessKey::generate();
        let b = AccessKey::generate();
        a.validate().unwrap();
        assert_ne!(a.secret_access_key, b.secret_access_key);
        assert!(a.access_key_id.starts_with("AKIA"));
    }

    #[test]
    fn generated_key_is_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let (first, path, made) = load_or_generate(dir.path()).unwrap();
        assert!(made);
        let (again, _, made_again) = load_or_generate(dir.path()).unwrap();
        assert!(!made_again);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "credentials file readable by others");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let key = AccessKey::generate();
        assert!(!format!("{key:?}").contains(&key.secret_access_key));
    }
}
