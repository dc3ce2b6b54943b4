//! The lake's authorization matrix: every control-plane operation and
//! `PutAuditEvents`, times every kind of caller (no signature, a wrong
//! secret, an unknown key, another account, the owning account), through
//! the official SDK clients over real HTTP (plain HTTP for the unsigned
//! caller). Each cell has its expected answer; another account never sees
//! the owner's resources, neither in an answer nor in an error, and the
//! refused destructive calls leave them in place.

mod common;

use aws_sdk_cloudtrail as ct;
use aws_sdk_cloudtrail::error::ProvideErrorMetadata;
use aws_sdk_cloudtraildata as ctd;
use common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Unsigned,
    WrongSecret,
    UnknownKey,
    /// Another account: the partner the owner's channel policy lets put
    /// events with the right External ID, and nothing else.
    OtherAccount,
    Owner,
}

/// The owner comes last, so its destructive calls run after everyone
/// else's refused ones on the same resources.
const CALLERS: [Caller; 5] = [
    Caller::Unsigned,
    Caller::WrongSecret,
    Caller::UnknownKey,
    Caller::OtherAccount,
    Caller::Owner,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateEventDataStore,
    GetEventDataStore,
    ListEventDataStores,
    UpdateEventDataStore,
    CreateChannel,
    GetChannel,
    ListChannels,
    UpdateChannel,
    PutResourcePolicy,
    GetResourcePolicy,
    StartQuery,
    DescribeQuery,
    GetQueryResults,
    ListQueries,
    CancelQuery,
    /// On the spare channel, which is deleted next.
    DeleteResourcePolicy,
    DeleteChannel,
    DeleteEventDataStore,
    /// With the External ID of the channel's policy.
    PutAuditEvents,
    /// With another External ID.
    PutAuditEventsWrongExternalId,
}

const OPS: [Op; 20] = [
    Op::CreateEventDataStore,
    Op::GetEventDataStore,
    Op::ListEventDataStores,
    Op::UpdateEventDataStore,
    Op::CreateChannel,
    Op::GetChannel,
    Op::ListChannels,
    Op::UpdateChannel,
    Op::PutResourcePolicy,
    Op::GetResourcePolicy,
    Op::StartQuery,
    Op::DescribeQuery,
    Op::GetQueryResults,
    Op::ListQueries,
    Op::CancelQuery,
    Op::DeleteResourcePolicy,
    Op::DeleteChannel,
    Op::DeleteEventDataStore,
    Op::PutAuditEvents,
    Op::PutAuditEventsWrongExternalId,
];

/// What a cell must answer: success, or this error code.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Ok,
    Err(&'static str),
}

fn expected(op: Op, caller: Caller) -> Want {
    match caller {
        Caller::Unsigned => Want::Err("MissingAuthenticationTokenException"),
        Caller::WrongSecret => Want::Err("InvalidSignatureException"),
        Caller::UnknownKey => Want::Err("UnrecognizedClientException"),
        Caller::OtherAccount => match op {
            // In its own account, and seeing only its own.
            Op::CreateEventDataStore | Op::ListEventDataStores | Op::ListChannels => Want::Ok,
            // The channel's policy grants exactly this.
            Op::PutAuditEvents => Want::Ok,
            Op::PutAuditEventsWrongExternalId => Want::Err("ChannelInsufficientPermission"),
            // A channel of its own cannot send into the owner's store.
            Op::CreateChannel
            | Op::GetEventDataStore
            | Op::UpdateEventDataStore
            | Op::DeleteEventDataStore
            | Op::StartQuery
            | Op::ListQueries => Want::Err("EventDataStoreNotFoundException"),
            Op::GetChannel | Op::UpdateChannel | Op::DeleteChannel => {
                Want::Err("ChannelNotFoundException")
            }
            Op::PutResourcePolicy | Op::GetResourcePolicy | Op::DeleteResourcePolicy => {
                Want::Err("ResourceNotFoundException")
            }
            Op::DescribeQuery | Op::GetQueryResults | Op::CancelQuery => {
                Want::Err("QueryIdNotFoundException")
            }
        },
        Caller::Owner => match op {
            // The owner's query has finished: authorized, and too late.
            Op::CancelQuery => Want::Err("InactiveQueryException"),
            // The External ID a channel's policy requires binds every
            // caller, the owner included (spec: "must match the External
            // ID that the channel's resource policy requires").
            Op::PutAuditEventsWrongExternalId => Want::Err("ChannelInsufficientPermission"),
            _ => Want::Ok,
        },
    }
}

/// The owner's resources the matrix aims at. Their names hold `SECRET`,
/// which no answer to another caller may contain.
struct Fixture {
    main: Setup,
    spare: Setup,
    query_id: String,
}

const SECRET: &str = "secret-owner";
const EXTERNAL_ID: &str = "ext-matrix-0001";

fn text<T: std::fmt::Debug>(r: &T) -> String {
    format!("{r:?}")
}

/// The code of an SDK error, or the error itself when the call did not
/// reach the service.
fn code<E, R>(err: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) => e.code().unwrap_or("<no code>").to_owned(),
        None => format!("<not a service error: {err:?}>"),
    }
}

/// Runs `op` through the SDK; `Ok(answer)` or `Err((code, error text))`.
async fn call(
    op: Op,
    c: &ct::Client,
    d: &ctd::Client,
    fx: &Fixture,
    n: usize,
) -> Result<String, (String, String)> {
    macro_rules! run {
        ($f:expr) => {
            match $f.await {
                Ok(out) => Ok(text(&out)),
                Err(e) => {
                    let t = text(&e);
                    Err((code(e), t))
                }
            }
        };
    }
    let (main, spare) = (&fx.main, &fx.spare);
    match op {
        Op::CreateEventDataStore => run!(c
            .create_event_data_store()
            .name(format!("matrix-{n}"))
            .advanced_event_selectors(activity_selector())
            .send()),
        Op::GetEventDataStore => run!(c
            .get_event_data_store()
            .event_data_store(&main.store_arn)
            .send()),
        Op::ListEventDataStores => run!(c.list_event_data_stores().send()),
        Op::UpdateEventDataStore => run!(c
            .update_event_data_store()
            .event_data_store(&main.store_id)
            .retention_period(60)
            .send()),
        Op::CreateChannel => run!(c
            .create_channel()
            .name(format!("matrix-{n}"))
            .source("auditlake")
            .destinations(
                ct::types::Destination::builder()
                    .r#type(ct::types::DestinationType::EventDataStore)
                    .location(&main.store_arn)
                    .build()
                    .unwrap(),
            )
            .send()),
        Op::GetChannel => run!(c.get_channel().channel(&main.channel_arn).send()),
        Op::ListChannels => run!(c.list_channels().send()),
        Op::UpdateChannel => run!(c
            .update_channel()
            .channel(&main.channel_arn)
            .name(format!("{SECRET}-renamed"))
            .send()),
        Op::PutResourcePolicy => run!(c
            .put_resource_policy()
            .resource_arn(&main.channel_arn)
            .resource_policy(partner_policy(&main.channel_arn, EXTERNAL_ID))
            .send()),
        Op::GetResourcePolicy => run!(c
            .get_resource_policy()
            .resource_arn(&main.channel_arn)
            .send()),
        Op::StartQuery => run!(c
            .start_query()
            .query_statement(format!("SELECT eventid FROM {}", main.store_id))
            .send()),
        Op::DescribeQuery => run!(c.describe_query().query_id(&fx.query_id).send()),
        Op::GetQueryResults => run!(c.get_query_results().query_id(&fx.query_id).send()),
        Op::ListQueries => run!(c.list_queries().event_data_store(&main.store_id).send()),
        Op::CancelQuery => run!(c.cancel_query().query_id(&fx.query_id).send()),
        Op::DeleteResourcePolicy => run!(c
            .delete_resource_policy()
            .resource_arn(&spare.channel_arn)
            .send()),
        Op::DeleteChannel => run!(c.delete_channel().channel(&spare.channel_arn).send()),
        Op::DeleteEventDataStore => run!(c
            .delete_event_data_store()
            .event_data_store(&spare.store_arn)
            .send()),
        Op::PutAuditEvents | Op::PutAuditEventsWrongExternalId => {
            let ext = if op == Op::PutAuditEvents {
                EXTERNAL_ID
            } else {
                "ext-someone-else"
            };
            let uid = format!("matrix-{n}");
            let out = d
                .put_audit_events()
                .channel_arn(&main.channel_arn)
                .external_id(ext)
                .audit_events(entry(&uid, event_data(&uid, "a.b", &now_text(0), "u")))
                .send()
                .await;
            match out {
                Ok(out) if out.failed().is_empty() => Ok(text(&out)),
                Ok(out) => Err(("<entry failed>".into(), text(&out))),
                Err(e) => {
                    let t = text(&e);
                    Err((code(e), t))
                }
            }
        }
    }
}

/// The X-Amz-Target operation an unsigned caller names for `op`.
fn target(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::CreateEventDataStore => "CreateEventDataStore",
        Op::GetEventDataStore => "GetEventDataStore",
        Op::ListEventDataStores => "ListEventDataStores",
        Op::UpdateEventDataStore => "UpdateEventDataStore",
        Op::CreateChannel => "CreateChannel",
        Op::GetChannel => "GetChannel",
        Op::ListChannels => "ListChannels",
        Op::UpdateChannel => "UpdateChannel",
        Op::PutResourcePolicy => "PutResourcePolicy",
        Op::GetResourcePolicy => "GetResourcePolicy",
        Op::StartQuery => "StartQuery",
        Op::DescribeQuery => "DescribeQuery",
        Op::GetQueryResults => "GetQueryResults",
        Op::ListQueries => "ListQueries",
        Op::CancelQuery => "CancelQuery",
        Op::DeleteResourcePolicy => "DeleteResourcePolicy",
        Op::DeleteChannel => "DeleteChannel",
        Op::DeleteEventDataStore => "DeleteEventDataStore",
        Op::PutAuditEvents | Op::PutAuditEventsWrongExternalId => return None,
    })
}

/// `op` as plain HTTP without a signature, with a well-formed input.
async fn call_unsigned(op: Op, url: &str, fx: &Fixture) -> Result<String, (String, String)> {
    let http = reqwest::Client::new();
    let res = match target(op) {
        Some(name) => {
            let body = serde_json::json!({
                "EventDataStore": fx.main.store_id,
                "Channel": fx.main.channel_arn,
                "ResourceArn": fx.main.channel_arn,
                "QueryId": fx.query_id,
            });
            http.post(format!("{url}/"))
                .header(
                    "x-amz-target",
                    format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{name}"),
                )
                .header("content-type", "application/x-amz-json-1.1")
                .body(body.to_string())
        }
        None => http
            .post(format!(
                "{url}/PutAuditEvents?channelArn={}&externalId={EXTERNAL_ID}",
                fx.main.channel_arn
            ))
            .body(r#"{"auditEvents":[{"id":"x","eventData":"{}"}]}"#),
    }
    .send()
    .await
    .unwrap();
    let status = res.status();
    let kind = res
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    if status.is_success() {
        return Ok(body);
    }
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let code = json["__type"]
        .as_str()
        .map(str::to_owned)
        .or(kind)
        .unwrap_or_else(|| format!("<status {status}>"));
    Err((code.rsplit('#').next().unwrap().to_owned(), body))
}

#[tokio::test]
async fn every_lake_operation_answers_every_caller_as_its_rights_say() {
    let t = TestLake::start().await;
    let owner = t.control(OWNER);
    let main = setup(&owner, SECRET, Some(EXTERNAL_ID)).await;
    let spare = setup(&owner, &format!("{SECRET}-spare"), Some(EXTERNAL_ID)).await;
    let started = owner
        .start_query()
        .query_statement(format!("SELECT count(*) FROM {}", main.store_id))
        .send()
        .await
        .unwrap();
    let query_id = started.query_id().unwrap().to_owned();
    wait_finished(&owner, &query_id).await;
    let fx = Fixture {
        main,
        spare,
        query_id,
    };

    let mut wrong = key(OWNER);
    wrong.secret_access_key = "not-the-secret-of-this-key-000000".into();
    let mut unknown = key(OWNER);
    unknown.access_key_id = "AKIAUNKNOWNKEY000000".into();
    let clients = |caller: Caller| match caller {
        Caller::Unsigned => None,
        Caller::WrongSecret => Some((control_client(&t.url, &wrong), data_client(&t.url, &wrong))),
        Caller::UnknownKey => Some((
            control_client(&t.url, &unknown),
            data_client(&t.url, &unknown),
        )),
        Caller::OtherAccount => Some((t.control(PARTNER), t.data(PARTNER))),
        Caller::Owner => Some((t.control(OWNER), t.data(OWNER))),
    };
    // The owner's resource IDs, which another caller's answers must not hold.
    let owned: Vec<String> = [
        &fx.main.store_id,
        &fx.main.channel_arn,
        &fx.spare.store_id,
        &fx.query_id,
    ]
    .iter()
    .map(|s| s.rsplit('/').next().unwrap().to_owned())
    .chain([SECRET.to_owned()])
    .collect();

    let mut differ = Vec::new();
    let mut n = 0;
    for op in OPS {
        for caller in CALLERS {
            n += 1;
            let got = match clients(caller) {
                None => call_unsigned(op, &t.url, &fx).await,
                Some((c, d)) => call(op, &c, &d, &fx, n).await,
            };
            let want = expected(op, caller);
            let ok = match (&want, &got) {
                (Want::Ok, Ok(_)) => true,
                (Want::Err(w), Err((code, _))) => code == w,
                _ => false,
            };
            if !ok {
                differ.push(format!("{op:?} as {caller:?}: want {want:?}, got {got:?}"));
            }
            if caller != Caller::Owner {
                // An error may name the resource the caller itself named,
                // and nothing more of the owner's.
                let (answer, kept): (&String, &[String]) = match &got {
                    Ok(a) => (a, &owned),
                    Err((_, e)) => (e, &owned[owned.len() - 1..]),
                };
                for id in kept {
                    assert!(
                        !answer.contains(id.as_str()),
                        "{op:?} as {caller:?} showed the owner's {id}: {answer}"
                    );
                }
            }
        }
    }
    assert!(
        differ.is_empty(),
        "cells that differ:\n{}",
        differ.join("\n")
    );

    // The refused calls changed nothing; the owner's went through.
    let store = owner
        .get_event_data_store()
        .event_data_store(&fx.main.store_id)
        .send()
        .await
        .unwrap();
    assert_eq!(store.retention_period(), Some(60));
    let channel = owner
        .get_channel()
        .channel(&fx.main.channel_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(channel.name(), Some(format!("{SECRET}-renamed").as_str()));
    let rows = run_query(
        &owner,
        &format!("SELECT count(*) AS n FROM {}", fx.main.store_id),
    )
    .await;
    assert_eq!(
        rows[0][0].1, "2",
        "the partner's and the owner's accepted events, and no other"
    );
    let err = owner
        .get_channel()
        .channel(&fx.spare.channel_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(err),
        "ChannelNotFoundException",
        "deleted by its owner"
    );
}
