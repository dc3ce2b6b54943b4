//! The query corpus: realistic CloudTrail Lake queries (filters, group-by,
//! time windows, JSON extraction, joins between two stores) run through
//! the SDK against known events, each compared with the answer computed
//! directly from the same events in Rust.

mod common;

use std::collections::BTreeMap;

use common::*;

const BASE: i64 = 1_709_251_200; // 2024-03-01T00:00:00Z

struct Ev {
    i: i64,
    user: &'static str,
    name: &'static str,
    time: i64,
    status: i64,
    url: String,
    ip: String,
}

fn events() -> Vec<Ev> {
    (0..30)
        .map(|i| Ev {
            i,
            user: ["u1", "u2", "u3"][(i % 3) as usize],
            name: [
                "org.create",
                "org.settings.edit",
                "api.access",
                "org.user.add",
                "api.access",
            ][(i % 5) as usize],
            time: BASE + i * 3 * 3600,
            status: if i % 7 == 0 { 500 } else { 200 },
            url: format!("/rest/orgs/o1/x{}", i % 4),
            ip: format!("10.0.0.{}", i % 4),
        })
        .collect()
}

fn shown(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].000");
    t.format(&f).unwrap()
}

/// `additionalEventData` exactly as sent (and so as stored).
fn additional(e: &Ev) -> String {
    serde_json::json!({"i": e.i, "url": e.url, "status": e.status}).to_string()
}

fn data_of(e: &Ev) -> String {
    serde_json::json!({
        "version": "1.0",
        "userIdentity": {"type": "User", "principalId": e.user},
        "eventSource": "auditlake.local",
        "eventName": e.name,
        "eventTime": iso(e.time),
        "UID": format!("uid-{}", e.i),
        "recipientAccountId": OWNER,
        "sourceIPAddress": e.ip,
        "additionalEventData": {"i": e.i, "url": e.url, "status": e.status}
    })
    .to_string()
}

/// Rows as plain string lists.
fn cells(rows: Vec<Vec<(String, String)>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| r.into_iter().map(|(_, v)| v).collect())
        .collect()
}

fn one(v: impl ToString) -> Vec<Vec<String>> {
    vec![vec![v.to_string()]]
}

fn grouped<K: Ord + ToString>(evs: &[Ev], key: impl Fn(&Ev) -> Option<K>) -> Vec<Vec<String>> {
    let mut m: BTreeMap<K, i64> = BTreeMap::new();
    for e in evs {
        if let Some(k) = key(e) {
            *m.entry(k).or_default() += 1;
        }
    }
    m.into_iter()
        .map(|(k, n)| vec![k.to_string(), n.to_string()])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_answers_as_computed_from_the_events() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let a = setup(&c, "corpus-a", None).await;
    let b = setup(&c, "corpus-b", None).await;
    for s in [&a, &b] {
        c.update_event_data_store()
            .event_data_store(&s.store_id)
            .retention_period(3653)
            .send()
            .await
            .unwrap();
    }
    let evs = events();
    let d = t.data(OWNER);
    let entries: Vec<_> = evs
        .iter()
        .map(|e| entry(&format!("a{}", e.i), data_of(e)))
        .collect();
    d.put_audit_events()
        .channel_arn(&a.channel_arn)
        .set_audit_events(Some(entries))
        .send()
        .await
        .unwrap();
    // Store B: the first five events again (a second application's view).
    let entries: Vec<_> = evs[..5]
        .iter()
        .map(|e| entry(&format!("b{}", e.i), data_of(e)))
        .collect();
    d.put_audit_events()
        .channel_arn(&b.channel_arn)
        .set_audit_events(Some(entries))
        .send()
        .await
        .unwrap();
    let (sa, sb) = (&a.store_id, &b.store_id);
    let count = |f: &dyn Fn(&Ev) -> bool| evs.iter().filter(|e| f(e)).count();

    let corpus: Vec<(String, Vec<Vec<String>>)> = vec![
        (format!("SELECT count(*) FROM {sa}"), one(30)),
        (
            format!("SELECT eventdata.eventname, count(*) AS n FROM {sa} GROUP BY eventdata.eventname ORDER BY eventdata.eventname"),
            grouped(&evs, |e| Some(e.name)),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE eventdata.useridentity.principalid = 'u1'"),
            one(count(&|e| e.user == "u1")),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE eventTime >= timestamp '2024-03-02 00:00:00' AND eventTime < timestamp '2024-03-03 00:00:00'"),
            one(count(&|e| e.time >= BASE + 86_400 && e.time < BASE + 2 * 86_400)),
        ),
        (
            format!("SELECT json_extract_scalar(eventdata.additionaleventdata, '$.url') AS url, count(*) FROM {sa} GROUP BY 1 ORDER BY 1"),
            grouped(&evs, |e| Some(e.url.clone())),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE json_extract_scalar(eventdata.additionaleventdata, '$.status') = '500'"),
            one(count(&|e| e.status == 500)),
        ),
        (
            format!("SELECT date_trunc('day', eventtime) AS day, count(*) FROM {sa} GROUP BY 1 ORDER BY 1"),
            grouped(&evs, |e| Some(shown((e.time / 86_400) * 86_400))),
        ),
        (
            format!("select eventtime, eventdata.useridentity, eventdata.eventname, eventdata.additionaleventdata\nfrom {sa} order by eventTime desc limit 10"),
            evs.iter()
                .rev()
                .take(10)
                .map(|e| {
                    vec![
                        shown(e.time),
                        format!("{{type=User, principalid={}, details=null}}", e.user),
                        e.name.to_owned(),
                        additional(e),
                    ]
                })
                .collect(),
        ),
        (
            format!("SELECT eventdata.uid FROM {sa} ORDER BY eventtime ASC LIMIT 3 OFFSET 2"),
            (2..5).map(|i| vec![format!("uid-{i}")]).collect(),
        ),
        (
            format!("SELECT count(DISTINCT eventdata.useridentity.principalid) FROM {sa}"),
            one(3),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE eventdata.eventname IN ('org.create', 'org.user.add')"),
            one(count(&|e| e.name == "org.create" || e.name == "org.user.add")),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE eventdata.eventname LIKE 'org.%'"),
            one(count(&|e| e.name.starts_with("org."))),
        ),
        (
            format!("SELECT eventdata.sourceipaddress, count(*) FROM {sa} GROUP BY eventdata.sourceipaddress ORDER BY 1"),
            grouped(&evs, |e| Some(e.ip.clone())),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE eventtime > from_iso8601_timestamp('2024-03-03T12:00:00Z')"),
            one(count(&|e| e.time > BASE + 60 * 3600)),
        ),
        (
            format!(
                "SELECT count(*) FROM {sa} a JOIN {sb} b ON a.eventdata.useridentity.principalid = b.eventdata.useridentity.principalid"
            ),
            one(evs.iter().map(|x| evs[..5].iter().filter(|y| y.user == x.user).count()).sum::<usize>()),
        ),
        (
            format!("SELECT count(*) FROM (SELECT eventid FROM {sa} UNION ALL SELECT eventid FROM {sb})"),
            one(35),
        ),
        (
            format!("SELECT eventdata.useridentity.principalid AS p, count(*) FROM {sa} GROUP BY 1 HAVING count(*) > 9 ORDER BY 1"),
            grouped(&evs, |e| Some(e.user)),
        ),
        (
            format!("SELECT sum(CASE WHEN json_extract_scalar(eventdata.additionaleventdata, '$.status') = '500' THEN 1 ELSE 0 END) FROM {sa}"),
            one(count(&|e| e.status == 500)),
        ),
        (
            format!("SELECT min(eventtime), max(eventtime) FROM {sa}"),
            vec![vec![shown(BASE), shown(BASE + 29 * 3 * 3600)]],
        ),
        (
            format!("SELECT json_extract(eventdata.additionaleventdata, '$.url') FROM {sa} WHERE eventdata.uid = 'uid-5'"),
            one(format!("\"{}\"", evs[5].url)),
        ),
        (
            format!("SELECT to_iso8601(eventtime) FROM {sa} WHERE eventdata.uid = 'uid-0'"),
            one("2024-03-01T00:00:00.000Z"),
        ),
        (
            format!("SELECT count(*) FROM (SELECT eventdata.useridentity.principalid AS p FROM {sa} WHERE eventdata.eventname = 'api.access') WHERE p = 'u2'"),
            one(count(&|e| e.name == "api.access" && e.user == "u2")),
        ),
        (
            format!("SELECT count(*) FROM {sa} WHERE metadata.channelarn = '{}' AND eventcategory = 'ActivityAuditLog' AND recipientaccountid = '{OWNER}'", a.channel_arn),
            one(30),
        ),
        (
            format!(
                "SELECT p, uid FROM (SELECT eventdata.useridentity.principalid AS p, eventdata.uid AS uid, \
                 row_number() OVER (PARTITION BY eventdata.useridentity.principalid ORDER BY eventtime DESC) AS rn FROM {sa}) \
                 WHERE rn = 1 ORDER BY p"
            ),
            vec![
                vec!["u1".into(), "uid-27".into()],
                vec!["u2".into(), "uid-28".into()],
                vec!["u3".into(), "uid-29".into()],
            ],
        ),
        (
            format!("SELECT eventdata.eventname, count(*) FROM {sa} WHERE eventdata.useridentity.principalid = 'u3' AND eventtime < timestamp '2024-03-02 12:00:00' GROUP BY 1 ORDER BY 2 DESC, 1"),
            {
                let mut g = grouped(&evs, |e| (e.user == "u3" && e.time < BASE + 36 * 3600).then_some(e.name));
                g.sort_by(|x, y| y[1].parse::<i64>().unwrap().cmp(&x[1].parse().unwrap()).then(x[0].cmp(&y[0])));
                g
            },
        ),
    ];
    assert!(corpus.len() >= 20);
    for (sql, expected) in corpus {
        let got = cells(run_query(&c, &sql).await);
        assert_eq!(got, expected, "query: {sql}");
    }
}

/// `now()` is the time the query runs, not the time the server started:
/// statements are planned from one session state built at start, and a
/// clone of it keeps that state's start time unless it is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_is_when_the_query_runs() {
    let t = TestLake::start().await;
    let c = t.control(OWNER);
    let s = setup(&c, "now", None).await;
    t.data(OWNER)
        .put_audit_events()
        .channel_arn(&s.channel_arn)
        .audit_events(entry("n1", event_data("n1", "x", &now_text(0), "u1")))
        .send()
        .await
        .unwrap();
    let shown = |t: time::OffsetDateTime| {
        let f = time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
        );
        t.format(&f).unwrap()
    };
    let before = shown(time::OffsetDateTime::now_utc());
    let rows = run_query(&c, &format!("SELECT now() AS t FROM {}", s.store_id)).await;
    let after = shown(time::OffsetDateTime::now_utc());
    let now = &rows[0][0].1;
    assert!(
        before <= *now && *now <= after,
        "now() = {now}, expected between {before} and {after}"
    );
}
