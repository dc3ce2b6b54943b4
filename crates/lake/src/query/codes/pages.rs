//! Decoding one Parquet column chunk's pages into counts per dictionary
//! entry: the dictionary page, then data pages of codes in the RLE/bit-packed
//! hybrid encoding, read where they lie. The input comes from object
//! storage, which others may write too, so every length, code and bit width
//! read from it is checked before it sizes anything (`fuzz/` feeds this
//! module mutated files).

use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use datafusion::common::{exec_datafusion_err, DataFusionError, Result};
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader as _};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

/// The counts of one column chunk: rows per dictionary entry, and rows
/// where the value (or a struct above it) is null.
#[derive(Debug, PartialEq)]
pub(crate) struct ChunkCounts {
    pub(crate) dictionary: Vec<Bytes>,
    pub(crate) counts: Vec<u64>,
    pub(crate) nulls: u64,
}

/// A column chunk's bytes, read at the file offsets its metadata names.
pub(super) struct ChunkBytes {
    pub(super) start: u64,
    pub(super) bytes: Bytes,
}

impl ChunkBytes {
    fn offset(&self, start: u64) -> parquet::errors::Result<u64> {
        start.checked_sub(self.start).ok_or_else(|| {
            parquet::errors::ParquetError::General(format!(
                "read at {start}, before the column chunk at {}",
                self.start
            ))
        })
    }
}

impl Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for ChunkBytes {
    type T = ToTheEnd;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(ToTheEnd(self.bytes.get_read(self.offset(start)?)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.bytes.get_bytes(self.offset(start)?, length)
    }
}

/// The chunk's bytes from an offset on, where a read past the end is an
/// error rather than `Ok(0)`. The parquet crate reads page headers from a
/// `Read` and skips a Thrift field it does not know by copying its claimed
/// length to a sink, which ends quietly at the end of the input: a header
/// that claims a list of 2^31 eight-byte values of such a field would be
/// skipped element by element, billions of quiet reads, instead of failing.
pub(super) struct ToTheEnd(bytes::buf::Reader<Bytes>);

impl std::io::Read for ToTheEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 if !buf.is_empty() => Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => Ok(n),
        }
    }
}

/// Counts the codes of the grouped column's chunk `bytes` in `row_group`;
/// `None` when a data page holds something other than dictionary codes (or
/// the chunk is not of strings), which the Arrow reader must then decode.
/// A chunk that contradicts its own metadata is an error.
pub(crate) fn count_chunk(
    bytes: Bytes,
    row_group: &RowGroupMetaData,
    leaf: usize,
) -> Result<Option<ChunkCounts>> {
    let column = row_group.column(leaf);
    let descr = column.column_descr();
    if descr.max_rep_level() > 0 || descr.physical_type() != PhysicalType::BYTE_ARRAY {
        return Ok(None);
    }
    let max_def = descr.max_def_level();
    let (start, _) = column.byte_range();
    let reader = Arc::new(ChunkBytes { start, bytes });
    let rows = row_group.num_rows() as usize;
    let mut pages =
        SerializedPageReader::new(reader, column, rows, None).map_err(DataFusionError::from)?;
    // The dictionary page's entries, and the tally of codes bounded by
    // their number.
    let mut dictionary: Option<(Vec<Bytes>, Tally)> = None;
    let (mut nulls, mut values) = (0u64, 0u64);
    while let Some(page) = pages.get_next_page().map_err(DataFusionError::from)? {
        let (codes, present, page_values) = match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if dictionary.is_some() {
                    return Err(corrupt("a second dictionary page"));
                }
                if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                    return Ok(None);
                }
                let entries = plain_strings(buf, num_values as usize)?;
                let tally = Tally::new(entries.len());
                dictionary = Some((entries, tally));
                continue;
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                ..
            } => {
                let mut buf = buf;
                let present = if max_def == 0 {
                    num_values as u64
                } else {
                    if def_level_encoding != Encoding::RLE {
                        return Ok(None);
                    }
                    let len = buf
                        .try_get_u32_le()
                        .map_err(|_| corrupt("a truncated definition level length"))?
                        as usize;
                    if len > buf.len() {
                        return Err(corrupt("definition levels past the page's end"));
                    }
                    let levels = buf.split_to(len);
                    let mut histogram = Tally::new(max_def as usize + 1);
                    histogram.hybrid(&levels, bit_width(max_def as u64), num_values as usize)?;
                    histogram.entries()?[max_def as usize]
                };
                (dictionary_codes(encoding, buf)?, present, num_values as u64)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                num_nulls,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                // Summed as usize: corrupt lengths must not overflow.
                let levels = def_levels_byte_len as usize + rep_levels_byte_len as usize;
                if levels > buf.len() || num_nulls > num_values {
                    return Err(corrupt("levels past the page's end"));
                }
                let present = u64::from(num_values - num_nulls);
                (
                    dictionary_codes(encoding, buf.slice(levels..))?,
                    present,
                    num_values as u64,
                )
            }
        };
        let Some(codes) = codes else {
            return Ok(None);
        };
        let Some((_, tally)) = dictionary.as_mut() else {
            return Err(corrupt("dictionary codes before the dictionary page"));
        };
        match codes.first() {
            Some(&width) => tally.hybrid(&codes[1..], width, present as usize)?,
            // A page of nulls only needs no codes.
            None if present == 0 => {}
            None => return Err(corrupt("an empty data page")),
        }
        nulls += page_values - present;
        values += page_values;
    }
    if values != rows as u64 {
        return Err(corrupt(
            "pages whose values differ from the row group's rows",
        ));
    }
    let (dictionary, counts) = match dictionary {
        Some((entries, tally)) => (entries, tally.entries()?),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Some(ChunkCounts {
        dictionary,
        counts,
        nulls,
    }))
}

/// The codes of a data page's value section, `None` when its values are not
/// dictionary codes.
fn dictionary_codes(encoding: Encoding, values: Bytes) -> Result<Option<Bytes>> {
    Ok(matches!(
        encoding,
        Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
    )
    .then_some(values))
}

/// The `n` strings of a PLAIN-encoded dictionary page.
fn plain_strings(mut buf: Bytes, n: usize) -> Result<Vec<Bytes>> {
    let mut entries = Vec::with_capacity(n.min(buf.len() / 4));
    for _ in 0..n {
        let len = buf
            .try_get_u32_le()
            .map_err(|_| corrupt("a truncated dictionary entry"))? as usize;
        if len > buf.len() {
            return Err(corrupt("a dictionary entry past the page's end"));
        }
        entries.push(buf.split_to(len));
    }
    Ok(entries)
}

/// Bits the hybrid encoding gives each value up to `max`.
fn bit_width(max: u64) -> u8 {
    (u64::BITS - max.leading_zeros()) as u8
}

fn corrupt(what: &str) -> DataFusionError {
    exec_datafusion_err!("corrupt Parquet column chunk: {what}")
}

fn past_the_end() -> DataFusionError {
    corrupt("a code past the dictionary's end")
}

/// Counts of the values of hybrid-encoded streams whose values are below
/// a bound known before any is read (a dictionary's length, or the highest
/// definition level plus one). Values below 256 go into four interleaved
/// tables, so that consecutive equal values do not wait on one counter;
/// wider ones into a table that grows at most to the bound, so that a
/// corrupt code costs an error, never an allocation sized by the code.
struct Tally {
    narrow: Box<[[u64; 256]; 4]>,
    wide: Vec<u64>,
    values: usize,
}

/// Widest value the hybrid encoding holds in Parquet (levels and codes are
/// 32-bit).
const MAX_BIT_WIDTH: u8 = 32;

impl Tally {
    /// A tally of values below `values`.
    fn new(values: usize) -> Self {
        Self {
            narrow: Box::new([[0; 256]; 4]),
            wide: Vec::new(),
            values,
        }
    }

    /// Counts the first `n` values of the RLE/bit-packed hybrid stream
    /// `data` whose values are `width` bits wide.
    fn hybrid(&mut self, data: &[u8], width: u8, n: usize) -> Result<()> {
        if width > MAX_BIT_WIDTH {
            return Err(corrupt("a bit width over 32"));
        }
        if width == 0 {
            // Every value is 0.
            self.narrow[0][0] += n as u64;
            return Ok(());
        }
        let mut rest = data;
        let mut left = n;
        while left > 0 {
            let header = varint(&mut rest)?;
            if header & 1 == 0 {
                let run = ((header >> 1) as usize).min(left);
                let size = usize::from(width).div_ceil(8);
                if rest.len() < size {
                    return Err(corrupt("a truncated run"));
                }
                let mut value = [0u8; 8];
                value[..size].copy_from_slice(&rest[..size]);
                rest = &rest[size..];
                self.add(u64::from_le_bytes(value), run as u64)?;
                left -= run;
            } else {
                let groups = (header >> 1) as usize;
                let size = groups * usize::from(width);
                if rest.len() < size {
                    return Err(corrupt("a truncated bit-packed run"));
                }
                // The last run may be padded past the stream's values.
                let count = (groups * 8).min(left);
                // The words may reach past the run into the next: only the
                // run's bits are used.
                self.unpack(rest, width, count)?;
                rest = &rest[size..];
                left -= count;
            }
            if header >> 1 == 0 && left > 0 {
                return Err(corrupt("an empty run"));
            }
        }
        Ok(())
    }

    /// Counts `n` of `value`. Narrow values past the bound are counted
    /// and refused by [`Tally::entries`]; wide ones are refused here,
    /// before the table grows.
    fn add(&mut self, value: u64, n: u64) -> Result<()> {
        match usize::try_from(value) {
            Ok(v) if v < 256 => self.narrow[0][v] += n,
            Ok(v) if v < self.values => {
                if self.wide.len() <= v {
                    self.wide.resize(v + 1, 0);
                }
                self.wide[v] += n;
            }
            _ => return Err(past_the_end()),
        }
        Ok(())
    }

    /// Counts the first `count` values of bit-packed `data` (a run and
    /// whatever follows it).
    fn unpack(&mut self, data: &[u8], width: u8, count: usize) -> Result<()> {
        let width = usize::from(width);
        let mask = (1u64 << width) - 1;
        let full = count / 8;
        let fast = match width {
            1 => unpack_words::<1>(data, full, &mut self.narrow),
            2 => unpack_words::<2>(data, full, &mut self.narrow),
            3 => unpack_words::<3>(data, full, &mut self.narrow),
            4 => unpack_words::<4>(data, full, &mut self.narrow),
            5 => unpack_words::<5>(data, full, &mut self.narrow),
            6 => unpack_words::<6>(data, full, &mut self.narrow),
            7 => unpack_words::<7>(data, full, &mut self.narrow),
            8 => unpack_words::<8>(data, full, &mut self.narrow),
            _ => 0,
        };
        for i in fast * 8..count {
            self.add(bit_field(data, i * width, mask), 1)?;
        }
        Ok(())
    }

    /// The counts of the values below the bound; a value at or past it (a
    /// code past the dictionary's end) is an error.
    fn entries(&self) -> Result<Vec<u64>> {
        let entries = self.values;
        let mut counts = vec![0u64; entries.max(256)];
        for way in self.narrow.iter() {
            for (c, n) in counts.iter_mut().zip(way) {
                *c += n;
            }
        }
        for (c, n) in counts.iter_mut().zip(&self.wide) {
            *c += n;
        }
        if counts[entries..].iter().any(|&n| n > 0) {
            return Err(past_the_end());
        }
        counts.truncate(entries);
        Ok(counts)
    }
}

/// Counts the values of the first of `groups` bit-packed groups of eight
/// `W`-bit values (`W` <= 8: a group is `W` bytes) that can be read as whole
/// 8-byte words inside `data`; returns how many groups that was. One load
/// and eight constant shifts per group: this loop is where a group-by on
/// event names spends its time.
fn unpack_words<const W: usize>(data: &[u8], groups: usize, narrow: &mut [[u64; 256]; 4]) -> usize {
    let mask = (1u64 << W) - 1;
    let words = if data.len() < 8 {
        0
    } else {
        ((data.len() - 8) / W + 1).min(groups)
    };
    for g in 0..words {
        let word: [u8; 8] = data[g * W..g * W + 8].try_into().expect("8 bytes");
        let word = u64::from_le_bytes(word);
        for i in 0..8 {
            narrow[i & 3][((word >> (i * W)) & mask) as usize] += 1;
        }
    }
    words
}

/// The `width`-bit value at bit `bit` of little-endian bit-packed `data`.
fn bit_field(data: &[u8], bit: usize, mask: u64) -> u64 {
    let byte = bit / 8;
    let mut word = [0u8; 8];
    let end = data.len().min(byte + 8);
    word[..end - byte].copy_from_slice(&data[byte..end]);
    (u64::from_le_bytes(word) >> (bit % 8)) & mask
}

/// A ULEB128 run header.
fn varint(data: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = data
            .split_first()
            .ok_or_else(|| corrupt("a truncated run header"))?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a run header over 32 bits"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn reading_past_the_chunk_is_an_error_not_a_quiet_end() {
        use std::io::Read as _;
        let chunk = ChunkBytes {
            start: 100,
            bytes: Bytes::from_static(b"abc"),
        };
        let mut r = chunk.get_read(101).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        let err = r.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        // What the parquet crate does to skip a field it does not know.
        let skipped = std::io::copy(
            &mut chunk.get_read(100).unwrap().take(1 << 40),
            &mut std::io::sink(),
        );
        assert!(skipped.is_err(), "{skipped:?}");
    }

    /// `values` bit-packed `width` bits each, as Parquet packs them.
    fn pack(values: &[u64], width: usize) -> Vec<u8> {
        let mut out = vec![0u8; (values.len() * width).div_ceil(8)];
        for (i, v) in values.iter().enumerate() {
            for b in 0..width {
                if (v >> b) & 1 == 1 {
                    let bit = i * width + b;
                    out[bit / 8] |= 1 << (bit % 8);
                }
            }
        }
        out
    }

    /// A bit-packed run of `values` (a multiple of eight).
    fn packed_run(values: &[u64], width: usize) -> Vec<u8> {
        assert_eq!(values.len() % 8, 0);
        let mut run = vec![(((values.len() / 8) << 1) | 1) as u8];
        run.extend(pack(values, width));
        run
    }

    fn counts(data: &[u8], width: u8, n: usize, entries: usize) -> Result<Vec<u64>> {
        let mut tally = Tally::new(entries);
        tally.hybrid(data, width, n)?;
        tally.entries()
    }

    #[test]
    fn runs_and_packed_groups_are_counted_at_every_width() {
        for width in 1..=20usize {
            let entries = 1usize << width.min(14);
            let values: Vec<u64> = (0..64u64)
                .map(|i| (i * 2_654_435_761) % entries as u64)
                .collect();
            // A run of 5 of the last entry, then the values packed in two
            // runs (a word read in the first reaches into the second), of
            // which the last 3 are padding.
            let last = entries as u64 - 1;
            let mut data = vec![5 << 1];
            data.extend(&last.to_le_bytes()[..width.div_ceil(8)]);
            data.extend(packed_run(&values[..24], width));
            data.extend(packed_run(&values[24..], width));
            let got = counts(&data, width as u8, 5 + 61, entries).unwrap();
            let mut expected = vec![0u64; entries];
            expected[last as usize] += 5;
            for v in &values[..61] {
                expected[*v as usize] += 1;
            }
            assert_eq!(got, expected, "width {width}");
        }
    }

    #[test]
    fn width_zero_is_all_the_first_entry() {
        assert_eq!(counts(&[], 0, 7, 1).unwrap(), vec![7]);
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        let three = packed_run(&[0, 1, 2, 7, 0, 1, 2, 0], 3);
        for (data, width, n, what) in [
            // Code 7 of a three-entry dictionary.
            (three.clone(), 3, 8, "past the dictionary"),
            (three[..2].to_vec(), 3, 8, "truncated bit-packed"),
            (vec![6 << 1], 9, 6, "truncated run"),
            (vec![0x80, 0x80], 3, 4, "truncated run header"),
            (vec![0, 1], 3, 4, "empty run"),
            (vec![2, 0], 33, 1, "bit width over 32"),
            // The widest code a run can hold, and a bit-packed one: refused
            // before the tally grows towards them (32 GiB for the first).
            (
                vec![1 << 1, 0xff, 0xff, 0xff, 0xff],
                32,
                1,
                "past the dictionary",
            ),
            (
                packed_run(&[0, 1, 2, 0, 0, 0, 0, 1 << 30], 31),
                31,
                8,
                "past the dictionary",
            ),
        ] {
            let err = counts(&data, width, n, 3).unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn dictionary_pages_are_read_and_checked() {
        let mut page = Vec::new();
        for s in ["a", "", "org.create"] {
            page.extend((s.len() as u32).to_le_bytes());
            page.extend(s.as_bytes());
        }
        let entries = plain_strings(Bytes::from(page.clone()), 3).unwrap();
        assert_eq!(entries, vec!["a", "", "org.create"]);
        let err = plain_strings(Bytes::from(page[..page.len() - 1].to_vec()), 3).unwrap_err();
        assert!(err.to_string().contains("past the page's end"), "{err}");
    }

    #[test]
    fn bit_widths_fit_their_maximum() {
        let widths: BTreeMap<u64, u8> = [0, 1, 2, 3, 7, 8, 255, 256]
            .map(|m| (m, bit_width(m)))
            .into();
        assert_eq!(
            widths,
            [
                (0, 0),
                (1, 1),
                (2, 2),
                (3, 2),
                (7, 3),
                (8, 4),
                (255, 8),
                (256, 9)
            ]
            .into()
        );
    }
}
