//! Access keys: the public ID, the signing secret and the 12-digit account
//! the key acts for, as the lake checks them and its clients sign with them.

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
    fn debug_output_hides_the_secret() {
        let key = AccessKey::generate();
        assert!(!format!("{key:?}").contains(&key.secret_access_key));
    }
}
