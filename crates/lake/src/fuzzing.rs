//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`,
//! off in every build but theirs): the request parsers, the SQL guard and
//! the page decoding, for code whose modules are private. Not an API;
//! nothing else may use it.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, DictionaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{WriterProperties, WriterVersion};

use crate::query::codes::count_chunk;

// The parsers and checks the other fuzz targets reach, from their private
// modules.
pub use crate::query::check_plan;
pub use crate::query::sql::{prepare, quote_store_ids, MAX_STATEMENT};
pub use crate::wire::arn::{Arn, Kind};
pub use crate::wire::control::{decode_token, encode_token, Paging, Request};
pub use crate::wire::data::{parse_body, MAX_EVENTS};

/// A column chunk that [`count_pages`] decodes, with the metadata of the
/// file it came from.
struct Fixture {
    metadata: ParquetMetaData,
    chunk: Bytes,
}

/// Real column chunks as the lake's writer lays them out, uncompressed so
/// that mutations reach the page decoding: version 1 pages with nulls,
/// version 2 pages, and a dictionary past 256 entries (codes wider than a
/// byte).
fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        [
            (WriterVersion::PARQUET_1_0, 40),
            (WriterVersion::PARQUET_2_0, 40),
            (WriterVersion::PARQUET_1_0, 700),
        ]
        .into_iter()
        .map(|(version, distinct)| fixture(version, distinct))
        .collect()
    })
}

fn fixture(version: WriterVersion, distinct: usize) -> Fixture {
    let rows = 3_000;
    let names = StringArray::from_iter(
        (0..rows).map(|i| (i % 7 != 3).then(|| format!("org.event.{}", i * 31 % distinct))),
    );
    let keys = datafusion::arrow::array::Int32Array::from_iter_values(0..rows as i32);
    let column: ArrayRef = Arc::new(
        DictionaryArray::<Int32Type>::try_new(keys, Arc::new(names)).expect("valid dictionary"),
    );
    let schema = Arc::new(Schema::new(vec![Field::new(
        "eventname",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).expect("one column");
    let props = WriterProperties::builder()
        .set_writer_version(version)
        .set_compression(Compression::UNCOMPRESSED)
        .set_data_page_row_count_limit(500)
        .set_write_batch_size(250)
        .build();
    let mut file = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut file, schema, Some(props)).expect("writer");
    writer.write(&batch).expect("written");
    writer.close().expect("closed");
    let file = Bytes::from(file);
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .expect("its own footer");
    let (start, len) = metadata.row_group(0).column(0).byte_range();
    let chunk = file.slice(start as usize..(start + len) as usize);
    Fixture { metadata, chunk }
}

/// The unmutated inputs of [`count_pages`], for the seed corpus.
pub fn seeds() -> Vec<Vec<u8>> {
    fixtures()
        .iter()
        .enumerate()
        .map(|(i, f)| [&[i as u8][..], &f.chunk].concat())
        .collect()
}

/// Counts the rows per value of a column chunk from its pages, as a
/// group-by on event names does: the first byte picks a fixture's
/// metadata, the rest stands for its chunk. A corrupt chunk must be an
/// error, never a panic or an allocation sized by what it claims, and
/// counts that come out must account for every row.
pub fn count_pages(input: &[u8]) {
    let Some((&pick, chunk)) = input.split_first() else {
        return;
    };
    let fixtures = fixtures();
    let fixture = &fixtures[usize::from(pick) % fixtures.len()];
    let row_group = fixture.metadata.row_group(0);
    if let Ok(Some(counts)) = count_chunk(Bytes::copy_from_slice(chunk), row_group, 0) {
        assert_eq!(counts.counts.len(), counts.dictionary.len());
        let rows: u64 = counts.counts.iter().sum::<u64>() + counts.nulls;
        assert_eq!(rows, row_group.num_rows() as u64, "every row counted once");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_are_counted_in_full() {
        for (i, seed) in seeds().iter().enumerate() {
            let fixture = &fixtures()[i];
            let counts = count_chunk(
                Bytes::copy_from_slice(&seed[1..]),
                fixture.metadata.row_group(0),
                0,
            )
            .unwrap()
            .expect("all dictionary codes");
            assert_eq!(counts.nulls, 3_000 / 7 + 1, "fixture {i}");
            assert_eq!(counts.counts.iter().sum::<u64>(), 3_000 - counts.nulls);
            count_pages(seed);
        }
    }
}
