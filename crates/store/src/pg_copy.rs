//! PostgreSQL's binary `COPY` format, in which every audit event is
//! written on PostgreSQL (`batch`).
//!
//! `COPY ... FROM STDIN (FORMAT binary)` is the cheapest way to hand rows to
//! PostgreSQL: no SQL to parse, no text to lex, and the server inserts them
//! in multi-row batches.
//!
//! The format (PostgreSQL documentation, "COPY", "Binary Format"): a
//! signature and two 32-bit words, then per row a 16-bit field count and
//! per field a 32-bit length (-1 for NULL) followed by the value in the
//! type's binary send format, then a 16-bit -1. Only the two types the
//! writer's tables use are needed: `text` is its UTF-8 bytes, `bigint` its
//! 8 bytes in network order.

/// The binary COPY header: signature, flags (no OIDs), no extension area.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows being encoded for one `COPY ... FROM STDIN (FORMAT binary)`.
pub(crate) struct CopyRows {
    buf: Vec<u8>,
    /// Fields each row has: a row with another count is a bug, caught in
    /// debug builds (PostgreSQL would reject the whole COPY).
    fields: u16,
    /// Fields written of the current row.
    written: u16,
}

impl CopyRows {
    /// An empty body for rows of `fields` columns, with room for about
    /// `bytes` of data.
    pub(crate) fn new(fields: u16, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER.len() + bytes + 2);
        buf.extend_from_slice(HEADER);
        CopyRows {
            buf,
            fields,
            written: fields,
        }
    }

    /// Starts the next row.
    pub(crate) fn row(&mut self) -> &mut Self {
        debug_assert_eq!(self.written, self.fields, "the previous row is incomplete");
        self.buf
            .extend_from_slice(&(self.fields as i16).to_be_bytes());
        self.written = 0;
        self
    }

    /// A `text` field; `None` is NULL.
    pub(crate) fn text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(s) => {
                self.len(s.len());
                self.buf.extend_from_slice(s.as_bytes());
            }
            None => self.null(),
        }
        self
    }

    /// A `text` field holding `value`'s `Display` form (UUIDs are stored as
    /// text on both backends).
    pub(crate) fn display(&mut self, value: Option<impl std::fmt::Display>) -> &mut Self {
        use std::io::Write;
        match value {
            Some(v) => {
                let at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                write!(self.buf, "{v}").expect("writing to a Vec cannot fail");
                let len = field_len(self.buf.len() - at - 4);
                self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
                self.written += 1;
            }
            None => self.null(),
        }
        self
    }

    /// A `bigint` field.
    pub(crate) fn int8(&mut self, value: i64) -> &mut Self {
        self.len(8);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// The whole COPY body, trailer included.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        debug_assert_eq!(self.written, self.fields, "the last row is incomplete");
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }

    fn len(&mut self, len: usize) {
        self.buf.extend_from_slice(&field_len(len).to_be_bytes());
        self.written += 1;
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self.written += 1;
    }
}

/// A field's length word. Every value the writer sends is bounded far below
/// 2 GiB by the API's size limits, and PostgreSQL caps a field at 1 GiB.
fn field_len(len: usize) -> i32 {
    i32::try_from(len).expect("a COPY field is under 2 GiB")
}

#[cfg(test)]
mod tests {
    use super::CopyRows;

    #[test]
    fn encodes_rows_as_postgres_documents_them() {
        let mut rows = CopyRows::new(3, 0);
        rows.row()
            .int8(-2)
            .text(Some("é"))
            .display(Some(uuid::Uuid::nil()));
        rows.row().int8(1).text(None).display(None::<uuid::Uuid>);
        let body = rows.finish();
        let nil = b"00000000-0000-0000-0000-000000000000";
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0, 3, 0, 0, 0, 8]);
        want.extend_from_slice(&(-2i64).to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 2, 0xc3, 0xa9, 0, 0, 0, 36]);
        want.extend_from_slice(nil);
        want.extend_from_slice(&[0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0xff; 8]);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(body, want);
    }
}
