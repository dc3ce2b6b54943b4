//! The keys of the per-channel `id` index.

use sha2::{Digest as _, Sha256};

use crate::error::{LakeError, Result};

/// A key of the per-channel `id` index (`event_ids`). It starts with 8
/// bytes of SHA-256 of the channel ID, so that a channel's keys are one
/// range (deleting a channel deletes the range), then a tag and the `id`:
///
/// - a UUID in its canonical text form (the forwarder's ids, and what most
///   senders send): tag [`UUID_ID`] and its 16 bytes;
/// - any other `id` of at most [`RAW_ID_MAX`] bytes: tag [`RAW_ID`] and
///   the `id` itself;
/// - a longer one: tag [`HASHED_ID`] and the first 16 bytes of SHA-256 of
///   the channel ID and the `id`. Two such `id`s of one channel would need
///   the same 128-bit hash to be taken for one another: for a channel with
///   10^10 events, a chance of about 10^-19.
///
/// The tags keep the three kinds apart, so no two `id`s share a key but
/// through that hash. With the `eventID` as 16 bytes a row is about a third
/// of one holding the three UUIDs as text (the index is most of the
/// catalog). Keys keep the order of `id`s that come in order (time-ordered
/// UUIDs, counters), so each call's new keys land on the last pages of the
/// B-tree; hashing every `id` would scatter them over the whole tree, and
/// each commit would rewrite about a page per entry into the WAL.
#[derive(Clone, Copy)]
pub(super) struct IdKey {
    bytes: [u8; 8 + 1 + RAW_ID_MAX],
    len: usize,
}

impl IdKey {
    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Tag of an `id` that is a UUID in canonical (lowercase, hyphenated) text.
const UUID_ID: u8 = 0;
/// Tag of a short `id` kept as itself.
const RAW_ID: u8 = 1;
/// Tag of a long `id` kept as a hash.
const HASHED_ID: u8 = 2;
/// The longest `id` (in bytes) kept as itself: its key is then 32 bytes.
const RAW_ID_MAX: usize = 23;

pub(super) fn channel_prefix(channel: &str) -> [u8; 8] {
    let digest = Sha256::digest(channel.as_bytes());
    digest[..8].try_into().expect("8 bytes")
}

/// The first key past every key of the channel with `prefix`; `None` when
/// no key is (a prefix of all ones).
pub(super) fn next_prefix(prefix: [u8; 8]) -> Option<Vec<u8>> {
    u64::from_be_bytes(prefix)
        .checked_add(1)
        .map(|next| next.to_be_bytes().to_vec())
}

/// The first 16 bytes of SHA-256 of `channel`, NUL, `id`.
fn id_hash(channel: &str, id: &str) -> [u8; 16] {
    let mut hash = Sha256::new();
    // Channel IDs are UUIDs: no NUL inside one, so the pair is unambiguous.
    hash.update(channel.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    hash.finalize()[..16].try_into().expect("16 bytes")
}

/// `id` if it is a UUID written the one canonical way, so that the 16 bytes
/// stand for exactly one `id` string.
fn canonical_uuid(id: &str) -> Option<uuid::Uuid> {
    if id.len() != uuid::fmt::Hyphenated::LENGTH {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (uuid.hyphenated().encode_lower(&mut text).as_bytes() == id.as_bytes()).then_some(uuid)
}

/// The key of `id` in `channel`, whose prefix is `prefix`
/// ([`channel_prefix`], computed once per call rather than per entry).
pub(super) fn id_key(prefix: [u8; 8], channel: &str, id: &str) -> IdKey {
    let mut key = IdKey {
        bytes: [0; 8 + 1 + RAW_ID_MAX],
        len: 0,
    };
    key.bytes[..8].copy_from_slice(&prefix);
    key.len = if let Some(uuid) = canonical_uuid(id) {
        key.bytes[8] = UUID_ID;
        key.bytes[9..25].copy_from_slice(uuid.as_bytes());
        25
    } else if id.len() <= RAW_ID_MAX {
        key.bytes[8] = RAW_ID;
        key.bytes[9..9 + id.len()].copy_from_slice(id.as_bytes());
        9 + id.len()
    } else {
        key.bytes[8] = HASHED_ID;
        key.bytes[9..25].copy_from_slice(&id_hash(channel, id));
        25
    };
    key
}

/// An `eventID` (a UUID the lake made) as its 16 bytes.
pub(super) fn event_id_bytes(event_id: &str) -> Result<Vec<u8>> {
    let id = uuid::Uuid::parse_str(event_id)
        .map_err(|e| LakeError::Invariant(format!("eventID {event_id:?} is not a UUID: {e}")))?;
    Ok(id.as_bytes().to_vec())
}

pub(super) fn event_id_text(bytes: &[u8]) -> Result<String> {
    let id = uuid::Uuid::from_slice(bytes)
        .map_err(|e| LakeError::Invariant(format!("stored eventID is not a UUID: {e}")))?;
    Ok(id.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_channels_keys_are_one_range() {
        let prefix = channel_prefix("c");
        let next = next_prefix(prefix).unwrap();
        for id in [
            "",
            "a",
            "zzzz",
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            &"z".repeat(128),
        ] {
            let key = id_key(prefix, "c", id);
            assert!(key.as_slice() >= prefix.as_slice() && key.as_slice() < next.as_slice());
        }
        assert_eq!(next_prefix([0xff; 8]), None);
        assert_eq!(
            next_prefix([0, 0, 0, 0, 0, 0, 0, 0xff]).unwrap(),
            [0, 0, 0, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn keys_keep_the_order_of_ids_that_come_in_order() {
        let prefix = channel_prefix("c");
        let key = |id: &str| id_key(prefix, "c", id).as_slice().to_vec();
        // Time-ordered UUIDs (the forwarder's ids) and counters: each
        // call's new keys follow the last ones instead of scattering over
        // the index, where each commit would rewrite a page per entry.
        let uuids: Vec<String> = (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let counters: Vec<String> = (100_000..100_100).map(|n| format!("e{n}")).collect();
        for ids in [&uuids, &counters] {
            let keys: Vec<Vec<u8>> = ids.iter().map(|id| key(id)).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        }
        assert_eq!(key(&uuids[0]).len(), 25);
        assert_eq!(
            key(&uuids[0])[8..],
            [
                &[UUID_ID][..],
                uuid::Uuid::parse_str(&uuids[0]).unwrap().as_bytes()
            ]
            .concat()
        );
        assert_eq!(key("e100000")[8..], *b"\x01e100000");
    }

    #[test]
    fn ids_of_different_kinds_never_share_a_key() {
        let prefix = channel_prefix("c");
        let lower = "01937a4e-2f6b-7c3d-9e8f-0a1b2c3d4e5f";
        let ids = [
            lower.to_owned(),
            lower.to_uppercase(),
            lower.replace('-', ""),
            format!("{{{lower}}}"),
            "x".repeat(RAW_ID_MAX),
            "x".repeat(RAW_ID_MAX + 1),
            "x".repeat(RAW_ID_MAX + 2),
        ];
        let keys: HashSet<Vec<u8>> = ids
            .iter()
            .map(|id| id_key(prefix, "c", id).as_slice().to_vec())
            .collect();
        assert_eq!(keys.len(), ids.len());
        let tags: Vec<u8> = ids
            .iter()
            .map(|id| id_key(prefix, "c", id).as_slice()[8])
            .collect();
        assert_eq!(
            tags,
            [UUID_ID, HASHED_ID, HASHED_ID, HASHED_ID, RAW_ID, HASHED_ID, HASHED_ID]
        );
    }
}
