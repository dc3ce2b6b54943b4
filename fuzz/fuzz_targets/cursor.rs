//! Cursors clients send back: JSON:API list cursors (`starting_after`,
//! `ending_before`), audit-search cursors (`cursor`), and the lake's
//! `NextToken`s.
//!
//! Asserts round trips both ways: every cursor the API accepts is the one
//! it would have issued for the same position (so a cursor is canonical
//! and cannot alias another), and every position it issues a cursor for
//! reads back as that position. The input also seeds positions: its first
//! bytes become a UUID, a search position, an offset.

#![no_main]

use auditlake_api::fuzzing::{decode_cursor, decode_search_cursor, encode_cursor};
use auditlake_lake::fuzzing::{decode_token, encode_token};
use auditlake_store::SearchCursor;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fn bytes<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in data.iter().skip(at).take(N).enumerate() {
        out[i] = *b;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // Positions from the input's bytes, through encode then decode.
    let id = Uuid::from_bytes(bytes(data, 0));
    assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
    let position = SearchCursor {
        created_us: i64::from_le_bytes(bytes(data, 0)),
        seq: i64::from_le_bytes(bytes(data, 8)),
        snapshot: i64::from_le_bytes(bytes(data, 16)),
    };
    assert_eq!(decode_search_cursor(&position.encode()), Some(position));
    let offset = u64::from_le_bytes(bytes(data, 0)) as usize;
    assert_eq!(decode_token(Some(&encode_token(offset))).ok(), Some(offset));

    // The input as a cursor text, through decode then encode.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(id) = decode_cursor(text) {
        assert_eq!(encode_cursor(id), text);
    }
    if let Some(c) = decode_search_cursor(text) {
        assert_eq!(decode_search_cursor(&c.encode()), Some(c));
    }
    if let Ok(n) = decode_token(Some(text)) {
        assert_eq!(decode_token(Some(&encode_token(n))).ok(), Some(n));
    }
});
