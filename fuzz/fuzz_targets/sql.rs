//! The SQL dialect's front end: `sql::quote_store_ids` (bare store IDs
//! become quoted names outside strings and comments), `sql::prepare` (parse
//! and the read-only guard) and `query::check_plan` (planning against empty
//! stores and DataFusion's own read-only check), as `StartQuery` runs them.
//!
//! Asserts: quoting is idempotent (its output has no bare ID left and a
//! second pass changes nothing) and names lower-case UUIDs; an accepted
//! statement is one query with no `SELECT ... INTO` at any depth, naming
//! at least one store; and a plan the lake accepts only reads, and reads
//! nothing but the stores the statement names.

#![no_main]

use std::ops::ControlFlow;
use std::sync::LazyLock;

use auditlake_lake::fuzzing::check_plan;
use auditlake_lake::fuzzing::{prepare, quote_store_ids, MAX_STATEMENT};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

fn is_store_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Finds a `SELECT ... INTO` anywhere in a query, set operations included.
struct Into;

fn selects_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.into.is_some(),
        SetExpr::SetOperation { left, right, .. } => selects_into(left) || selects_into(right),
        _ => false,
    }
}

impl Visitor for Into {
    type Break = ();
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if selects_into(&query.body) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

fn check_read_only(plan: &LogicalPlan, stores: &[String]) {
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Extension(_) => panic!("an accepted plan does more than read:\n{plan}"),
            LogicalPlan::TableScan(scan) => assert!(
                stores.iter().any(|s| scan.table_name.table() == s),
                "an accepted plan reads {} which is no named store:\n{plan}",
                scan.table_name
            ),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("walks");
}

fuzz_target!(|data: &[u8]| {
    // `StartQuery` runs on a tokio worker, whose stack is 2 MiB; the
    // fuzzer's own thread has 8. Check on a stack like the server's, so a
    // statement that would overflow it there is a crash here too.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, || check(data))
            .expect("thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
});

fn check(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let (quoted, ids) = quote_store_ids(sql);
    for id in &ids {
        assert!(is_store_id(id), "{id:?}");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    let (again, none) = quote_store_ids(&quoted);
    assert!(none.is_empty(), "a bare ID survived quoting: {quoted:?}");
    assert_eq!(again, quoted);

    let Ok(prepared) = prepare(sql) else {
        return;
    };
    assert!(sql.len() <= MAX_STATEMENT);
    assert!(!prepared.store_ids.is_empty());
    assert_eq!(prepared.store_ids, ids);
    let DfStatement::Statement(statement) = &prepared.statement else {
        panic!("accepted a statement that is not SQL: {sql:?}");
    };
    assert!(
        matches!(**statement, Statement::Query(_)),
        "accepted a statement that is not a query: {sql:?}"
    );
    assert!(
        statement.visit(&mut Into).is_continue(),
        "accepted SELECT ... INTO: {sql:?}"
    );
    if let Ok(plan) = RUNTIME.block_on(check_plan(&prepared)) {
        check_read_only(&plan, &prepared.store_ids);
    }
}
