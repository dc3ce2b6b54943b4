//! Parquet storage through the real listener: small files of a day are
//! merged without losing or doubling an event, files a crash left unlisted
//! are removed at start-up rather than read twice, and files of an older
//! column type still read and merge.

mod common;

use common::*;

/// Noon (UTC) of yesterday, in seconds since the epoch: a whole day that
/// is past and within retention.
fn yesterday_noon() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp() / 86_400 - 1) * 86_400 + 43_200
}

/// Sends round `round` of ten events (IDs `r<round>-<i>`) to `channel`;
/// `shape(i)` gives event `i`'s name and time.
async fn put_round(
    d: &aws_sdk_cloudtraildata::Client,
    channel: &str,
    round: usize,
    shape: impl Fn(i64) -> (&'static str, i64),
) {
    let events: Vec<_> = (0..10)
        .map(|i| {
            let id = format!("r{round}-{i}");
            let (name, at) = shape(i);
            entry(&id, event_data(&id, name, &iso(at), "u"))
        })
        .collect();
    d.put_audit_events()
        .channel_arn(channel)
        .set_audit_events(Some(events))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn compaction_merges_a_days_small_files_and_keeps_every_event() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "compact", None).await;
    let d = t.data(OWNER);
    let rounds = auditlake_lake::storage::COMPACT_MIN_FILES;
    // Times within yesterday noon's minute, interleaved across the files,
    // so the merge has to order them.
    let noon = yesterday_noon();
    for round in 0..rounds {
        put_round(&d, &s.channel_arn, round, |i| {
            ("a.b", noon + ((i * 7 + round as i64 * 3) % 50))
        })
        .await;
        if round + 1 < rounds {
            t.lake.storage().flush(&s.store_id).await.unwrap();
        }
    }
    let before = t.lake.catalog().files(&s.store_id).await.unwrap();
    assert_eq!(before.len(), rounds - 1);
    // Maintenance flushes the last round (one more file) and merges them.
    t.lake.maintain().await.unwrap();
    let after = t.lake.catalog().files(&s.store_id).await.unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].rows, (rounds * 10) as i64);
    for f in &before {
        let path = t.dir.path().join("objects").join(&f.path);
        assert!(!path.exists(), "replaced file {} still on disk", f.path);
    }
    // The merged file has the stored schema's types, and is sorted by
    // event time, as every file is.
    let merged = t.dir.path().join("objects").join(&after[0].path);
    assert_eq!(
        stored_event_name_type(&merged),
        datafusion::arrow::datatypes::DataType::Dictionary(
            Box::new(datafusion::arrow::datatypes::DataType::Int32),
            Box::new(datafusion::arrow::datatypes::DataType::Utf8)
        )
    );
    let file = std::fs::File::open(&merged).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut times = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch.column(batch.schema().index_of("eventtime").unwrap());
        let col = datafusion::arrow::array::AsArray::as_primitive::<
            datafusion::arrow::datatypes::TimestampMillisecondType,
        >(col);
        times.extend(col.values().iter().copied());
    }
    assert_eq!(times.len(), rounds * 10);
    assert!(times.is_sorted(), "{times:?}");
    assert_ne!(times.first(), times.last());
    let rows = run_query(
        &c,
        &format!(
            "select count(*), count(distinct eventdata.uid) from {}",
            s.store_id
        ),
    )
    .await;
    let n = (rounds * 10).to_string();
    assert_eq!(
        (rows[0][0].1.as_str(), rows[0][1].1.as_str()),
        (n.as_str(), n.as_str())
    );
}

#[tokio::test]
async fn files_left_unlisted_by_a_crash_are_removed_at_start() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "stray", None).await;
    let d = t.data(OWNER);
    d.put_audit_events()
        .channel_arn(&s.channel_arn)
        .audit_events(entry("one", event_data("one", "a.b", &now_text(0), "u")))
        .send()
        .await
        .unwrap();
    t.lake.storage().flush(&s.store_id).await.unwrap();
    let listed = t.lake.catalog().files(&s.store_id).await.unwrap();
    assert_eq!(listed.len(), 1);
    // A copy of a real file under another name: what an interrupted flush
    // leaves (written, never listed).
    let objects = t.dir.path().join("objects");
    let real = objects.join(&listed[0].path);
    let stray = real.with_file_name("stray.parquet");
    std::fs::copy(&real, &stray).unwrap();

    let t = TestLake::start_in(t.crash()).await;
    assert!(!stray.exists(), "the unlisted file was not removed");
    assert!(real.exists(), "a listed file was removed");
    let rows = run_query(
        &t.control(OWNER),
        &format!("select count(*) from {}", s.store_id),
    )
    .await;
    assert_eq!(rows[0][0].1, "1");
}

/// The type of `eventdata.eventname` in a stored Parquet file, as its
/// embedded Arrow schema gives it.
fn stored_event_name_type(path: &std::path::Path) -> datafusion::arrow::datatypes::DataType {
    use datafusion::arrow::datatypes::DataType;
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let DataType::Struct(fields) = builder
        .schema()
        .field_with_name("eventdata")
        .unwrap()
        .data_type()
    else {
        panic!("eventdata is not a struct")
    };
    fields.find("eventname").unwrap().1.data_type().clone()
}
