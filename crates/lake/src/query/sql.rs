//! The CloudTrail Lake SQL dialect on top of DataFusion.
//!
//! - An event data store is named by its bare ID after `FROM`
//!   (`FROM 3f2a...-...`), which no standard SQL grammar accepts: the front
//!   end finds UUID-shaped words outside strings, quoted names and comments
//!   and turns them into quoted identifiers before parsing.
//! - Only one read-only `SELECT` runs. Everything else (DDL, DML, `COPY`,
//!   `EXPLAIN`, `SET`, several statements, `SELECT ... INTO`) is refused
//!   with `InvalidQueryStatementException` before planning, and the plan is
//!   checked again with DataFusion's `SQLOptions`.
//! - Trino functions that CloudTrail Lake users reach for are registered:
//!   `json_extract_scalar`, `json_extract`, `json_array_length`,
//!   `from_iso8601_timestamp`, `to_iso8601`.
//! - Unaliased `a.b.c` projections are named after their last part, as
//!   CloudTrail Lake names them.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, Volatility};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Ident, SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::LakeError;

/// Longest statement accepted, as CloudTrail Lake's `QueryStatement`.
pub const MAX_STATEMENT: usize = 10_000;

/// Most operators (`+`, `=`, `AND`, `::`, `[`, ...) one statement may hold.
///
/// Each operator can add a level to an expression tree (`1+1+1...` nests
/// to the left), and parsing's clean-up, planning and evaluation recurse
/// once per level on a tokio worker's 2 MiB stack, so a chain of the
/// longest length would overflow it and abort the whole process. A debug
/// build's frames fill that stack at about 250 levels, so the bound leaves
/// a margin of two (a release build's frames are much smaller). 128
/// still fits a filter of 64 `OR`ed comparisons; longer lists belong in
/// `IN (...)`, whose commas do not count. Parentheses and subqueries are
/// bounded separately by the parser's recursion limit. Counted on the
/// tokens, before the tree exists: dropping a too-deep tree overflows too.
pub const MAX_OPERATORS: usize = 128;

/// Most set operations (`UNION`, `EXCEPT`, `INTERSECT`) one statement may
/// hold. Each nests the query tree a level, and planning recurses through
/// them with frames far larger than an operator's: in a debug build, a
/// 2 MiB stack holds fewer than 120 of them, and a statement of the
/// longest length can hold 500. Counted on the tokens, like
/// [`MAX_OPERATORS`].
pub const MAX_SET_OPERATIONS: usize = 32;

fn invalid(message: impl std::fmt::Display) -> LakeError {
    LakeError::bad("InvalidQueryStatementException", message)
}

fn is_uuid(word: &[u8]) -> bool {
    word.len() == 36
        && word.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Replaces bare event data store IDs with quoted, lower-case identifiers.
/// Returns the new text and the IDs in order of first use.
pub fn quote_store_ids(sql: &str) -> (String, Vec<String>) {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut ids: Vec<String> = Vec::new();
    let mut i = 0;
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let b = bytes[i];
        let skip_to = match b {
            b'\'' | b'"' | b'`' => {
                // A quoted string or name; doubled quotes escape.
                let mut j = i + 1;
                loop {
                    match bytes.get(j) {
                        None => break bytes.len(),
                        Some(c) if *c == b && bytes.get(j + 1) == Some(&b) => j += 2,
                        Some(c) if *c == b => break j + 1,
                        Some(_) => j += 1,
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                sql[i..].find('\n').map_or(bytes.len(), |n| i + n)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => sql[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |n| i + 2 + n + 2),
            _ => i,
        };
        if skip_to > i {
            out.push_str(&sql[i..skip_to]);
            i = skip_to;
            continue;
        }
        let starts_word = i == 0 || !(word_byte(bytes[i - 1]) || bytes[i - 1] == b'-');
        if starts_word && i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            let ends_word = bytes
                .get(i + 36)
                .is_none_or(|c| !(word_byte(*c) || *c == b'-'));
            if ends_word {
                let id = sql[i..i + 36].to_ascii_lowercase();
                out.push('"');
                out.push_str(&id);
                out.push('"');
                if !ids.contains(&id) {
                    ids.push(id);
                }
                i += 36;
                continue;
            }
        }
        // Copy one whole character (the text may hold multi-byte ones).
        let ch = sql[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, ids)
}

/// How many tokens of `sql` may add a level to an expression: every token
/// but names, literals, separators and brackets, plus the keyword
/// operators. `None` when it does not tokenize (the parser says why).
/// How many set operations `sql` holds, counted on its tokens.
fn set_operations(sql: &str) -> Option<usize> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .iter()
            .filter(|t| {
                matches!(t, Token::Word(w) if matches!(
                    w.keyword,
                    Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT | Keyword::MINUS
                ))
            })
            .count(),
    )
}

fn operators(sql: &str) -> Option<usize> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .iter()
            .filter(|t| match t {
                Token::Word(w) => matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::XOR
                        | Keyword::NOT
                        | Keyword::IS
                        | Keyword::IN
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::SIMILAR
                        | Keyword::BETWEEN
                        | Keyword::REGEXP
                        | Keyword::RLIKE
                        | Keyword::DIV
                        | Keyword::COLLATE
                        | Keyword::AT
                        | Keyword::OVERLAPS
                ),
                Token::EOF
                | Token::Whitespace(_)
                | Token::Comma
                | Token::LParen
                | Token::RParen
                | Token::Period
                | Token::SemiColon
                | Token::Number(..)
                | Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::TripleSingleQuotedString(_)
                | Token::TripleDoubleQuotedString(_)
                | Token::DollarQuotedString(_)
                | Token::SingleQuotedByteStringLiteral(_)
                | Token::DoubleQuotedByteStringLiteral(_)
                | Token::TripleSingleQuotedByteStringLiteral(_)
                | Token::TripleDoubleQuotedByteStringLiteral(_)
                | Token::SingleQuotedRawStringLiteral(_)
                | Token::DoubleQuotedRawStringLiteral(_)
                | Token::TripleSingleQuotedRawStringLiteral(_)
                | Token::TripleDoubleQuotedRawStringLiteral(_)
                | Token::NationalStringLiteral(_)
                | Token::EscapedStringLiteral(_)
                | Token::UnicodeStringLiteral(_)
                | Token::HexStringLiteral(_) => false,
                _ => true,
            })
            .count(),
    )
}

/// A statement that passed the read-only checks.
#[derive(Debug)]
pub struct Prepared {
    /// The parsed statement, ready to plan.
    pub statement: DfStatement,
    /// The event data store IDs it names.
    pub store_ids: Vec<String>,
}

/// Rewrites, parses and checks a CloudTrail Lake statement.
pub fn prepare(sql: &str) -> Result<Prepared, LakeError> {
    if sql.trim().is_empty() || sql.len() > MAX_STATEMENT {
        return Err(invalid(format!(
            "QueryStatement must be 1 to {MAX_STATEMENT} characters"
        )));
    }
    let (text, store_ids) = quote_store_ids(sql);
    if operators(&text).is_some_and(|n| n > MAX_OPERATORS) {
        return Err(invalid(format!(
            "the statement is too complex: it may hold at most {MAX_OPERATORS} operators"
        )));
    }
    if set_operations(&text).is_some_and(|n| n > MAX_SET_OPERATIONS) {
        return Err(invalid(format!(
            "the statement is too complex: it may hold at most {MAX_SET_OPERATIONS} UNION, EXCEPT or INTERSECT operations"
        )));
    }
    let mut statements = DFParser::parse_sql_with_dialect(&text, &GenericDialect {})
        .map_err(|e| invalid(format!("the statement does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(invalid("exactly one SELECT statement is allowed"));
    }
    let mut statement = statements.pop_front().expect("one statement");
    let DfStatement::Statement(inner) = &mut statement else {
        return Err(invalid("only SELECT statements are allowed"));
    };
    let Statement::Query(query) = inner.as_mut() else {
        return Err(invalid("only SELECT statements are allowed"));
    };
    if let SetExpr::Select(select) = query.body.as_mut() {
        if select.into.is_some() {
            return Err(invalid("SELECT ... INTO is not allowed"));
        }
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item {
                let alias: Ident = parts.last().cloned().expect("compound has parts");
                let expr = Expr::CompoundIdentifier(std::mem::take(parts));
                *item = SelectItem::ExprWithAlias { expr, alias };
            }
        }
    }
    if store_ids.is_empty() {
        return Err(invalid(
            "the statement must name an event data store ID after FROM",
        ));
    }
    Ok(Prepared {
        statement,
        store_ids,
    })
}

fn strings(arg: &ColumnarValue, rows: usize) -> datafusion::error::Result<ArrayRef> {
    let array = arg.clone().into_array(rows)?;
    Ok(cast(&array, &DataType::Utf8)?)
}

fn str_at(array: &ArrayRef, i: usize) -> Option<&str> {
    let a = array
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
        .expect("cast to Utf8");
    (!a.is_null(i)).then(|| a.value(i))
}

fn rows_of(args: &[ColumnarValue]) -> usize {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or(1)
}

fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

fn finish(array: ArrayRef, scalar: bool) -> datafusion::error::Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// Evaluates a JSONPath on JSON text. `None` on bad JSON or no match, as
/// Trino does.
fn json_path<'a>(
    doc: &'a serde_json::Value,
    path: &serde_json_path::JsonPath,
) -> Option<&'a serde_json::Value> {
    path.query(doc).exactly_one().ok()
}

fn parse_path(text: &str) -> datafusion::error::Result<serde_json_path::JsonPath> {
    serde_json_path::JsonPath::parse(text)
        .map_err(|e| DataFusionError::Execution(format!("invalid JSON path {text:?}: {e}")))
}

type JsonFn = fn(&serde_json::Value) -> Option<String>;

/// `json_extract_scalar` / `json_extract`: text in, text out.
fn json_udf(name: &'static str, pick: JsonFn) -> ScalarUDF {
    let fun = Arc::new(move |args: &[ColumnarValue]| {
        let n = rows_of(args);
        let (docs, paths) = (strings(&args[0], n)?, strings(&args[1], n)?);
        let mut out = StringBuilder::with_capacity(n, n * 8);
        let mut cached: Option<(String, serde_json_path::JsonPath)> = None;
        for i in 0..n {
            let (Some(doc), Some(path)) = (str_at(&docs, i), str_at(&paths, i)) else {
                out.append_null();
                continue;
            };
            if cached.as_ref().is_none_or(|(p, _)| p != path) {
                cached = Some((path.to_owned(), parse_path(path)?));
            }
            let compiled = &cached.as_ref().expect("set above").1;
            let value = serde_json::from_str::<serde_json::Value>(doc)
                .ok()
                .and_then(|v| json_path(&v, compiled).and_then(pick));
            out.append_option(value);
        }
        finish(Arc::new(out.finish()), all_scalar(args))
    });
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        name,
        Signature::string(2, Volatility::Immutable),
        DataType::Utf8,
        fun,
    ))
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    Some(v.to_string())
}

fn json_array_length() -> ScalarUDF {
    let fun = Arc::new(|args: &[ColumnarValue]| {
        let n = rows_of(args);
        let docs = strings(&args[0], n)?;
        let mut out = Int64Builder::with_capacity(n);
        for i in 0..n {
            let len = str_at(&docs, i)
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|v| v.as_array().map(|a| a.len() as i64));
            out.append_option(len);
        }
        finish(Arc::new(out.finish()), all_scalar(args))
    });
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "json_array_length",
        Signature::string(1, Volatility::Immutable),
        DataType::Int64,
        fun,
    ))
}

/// Parses ISO 8601 date-times: `2024-03-01`, `2024-03-01T10:20:30`,
/// with an optional fraction and `Z` or offset.
fn parse_iso8601(text: &str) -> Option<i64> {
    use time::format_description::well_known::Iso8601;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(t) = time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64);
    }
    time::Date::parse(text, &Iso8601::DEFAULT)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
}

fn from_iso8601_timestamp() -> ScalarUDF {
    let fun = Arc::new(|args: &[ColumnarValue]| {
        let n = rows_of(args);
        let texts = strings(&args[0], n)?;
        let mut out = TimestampMillisecondBuilder::with_capacity(n);
        for i in 0..n {
            match str_at(&texts, i) {
                None => out.append_null(),
                Some(t) => match parse_iso8601(t) {
                    Some(ms) => out.append_value(ms),
                    None => {
                        return Err(DataFusionError::Execution(format!(
                            "from_iso8601_timestamp: {t:?} is not an ISO 8601 date-time"
                        )))
                    }
                },
            }
        }
        finish(Arc::new(out.finish()), all_scalar(args))
    });
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "from_iso8601_timestamp",
        Signature::string(1, Volatility::Immutable),
        DataType::Timestamp(TimeUnit::Millisecond, None),
        fun,
    ))
}

fn to_iso8601() -> ScalarUDF {
    let fun = Arc::new(|args: &[ColumnarValue]| {
        let n = rows_of(args);
        let array = args[0].clone().into_array(n)?;
        let ms = cast(&array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ms = cast(&ms, &DataType::Int64)?;
        let ms = ms
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("cast to Int64");
        let mut out = StringBuilder::with_capacity(n, n * 24);
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        for i in 0..n {
            if ms.is_null(i) {
                out.append_null();
                continue;
            }
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(ms.value(i)) * 1_000_000,
            )
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
            out.append_value(
                t.format(&format)
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?,
            );
        }
        finish(Arc::new(out.finish()), all_scalar(args))
    });
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "to_iso8601",
        Signature::any(1, Volatility::Immutable),
        DataType::Utf8,
        fun,
    ))
}

/// The dialect's extra functions.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        json_udf("json_extract_scalar", scalar_text),
        json_udf("json_extract", json_text),
        json_array_length(),
        from_iso8601_timestamp(),
        to_iso8601(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

    #[test]
    fn bare_store_ids_become_quoted_names_outside_strings_and_comments() {
        let sql = format!(
            "select '{ID}' as s, \"{ID}\" -- {ID}\n from {} /* {ID} */ join {ID} using (x)",
            ID.to_uppercase()
        );
        let (text, ids) = quote_store_ids(&sql);
        assert_eq!(ids, vec![ID.to_owned()]);
        assert_eq!(
            text,
            format!("select '{ID}' as s, \"{ID}\" -- {ID}\n from \"{ID}\" /* {ID} */ join \"{ID}\" using (x)")
        );
        let (_, none) = quote_store_ids(&format!("select * from x{ID}"));
        assert!(none.is_empty());
    }

    #[test]
    fn only_a_single_select_passes() {
        prepare(&format!(
            "select eventtime from {ID} order by eventTime desc limit 10"
        ))
        .unwrap();
        for bad in [
            format!("delete from {ID}"),
            format!("insert into {ID} values (1)"),
            format!("drop table {ID}"),
            format!("create external table t stored as parquet location '/etc' -- {ID}"),
            format!("copy (select * from {ID}) to '/tmp/x.parquet'"),
            format!("select 1 from {ID}; select 2 from {ID}"),
            format!("explain select * from {ID}"),
            format!("select * into t2 from {ID}"),
            "set datafusion.execution.batch_size = 1".to_owned(),
            "select 1".to_owned(),
            String::new(),
        ] {
            let err = prepare(&bad).unwrap_err();
            assert_eq!(err.code(), "InvalidQueryStatementException", "{bad}");
        }
    }

    #[test]
    fn iso8601_forms() {
        assert_eq!(
            parse_iso8601("2024-03-01T10:20:30Z"),
            Some(1_709_288_430_000)
        );
        assert_eq!(
            parse_iso8601("2024-03-01T12:20:30+02:00"),
            Some(1_709_288_430_000)
        );
        assert_eq!(
            parse_iso8601("2024-03-01T10:20:30.500"),
            Some(1_709_288_430_500)
        );
        assert_eq!(parse_iso8601("2024-03-01"), Some(1_709_251_200_000));
        assert_eq!(parse_iso8601("March"), None);
    }
}
