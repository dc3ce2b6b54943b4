//! The lake through the official AWS Rust SDK clients over real HTTP:
//! every operation, the errors each one can give, the External ID check,
//! SigV4, retention and restart durability.

mod common;

use aws_sdk_cloudtrail as ct;
use aws_sdk_cloudtraildata as ctd;
use common::*;

fn code<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> String {
    match err.as_service_error() {
        Some(e) => e.code().unwrap_or("<none>").to_owned(),
        None => panic!("not a service error: {err:?}"),
    }
}

use aws_sdk_cloudtrail::error::ProvideErrorMetadata;

async fn put(
    data: &ctd::Client,
    channel_arn: &str,
    external_id: Option<&str>,
    events: Vec<ctd::types::AuditEvent>,
) -> Result<
    ctd::operation::put_audit_events::PutAuditEventsOutput,
    aws_smithy_runtime_api::client::result::SdkError<
        ctd::operation::put_audit_events::PutAuditEventsError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
> {
    data.put_audit_events()
        .channel_arn(channel_arn)
        .set_external_id(external_id.map(str::to_owned))
        .set_audit_events(Some(events))
        .send()
        .await
}

#[tokio::test]
async fn event_data_store_lifecycle() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let created = c
        .create_event_data_store()
        .name("audit-store")
        .advanced_event_selectors(activity_selector())
        .retention_period(2557)
        .billing_mode(ct::types::BillingMode::FixedRetentionPricing)
        .send()
        .await
        .unwrap();
    let arn = created.event_data_store_arn().unwrap().to_owned();
    assert!(arn.starts_with(&format!(
        "arn:aws:cloudtrail:{REGION}:{OWNER}:eventdatastore/"
    )));
    assert_eq!(
        created.status(),
        Some(&ct::types::EventDataStoreStatus::Enabled)
    );
    assert_eq!(created.termination_protection_enabled(), Some(true));

    let id = arn.rsplit('/').next().unwrap();
    let got = c
        .get_event_data_store()
        .event_data_store(id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.name(), Some("audit-store"));
    assert_eq!(got.retention_period(), Some(2557));
    assert!(got.created_timestamp().is_some());

    let err = c
        .create_event_data_store()
        .name("audit-store")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreAlreadyExistsException");
    for days in [6, 3654] {
        let err = c
            .create_event_data_store()
            .name(format!("r{days}"))
            .retention_period(days)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(err), "InvalidParameterException", "retention {days}");
    }
    let err = c
        .create_event_data_store()
        .name("no spaces")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidParameterException");

    let updated = c
        .update_event_data_store()
        .event_data_store(&arn)
        .retention_period(90)
        .name("renamed-store")
        .send()
        .await
        .unwrap();
    assert_eq!(updated.retention_period(), Some(90));
    assert_eq!(updated.name(), Some("renamed-store"));

    for i in 0..3 {
        c.create_event_data_store()
            .name(format!("more-{i}"))
            .send()
            .await
            .unwrap();
    }
    let first = c
        .list_event_data_stores()
        .max_results(3)
        .send()
        .await
        .unwrap();
    assert_eq!(first.event_data_stores().len(), 3);
    let token = first.next_token().unwrap().to_owned();
    let second = c
        .list_event_data_stores()
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.event_data_stores().len(), 1);
    assert!(second.next_token().is_none());
    let err = c
        .list_event_data_stores()
        .next_token("garbage-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidNextTokenException");
    let err = c
        .list_event_data_stores()
        .max_results(1001)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidMaxResultsException");

    let err = c
        .delete_event_data_store()
        .event_data_store(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreTerminationProtectedException");
    c.update_event_data_store()
        .event_data_store(id)
        .termination_protection_enabled(false)
        .send()
        .await
        .unwrap();
    c.delete_event_data_store()
        .event_data_store(id)
        .send()
        .await
        .unwrap();
    let gone = c
        .get_event_data_store()
        .event_data_store(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        Some(&ct::types::EventDataStoreStatus::PendingDeletion)
    );

    let err = c
        .get_event_data_store()
        .event_data_store("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");
    let err = c
        .get_event_data_store()
        .event_data_store("arn:aws:cloudtrail:us-east-1:111111111111:trail/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreARNInvalidException");
}

#[tokio::test]
async fn channels_and_resource_policies() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "snyk", None).await;
    assert!(s
        .channel_arn
        .starts_with(&format!("arn:aws:cloudtrail:{REGION}:{OWNER}:channel/")));

    let got = c
        .get_channel()
        .channel(&s.channel_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.name(), Some("snyk-channel"));
    assert_eq!(got.source(), Some("auditlake"));
    assert_eq!(got.destinations()[0].location(), s.store_arn);
    assert!(got
        .ingestion_status()
        .unwrap()
        .latest_ingestion_success_time()
        .is_none());

    let list = c.list_channels().send().await.unwrap();
    assert_eq!(list.channels().len(), 1);

    let err = c
        .create_channel()
        .name("snyk-channel")
        .source("auditlake")
        .destinations(
            ct::types::Destination::builder()
                .r#type(ct::types::DestinationType::EventDataStore)
                .location(&s.store_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelAlreadyExistsException");

    // A store of management events cannot take integration events.
    let mgmt = c
        .create_event_data_store()
        .name("management")
        .send()
        .await
        .unwrap();
    let err = c
        .create_channel()
        .name("other")
        .source("auditlake")
        .destinations(
            ct::types::Destination::builder()
                .r#type(ct::types::DestinationType::EventDataStore)
                .location(mgmt.event_data_store_arn().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidEventDataStoreCategoryException");

    let renamed = c
        .update_channel()
        .channel(&s.channel_arn)
        .name("renamed-channel")
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.name(), Some("renamed-channel"));

    let err = c
        .get_resource_policy()
        .resource_arn(&s.channel_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourcePolicyNotFoundException");
    let policy = partner_policy(&s.channel_arn, "org-1");
    c.put_resource_policy()
        .resource_arn(&s.channel_arn)
        .resource_policy(&policy)
        .send()
        .await
        .unwrap();
    let got = c
        .get_resource_policy()
        .resource_arn(&s.channel_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.resource_policy(), Some(policy.as_str()));
    let err = c
        .put_resource_policy()
        .resource_arn(&s.channel_arn)
        .resource_policy("{not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourcePolicyNotValidException");
    let err = c
        .put_resource_policy()
        .resource_arn(&s.store_arn)
        .resource_policy(&policy)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourceTypeNotSupportedException");
    let err = c
        .put_resource_policy()
        .resource_arn("not-an-arn")
        .resource_policy(&policy)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourceARNNotValidException");
    c.delete_resource_policy()
        .resource_arn(&s.channel_arn)
        .send()
        .await
        .unwrap();
    let err = c
        .delete_resource_policy()
        .resource_arn(&s.channel_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ResourcePolicyNotFoundException");

    // A store fed by a channel cannot be deleted until the channel goes.
    let err = c
        .delete_event_data_store()
        .event_data_store(&s.store_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelExistsForEDSException");
    c.delete_channel()
        .channel(&s.channel_arn)
        .send()
        .await
        .unwrap();
    let err = c
        .get_channel()
        .channel(&s.channel_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelNotFoundException");
    let err = c
        .get_channel()
        .channel("arn:aws:cloudtrail:x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "ChannelARNInvalidException");
    c.delete_event_data_store()
        .event_data_store(&s.store_arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn put_audit_events_then_the_seed_query_returns_the_newest_ten_in_order() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "seed", Some("org-1")).await;
    let d = t.data(PARTNER);
    let events: Vec<_> = (0..12)
        .map(|i| {
            let uid = format!("evt-{i:02}");
            entry(
                &uid,
                event_data(
                    &uid,
                    "org.settings.edit",
                    &now_text(i - 60),
                    &format!("user-{i}"),
                ),
            )
        })
        .collect();
    let out = put(&d, &s.channel_arn, Some("org-1"), events)
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 12);
    assert!(out.failed().is_empty());

    let sql = format!(
        "select eventtime, eventdata.useridentity, eventdata.eventname, eventdata.additionaleventdata\nfrom {} order by eventTime desc limit 10",
        s.store_id
    );
    let rows = run_query(&c, &sql).await;
    assert_eq!(rows.len(), 10);
    let names: Vec<&str> = rows[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "eventtime",
            "useridentity",
            "eventname",
            "additionaleventdata"
        ]
    );
    let uids: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r[3].1).unwrap();
            v["uid"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (2..12).rev().map(|i| format!("evt-{i:02}")).collect();
    assert_eq!(uids, expected, "newest first");
    assert!(
        rows[0][1].1.contains("principalid=user-11"),
        "{}",
        rows[0][1].1
    );
    assert_eq!(rows[0][2].1, "org.settings.edit");
    assert_eq!(rows[0][0].1.len(), "2024-01-01 00:00:00.000".len());

    let got = c
        .get_channel()
        .channel(&s.channel_arn)
        .send()
        .await
        .unwrap();
    let status = got.ingestion_status().unwrap();
    assert!(status.latest_ingestion_success_time().is_some());
    assert_eq!(
        status.latest_ingestion_success_event_id().map(str::len),
        Some(36)
    );
}

#[tokio::test]
async fn query_results_page_and_queries_are_listed_and_described() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "pages", None).await;
    let d = t.data(OWNER);
    let events: Vec<_> = (0..25)
        .map(|i| {
            let uid = format!("p{i}");
            entry(
                &uid,
                event_data(&uid, &format!("event.{}", i % 3), &now_text(-i), "u"),
            )
        })
        .collect();
    put(&d, &s.channel_arn, None, events).await.unwrap();

    let id = c
        .start_query()
        .query_statement(format!(
            "SELECT eventID FROM {} ORDER BY eventid",
            s.store_id
        ))
        .send()
        .await
        .unwrap()
        .query_id()
        .unwrap()
        .to_owned();
    wait_finished(&c, &id).await;
    let first = c
        .get_query_results()
        .query_id(&id)
        .max_query_results(10)
        .send()
        .await
        .unwrap();
    assert_eq!(first.query_result_rows().len(), 10);
    let stats = first.query_statistics().unwrap();
    assert_eq!(stats.total_results_count(), Some(25));
    let mut seen = 10;
    let mut token = first.next_token().map(str::to_owned);
    while let Some(tk) = token {
        let page = c
            .get_query_results()
            .query_id(&id)
            .max_query_results(10)
            .next_token(tk)
            .send()
            .await
            .unwrap();
        seen += page.query_result_rows().len();
        token = page.next_token().map(str::to_owned);
    }
    assert_eq!(seen, 25);

    let described = c.describe_query().query_id(&id).send().await.unwrap();
    assert_eq!(
        described.query_status(),
        Some(&ct::types::QueryStatus::Finished)
    );
    assert_eq!(
        described.query_statistics().unwrap().events_scanned(),
        Some(25)
    );
    let listed = c
        .list_queries()
        .event_data_store(&s.store_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.queries().len(), 1);
    assert_eq!(listed.queries()[0].query_id(), Some(id.as_str()));

    let err = c.cancel_query().query_id(&id).send().await.unwrap_err();
    assert_eq!(code(err), "InactiveQueryException");
    let missing = "00000000-0000-0000-0000-000000000000";
    let err = c
        .describe_query()
        .query_id(missing)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "QueryIdNotFoundException");
    let err = c
        .get_query_results()
        .query_id(missing)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "QueryIdNotFoundException");
    let err = c
        .get_query_results()
        .query_id(&id)
        .max_query_results(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidMaxResultsException");
}

#[tokio::test]
async fn statements_that_are_not_a_single_select_are_refused() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "guard", None).await;
    for sql in [
        format!("DELETE FROM {}", s.store_id),
        format!("DROP TABLE {}", s.store_id),
        format!("SELECT 1 FROM {0}; SELECT 2 FROM {0}", s.store_id),
        format!("COPY (SELECT * FROM {}) TO '/tmp/out.parquet'", s.store_id),
        format!("SELECT nosuchcolumn FROM {}", s.store_id),
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".to_owned(),
        "SELECT * FROM read_parquet('/etc/passwd')".to_owned(),
        format!("SELECT * FROM {}, read_csv('/etc/passwd')", s.store_id),
        format!(
            "SELECT * FROM {} UNION SELECT * FROM information_schema.tables",
            s.store_id
        ),
        // Comment tricks around a second statement.
        format!(
            "SELECT 1 FROM {0} -- harmless\n; DELETE FROM {0}",
            s.store_id
        ),
        format!("SELECT 1 FROM {0} /* ; */ ; DROP TABLE {0}", s.store_id),
        format!("/* SELECT */ DELETE FROM {}", s.store_id),
        // Writes dressed as queries, and statements that are not queries.
        format!("INSERT INTO {0} SELECT * FROM {0}", s.store_id),
        format!("UPDATE {} SET eventcategory = 'x'", s.store_id),
        format!(
            "WITH x AS (SELECT * FROM {0}) INSERT INTO {0} SELECT * FROM x",
            s.store_id
        ),
        format!("CREATE VIEW v AS SELECT * FROM {}", s.store_id),
        format!("EXPLAIN ANALYZE SELECT * FROM {}", s.store_id),
        format!("PREPARE p AS SELECT * FROM {}", s.store_id),
        "SET datafusion.execution.batch_size = 1".to_owned(),
        "SHOW TABLES".to_owned(),
        format!("SELECT * FROM {} INTO OUTFILE '/tmp/x'", s.store_id),
    ] {
        let err = c
            .start_query()
            .query_statement(&sql)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(err), "InvalidQueryStatementException", "{sql}");
    }
    let err = c
        .start_query()
        .query_statement("SELECT * FROM 00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");

    // Another account cannot query this account's store, even by its ID.
    let other = t.control(PARTNER);
    let err = other
        .start_query()
        .query_statement(format!("SELECT * FROM {}", s.store_id))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");
    let err = other
        .get_event_data_store()
        .event_data_store(&s.store_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");
    // Nor join it to a store of its own.
    let own = setup(&other, "partner", None).await;
    let err = other
        .start_query()
        .query_statement(format!(
            "SELECT a.eventid FROM {} a JOIN {} b ON a.eventid = b.eventid",
            own.store_id, s.store_id
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "EventDataStoreNotFoundException");
    let listed = other.list_channels().send().await.unwrap();
    let arns: Vec<_> = listed
        .channels()
        .iter()
        .filter_map(|c| c.channel_arn())
        .collect();
    assert_eq!(arns, [own.channel_arn.as_str()], "only its own channel");
}

#[tokio::test]
async fn the_external_id_must_match_the_channel_policy() {
    let t = TestLake::start().await;
    let s = setup(&t.control(OWNER), "ext", Some("org-1")).await;
    let partner = t.data(PARTNER);
    let one = || vec![entry("a1", event_data("a1", "x.y", &now_text(0), "u"))];
    for ext in [Some("org-2"), None] {
        let err = put(&partner, &s.channel_arn, ext, one()).await.unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
        assert!(matches!(
            err.into_service_error(),
            ctd::operation::put_audit_events::PutAuditEventsError::ChannelInsufficientPermission(_)
        ));
    }
    let ok = put(&partner, &s.channel_arn, Some("org-1"), one())
        .await
        .unwrap();
    assert_eq!(ok.successful().len(), 1);

    // Without a policy, only the owner writes.
    let open = setup(&t.control(OWNER), "nopolicy", None).await;
    let err = put(&partner, &open.channel_arn, None, one())
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ctd::operation::put_audit_events::PutAuditEventsError::ChannelInsufficientPermission(_)
    ));
    put(&t.data(OWNER), &open.channel_arn, None, one())
        .await
        .unwrap();
    let got = t
        .control(OWNER)
        .get_channel()
        .channel(&s.channel_arn)
        .send()
        .await
        .unwrap();
    assert!(got
        .ingestion_status()
        .unwrap()
        .latest_ingestion_success_time()
        .is_some());
}

#[tokio::test]
async fn entry_failures_are_reported_per_entry() {
    let t = TestLake::start().await;
    let s = setup(&t.control(OWNER), "entries", None).await;
    let d = t.data(OWNER);
    let good = entry("good", event_data("good", "a.b", &now_text(0), "u"));
    let bad_sum = ctd::types::AuditEvent::builder()
        .id("badsum")
        .event_data(event_data("badsum", "a.b", &now_text(0), "u"))
        .event_data_checksum("AAAA")
        .build()
        .unwrap();
    let no_name = entry(
        "noname",
        serde_json::json!({"version":"1.0","userIdentity":{"type":"User","principalId":"u"},
            "eventSource":"s","eventTime":now_text(0),"UID":"noname","recipientAccountId":OWNER})
        .to_string(),
    );
    let not_json = entry("notjson", "{not json".to_owned());
    let wrong_account = entry(
        "acct",
        event_data("acct", "a.b", &now_text(0), "u").replace(OWNER, "999999999999"),
    );
    let out = put(
        &d,
        &s.channel_arn,
        None,
        vec![good, bad_sum, no_name, not_json, wrong_account],
    )
    .await
    .unwrap();
    assert_eq!(out.successful().len(), 1);
    assert_eq!(out.successful()[0].id(), "good");
    let failed: Vec<(&str, &str)> = out
        .failed()
        .iter()
        .map(|f| (f.id(), f.error_code()))
        .collect();
    assert_eq!(
        failed,
        [
            ("badsum", "InvalidChecksum"),
            ("noname", "InvalidEventData"),
            ("notjson", "InvalidEventData"),
            ("acct", "InvalidRecipientAccountId"),
        ]
    );
    assert!(out.failed()[1].error_message().contains("eventName"));
    let rows = run_query(
        &t.control(OWNER),
        &format!("select count(*) as n from {}", s.store_id),
    )
    .await;
    assert_eq!(rows[0][0].1, "1");
}

#[tokio::test]
async fn whole_request_errors_are_typed() {
    let t = TestLake::start().await;
    let s = setup(&t.control(OWNER), "whole", None).await;
    let d = t.data(OWNER);
    use ctd::operation::put_audit_events::PutAuditEventsError as E;

    let many: Vec<_> = (0..101)
        .map(|i| entry(&format!("m{i}"), event_data("m", "a.b", &now_text(0), "u")))
        .collect();
    let err = put(&d, &s.channel_arn, None, many).await.unwrap_err();
    assert_eq!(code(err), "ValidationException");

    let twice = vec![
        entry("same", event_data("1", "a.b", &now_text(0), "u")),
        entry("same", event_data("2", "a.b", &now_text(0), "u")),
    ];
    let err = put(&d, &s.channel_arn, None, twice).await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        E::DuplicatedAuditEventId(_)
    ));

    let one = || vec![entry("x", event_data("x", "a.b", &now_text(0), "u"))];
    let missing =
        format!("arn:aws:cloudtrail:{REGION}:{OWNER}:channel/00000000-0000-0000-0000-000000000000");
    let err = put(&d, &missing, None, one()).await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert!(matches!(err.into_service_error(), E::ChannelNotFound(_)));

    // The lake's channels are in the `aws` partition: the same ARN in
    // another partition names no channel (it once failed the policy check).
    let other_partition = s.channel_arn.replacen("arn:aws:", "arn:aws-cn:", 1);
    let err = put(&d, &other_partition, None, one()).await.unwrap_err();
    assert!(matches!(err.into_service_error(), E::ChannelNotFound(_)));

    let err = put(&d, "arn:not-a-channel", None, one()).await.unwrap_err();
    assert!(matches!(err.into_service_error(), E::InvalidChannelArn(_)));

    // 100 events of ~11 KB each: over 1 MB in all.
    let big: Vec<_> = (0..100)
        .map(|i| {
            let uid = format!("big{i}");
            let data = event_data(&uid, "a.b", &now_text(0), "u").replace(
                "\"name\":\"a.b\"",
                &format!("\"name\":\"a.b\",\"pad\":\"{}\"", "p".repeat(11_000)),
            );
            entry(&uid, data)
        })
        .collect();
    let err = put(&d, &s.channel_arn, None, big).await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(413));
    assert_eq!(code(err), "RequestEntityTooLargeException");

    let rows = run_query(
        &t.control(OWNER),
        &format!("select count(*) as n from {}", s.store_id),
    )
    .await;
    assert_eq!(rows[0][0].1, "0", "no whole-request error stored anything");
}

#[tokio::test]
async fn a_retried_id_keeps_its_event_id_and_is_stored_once() {
    let t = TestLake::start().await;
    let s = setup(&t.control(OWNER), "retry", None).await;
    let d = t.data(OWNER);
    let send = || {
        put(
            &d,
            &s.channel_arn,
            None,
            vec![entry("once", event_data("once", "a.b", &now_text(0), "u"))],
        )
    };
    let first = send().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(
        first.successful()[0].event_id(),
        again.successful()[0].event_id()
    );
    let rows = run_query(
        &t.control(OWNER),
        &format!("select count(*) as n from {}", s.store_id),
    )
    .await;
    assert_eq!(rows[0][0].1, "1");
}

#[tokio::test]
async fn unsigned_and_badly_signed_requests_are_refused() {
    let t = TestLake::start().await;
    let mut wrong = key(OWNER);
    wrong.secret_access_key = "definitely-not-the-right-secret".into();
    let err = control_client(&t.url, &wrong)
        .list_channels()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");
    let mut unknown = key(OWNER);
    unknown.access_key_id = "AKIAUNKNOWNKEY000000".into();
    let err = control_client(&t.url, &unknown)
        .list_channels()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "UnrecognizedClientException");
    let err = data_client(&t.url, &wrong)
        .put_audit_events()
        .channel_arn(format!("arn:aws:cloudtrail:{REGION}:{OWNER}:channel/x"))
        .audit_events(entry("x", "{}".into()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(err), "InvalidSignatureException");

    // Plain HTTP without a signature, in both protocols' shapes.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/", t.url))
        .header(
            "x-amz-target",
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListChannels",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    let r = http
        .post(format!("{}/PutAuditEvents?channelArn=x", t.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );

    // A query string the parser refuses still gets the AWS error shape.
    let r = http
        .post(format!(
            "{}/PutAuditEvents?channelArn=a&channelArn=b",
            t.url
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().contains_key("x-amzn-errortype"),
        "{:?}",
        r.headers()
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn retention_removes_days_past_the_period() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "retention", None).await;
    c.update_event_data_store()
        .event_data_store(&s.store_id)
        .retention_period(7)
        .send()
        .await
        .unwrap();
    let d = t.data(OWNER);
    let old = entry(
        "old",
        event_data("old", "a.b", &now_text(-30 * 86_400), "u"),
    );
    let new = entry("new", event_data("new", "a.b", &now_text(0), "u"));
    put(&d, &s.channel_arn, None, vec![old]).await.unwrap();
    // The old event reaches Parquet first, so retention removes a file.
    t.lake.maintain().await.unwrap();
    put(&d, &s.channel_arn, None, vec![new]).await.unwrap();
    t.lake.maintain().await.unwrap();
    let rows = run_query(&c, &format!("select eventdata.uid from {}", s.store_id)).await;
    let uids: Vec<&str> = rows.iter().map(|r| r[0].1.as_str()).collect();
    assert_eq!(uids, ["new"]);
}

#[tokio::test]
async fn acknowledged_events_survive_a_crash_before_any_flush() {
    let t = TestLake::start().await;
    let s = setup(&t.control(OWNER), "crash", None).await;
    let events: Vec<_> = (0..50)
        .map(|i| {
            entry(
                &format!("c{i}"),
                event_data(&format!("c{i}"), "a.b", &now_text(0), "u"),
            )
        })
        .collect();
    let out = put(&t.data(OWNER), &s.channel_arn, None, events)
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 50);
    let dir = t.crash();
    let t = TestLake::start_in(dir).await;
    let rows = run_query(
        &t.control(OWNER),
        &format!("select count(*) as n from {}", s.store_id),
    )
    .await;
    assert_eq!(rows[0][0].1, "50");
}
