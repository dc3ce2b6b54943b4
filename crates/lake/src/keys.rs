//! Access keys of the lake. Each key belongs to one AWS-style account ID;
//! every resource and ARN carries that account, and a key sees only its own
//! account's resources.
//!
//! Keys come from configuration. With none configured, the lake makes a key
//! pair on first start and keeps it in its directory (mode 0600), so that
//! there is never a fixed, well-known secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use auditlake_cloudtrail::AccessKey;

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
}
