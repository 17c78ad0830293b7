//! `sql` steps on PostgreSQL and SQLite, through sqlx's runtime API.
//!
//! SQL text is never templated (the validator refuses markup in it): values travel as bound
//! parameters. A `query` returns its rows as a list of objects (`rows`) and `rows_affected`;
//! a script `file` runs in one transaction, all or nothing. `read-only = true` runs the query
//! in a read-only transaction, so a check cannot write by mistake, and only if it is one
//! statement that only reads (`runbook_core::writes::sql_read_refusal`). A PostgreSQL URL's
//! `schema=` (Prisma's) is the session's `search_path`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use futures_util::TryStreamExt as _;
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgValueFormat};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{
    AssertSqlSafe, Column as _, Connection as _, Executor as _, Row as _, TypeInfo as _, ValueRef as _,
};

use crate::report::Outputs;

/// A statement with its values rendered.
#[derive(Debug, Clone)]
pub struct Request {
    /// Database URL (`postgres://...`, `sqlite:path`).
    pub url: String,
    /// What to execute.
    pub statement: Statement,
    /// Bound values, in `$1`, `$2`... order (`?` for SQLite also works).
    pub args: Vec<Value>,
    /// Run in a read-only transaction.
    pub read_only: bool,
    /// The folder relative SQLite paths and script files are resolved from.
    pub base_dir: PathBuf,
    /// The SHA-256 the script file had when the run started (see
    /// [`crate::files::read_pinned`]); `None`: not checked.
    pub script_sha256: Option<String>,
}

/// What a SQL step executes.
#[derive(Debug, Clone)]
pub enum Statement {
    /// One statement, as written in the runbook.
    Query(String),
    /// A script file (path relative to `base_dir`), run in one transaction.
    File(String),
}

/// The URL with any password replaced, for messages.
pub fn display_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Execute the request; its outputs and the line that says what it did, or why it failed.
/// A text that only reads reports the rows it returned (PostgreSQL counts a SELECT's rows as
/// its command's count: never said as "affected"); a write, the rows it changed, and the rows
/// it returned when it has `RETURNING`.
pub async fn execute(req: &Request) -> Result<(Outputs, String), String> {
    // A script that cannot be read, or changed since the run started, stops the step
    // before any connection is made (it is read, and checked, again in the transaction).
    let text = match &req.statement {
        Statement::File(file) => script(req, file)?,
        Statement::Query(q) => q.clone(),
    };
    // A read-only transaction stops writes to tables, not a second statement that ends it,
    // `COPY .. TO`, `VACUUM INTO` or a side-effect function: a read-only text is one
    // statement that only reads, or it does not run (ARCHITECTURE.md, "a read-only check").
    if req.read_only
        && let Some(why) = runbook_core::writes::sql_read_refusal(&text)
    {
        return Err(format!("refused to run it in a read-only transaction: {why}"));
    }
    let (rows, affected) = if req.url.starts_with("postgres://") || req.url.starts_with("postgresql://") {
        postgres(req).await?
    } else if req.url.starts_with("sqlite:") {
        sqlite(req).await?
    } else {
        return Err(format!(
            "`{}` is not a PostgreSQL (`postgres://`) or SQLite (`sqlite:`) URL",
            display_url(&req.url)
        ));
    };
    let said = if runbook_core::writes::sql_only_reads(&text) {
        format!("sql: {} row(s) returned", rows.len())
    } else if rows.is_empty() {
        format!("sql: {affected} row(s) affected")
    } else {
        format!("sql: {affected} row(s) affected, {} returned", rows.len())
    };
    let outputs = BTreeMap::from([
        ("rows".to_string(), Value::Array(rows.into_iter().map(Value::Object).collect())),
        ("rows_affected".to_string(), Value::from(affected)),
    ]);
    Ok((outputs, said))
}

fn script(req: &Request, file: &str) -> Result<String, String> {
    let path = req.base_dir.join(file);
    let bytes = crate::files::read_pinned(&path, req.script_sha256.as_deref())
        .map_err(|e| format!("SQL file: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("SQL file `{}` is not UTF-8 text", path.display()))
}

fn db_error(what: &str, e: &sqlx::Error) -> String {
    // The database's own words (PostgreSQL's error display adds the line of its C source
    // that raised it, which reads like a line of the script).
    match e.as_database_error() {
        Some(db) => match db.code() {
            Some(code) => format!("{what}: {} (SQLSTATE {code})", db.message()),
            None => format!("{what}: {}", db.message()),
        },
        None => format!("{what}: {}", crate::http::error_chain(e)),
    }
}

type RowsAndCount = (Vec<Map<String, Value>>, u64);
type Object = Map<String, Value>;

/// Run the request's statement or script in `tx`, and commit. A failure drops `tx`,
/// which rolls it back.
async fn in_transaction<DB>(
    mut tx: sqlx::Transaction<'_, DB>,
    req: &Request,
    read_row: fn(&DB::Row) -> Result<Object, String>,
) -> Result<RowsAndCount, String>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::QueryResult: QueryResultCount,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let out = match &req.statement {
        // A read-only script is one statement (checked above), sent like a query: through
        // the extended protocol, which PostgreSQL refuses for several statements.
        Statement::File(file) if req.read_only => {
            let text = script(req, file)?;
            query(&mut *tx, &text, &[], read_row).await?
        }
        Statement::File(file) => {
            let text = script(req, file)?;
            let done = (&mut *tx)
                .execute(sqlx::raw_sql(AssertSqlSafe(text)))
                .await
                .map_err(|e| db_error(&format!("`{file}` failed and was rolled back"), &e))?;
            (Vec::new(), done.count())
        }
        Statement::Query(text) => query(&mut *tx, text, &req.args, read_row).await?,
    };
    tx.commit().await.map_err(|e| db_error("commit failed", &e))?;
    Ok(out)
}

/// Run one statement with its values bound in order; its rows (read by `read_row`) and the
/// number of rows it changed. JSON objects and arrays are bound as their text
/// (`$1::jsonb` reads them back on PostgreSQL).
async fn query<'c, DB, E>(
    executor: E,
    text: &str,
    args: &[Value],
    read_row: fn(&DB::Row) -> Result<Object, String>,
) -> Result<RowsAndCount, String>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::QueryResult: QueryResultCount,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut query = sqlx::query::<DB>(AssertSqlSafe(text.to_string()));
    for arg in args {
        query = match arg {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => query.bind(s.clone()),
            other => query.bind(other.to_string()),
        };
    }
    let mut rows = Vec::new();
    let mut affected = 0;
    let mut stream = executor.fetch_many(query);
    while let Some(item) = stream.try_next().await.map_err(|e| db_error("the query failed", &e))? {
        match item {
            sqlx::Either::Left(done) => affected += done.count(),
            sqlx::Either::Right(row) => rows.push(read_row(&row)?),
        }
    }
    Ok((rows, affected))
}

/// `rows_affected` of either backend's result.
trait QueryResultCount {
    fn count(&self) -> u64;
}

impl QueryResultCount for sqlx::postgres::PgQueryResult {
    fn count(&self) -> u64 {
        self.rows_affected()
    }
}

impl QueryResultCount for sqlx::sqlite::SqliteQueryResult {
    fn count(&self) -> u64 {
        self.rows_affected()
    }
}

/// Prisma's `schema=` URL parameter, which sqlx ignores: the schema the application's tables
/// live in (ARCHITECTURE.md, "one URL, one schema").
fn prisma_schema(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "schema").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn postgres(req: &Request) -> Result<RowsAndCount, String> {
    let opts = PgConnectOptions::from_str(&req.url)
        .map_err(|e| db_error(&format!("invalid database URL `{}`", display_url(&req.url)), &e))?;
    // The schema Prisma's `?schema=` names is the one the statements' unqualified names
    // mean, as for Prisma and the runbooks' own shell steps; a check also runs in a session
    // whose every transaction is read-only.
    let mut settings: Vec<(&str, String)> = Vec::new();
    if let Some(schema) = prisma_schema(&req.url) {
        settings.push(("search_path", format!("\"{}\"", schema.replace('"', "\"\""))));
    }
    if req.read_only {
        settings.push(("default_transaction_read_only", "on".to_string()));
    }
    let opts = opts.options(settings.iter().map(|(k, v)| (*k, v.as_str())));
    let mut conn = PgConnection::connect_with(&opts)
        .await
        .map_err(|e| db_error(&format!("cannot connect to `{}`", display_url(&req.url)), &e))?;
    let result = async {
        let tx = if req.read_only { conn.begin_with("BEGIN READ ONLY").await } else { conn.begin().await }
            .map_err(|e| db_error("cannot begin a transaction", &e))?;
        in_transaction(tx, req, pg_row).await
    }
    .await;
    let _ = conn.close().await;
    result
}

fn pg_row(row: &PgRow) -> Result<Object, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
    let mut out = Map::new();
    for col in row.columns() {
        let i = col.ordinal();
        let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
        if raw.is_null() {
            out.insert(col.name().to_string(), Value::Null);
            continue;
        }
        let ty = raw.type_info().name().to_string();
        let get_err = |e: sqlx::Error| format!("column `{}` ({ty}): {e}", col.name());
        let value = match ty.as_str() {
            "BOOL" => Value::from(row.try_get::<bool, _>(i).map_err(get_err)?),
            "INT2" => Value::from(row.try_get::<i16, _>(i).map_err(get_err)?),
            "INT4" => Value::from(row.try_get::<i32, _>(i).map_err(get_err)?),
            "INT8" => Value::from(row.try_get::<i64, _>(i).map_err(get_err)?),
            "OID" => Value::from(row.try_get::<sqlx::postgres::types::Oid, _>(i).map_err(get_err)?.0),
            "FLOAT4" => Value::from(row.try_get::<f32, _>(i).map_err(get_err)?),
            "FLOAT8" => Value::from(row.try_get::<f64, _>(i).map_err(get_err)?),
            "NUMERIC" => {
                let bytes = match raw.format() {
                    PgValueFormat::Binary => raw.as_bytes().map_err(|e| e.to_string())?,
                    PgValueFormat::Text => &[],
                };
                numeric_value(bytes).ok_or_else(|| format!("column `{}`: unreadable NUMERIC", col.name()))?
            }
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" | "UNKNOWN" => {
                Value::from(row.try_get::<String, _>(i).map_err(get_err)?)
            }
            "JSON" | "JSONB" => row.try_get::<sqlx::types::Json<Value>, _>(i).map_err(get_err)?.0,
            "TIMESTAMPTZ" => Value::from(row.try_get::<DateTime<Utc>, _>(i).map_err(get_err)?.to_rfc3339()),
            "TIMESTAMP" => Value::from(row.try_get::<NaiveDateTime, _>(i).map_err(get_err)?.to_string()),
            "DATE" => Value::from(row.try_get::<NaiveDate, _>(i).map_err(get_err)?.to_string()),
            "TIME" => Value::from(row.try_get::<NaiveTime, _>(i).map_err(get_err)?.to_string()),
            "BYTEA" => Value::from(hex(&row.try_get::<Vec<u8>, _>(i).map_err(get_err)?)),
            "TEXT[]" | "VARCHAR[]" | "NAME[]" => {
                Value::from(row.try_get::<Vec<String>, _>(i).map_err(get_err)?)
            }
            "INT4[]" => Value::from(row.try_get::<Vec<i32>, _>(i).map_err(get_err)?),
            "INT8[]" => Value::from(row.try_get::<Vec<i64>, _>(i).map_err(get_err)?),
            other => {
                return Err(format!(
                    "column `{}` has type {other}, which a sql step cannot read; cast it in the query (`{}::text`)",
                    col.name(),
                    col.name()
                ));
            }
        };
        out.insert(col.name().to_string(), value);
    }
    Ok(out)
}

/// A PostgreSQL NUMERIC in binary form as a JSON number: an integer when it is one and fits,
/// a float otherwise, or a string for NaN and infinities.
fn numeric_value(bytes: &[u8]) -> Option<Value> {
    let word = |i: usize| bytes.get(i * 2..i * 2 + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i32;
    let sign = word(2)? as u16;
    let dscale = word(3)? as usize;
    match sign {
        0xC000 => return Some(Value::from("NaN")),
        0xD000 => return Some(Value::from("Infinity")),
        0xF000 => return Some(Value::from("-Infinity")),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits).map(|k| word(4 + k)).collect::<Option<_>>()?;
    // Base-10000 digits; digit k has weight 10000^(weight - k).
    let mut int_part = String::new();
    for k in 0..=weight.max(-1) {
        let d = digits.get(k as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let first_frac = (weight + 1).max(0);
    // Leading zero groups when the weight is below -1.
    for _ in 0..(-(weight + 1)).max(0) {
        frac.push_str("0000");
    }
    for d in digits.iter().skip(first_frac as usize) {
        frac.push_str(&format!("{d:04}"));
    }
    frac.truncate(dscale);
    while frac.len() < dscale {
        frac.push('0');
    }
    let negative = sign == 0x4000;
    let text = format!(
        "{}{int_part}{}{frac}",
        if negative { "-" } else { "" },
        if frac.is_empty() { "" } else { "." }
    );
    if frac.trim_end_matches('0').is_empty()
        && let Ok(i) = format!("{}{int_part}", if negative { "-" } else { "" }).parse::<i64>()
    {
        return Some(Value::from(i));
    }
    text.parse::<f64>().ok().map(Value::from)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn sqlite_options(req: &Request) -> Result<SqliteConnectOptions, String> {
    let opts = SqliteConnectOptions::from_str(&req.url)
        .map_err(|e| db_error(&format!("invalid database URL `{}`", req.url), &e))?;
    let file = opts.get_filename().to_path_buf();
    // A relative database path is the runbook folder's, like every other path in a runbook.
    let opts = if file.is_relative() && file != Path::new(":memory:") {
        opts.filename(req.base_dir.join(file))
    } else {
        opts
    };
    Ok(opts.read_only(req.read_only))
}

async fn sqlite(req: &Request) -> Result<RowsAndCount, String> {
    let opts = sqlite_options(req)?;
    // The engine's own store is never a step's database, by any path or VFS: a connection
    // that closes its own descriptor of the file (`vfs=unix-none`, `unix-dotfile`) drops
    // the engine's SQLite locks on it, and a backup then deletes the log under the run
    // (red team adv21-1). Nor may the SQL attach another database (it could be the store).
    if runbook_store::is_store_file_path(opts.get_filename()) {
        return Err(format!(
            "`{}` is the state store this engine journals to: a step never opens it; nothing was executed",
            display_url(&req.url)
        ));
    }
    let text = match &req.statement {
        Statement::Query(text) => text.clone(),
        Statement::File(file) => script(req, file)?,
    };
    if attaches(&text) {
        return Err(
            "the SQL attaches a database (`ATTACH`): a SQLite step works on the one database its URL names; nothing was executed"
                .to_string(),
        );
    }
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| db_error(&format!("cannot open `{}`", req.url), &e))?;
    let result = async {
        if req.read_only {
            (&mut conn)
                .execute("PRAGMA query_only = ON")
                .await
                .map_err(|e| db_error("cannot make the connection read-only", &e))?;
        }
        let tx = conn.begin().await.map_err(|e| db_error("cannot begin a transaction", &e))?;
        in_transaction(tx, req, sqlite_row).await
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Whether SQLite text holds `ATTACH` as a word (any case): the one way a statement opens
/// another file.
fn attaches(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("attach").any(|(at, w)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + w.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

fn sqlite_row(row: &SqliteRow) -> Result<Object, String> {
    let mut out = Map::new();
    for col in row.columns() {
        let i = col.ordinal();
        let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            // SQLite types values, not columns: read by the value's storage class.
            match raw.type_info().name() {
                "INTEGER" | "BOOLEAN" => {
                    Value::from(row.try_get_unchecked::<i64, _>(i).map_err(|e| e.to_string())?)
                }
                "REAL" | "NUMERIC" => {
                    Value::from(row.try_get_unchecked::<f64, _>(i).map_err(|e| e.to_string())?)
                }
                "BLOB" => {
                    Value::from(hex(&row.try_get_unchecked::<Vec<u8>, _>(i).map_err(|e| e.to_string())?))
                }
                _ => Value::from(row.try_get_unchecked::<String, _>(i).map_err(|e| e.to_string())?),
            }
        };
        out.insert(col.name().to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale as i16].iter().chain(digits) {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode() {
        // 12345678 = 1234|5678, weight 1.
        assert_eq!(numeric_value(&numeric(2, 1, 0, 0, &[1234, 5678])), Some(Value::from(12345678)));
        // -3.25 = 3 | 2500, weight 0, dscale 2.
        assert_eq!(numeric_value(&numeric(2, 0, 0x4000, 2, &[3, 2500])), Some(Value::from(-3.25)));
        // 0.0005 = 5 (×10000^-1), weight -1, dscale 4.
        assert_eq!(numeric_value(&numeric(1, -1, 0, 4, &[5])), Some(Value::from(0.0005)));
        // 0.00000001: weight -2.
        assert_eq!(numeric_value(&numeric(1, -2, 0, 8, &[1])), Some(Value::from(0.00000001)));
        // 20000 = 2 with weight 1 and trailing zeros dropped.
        assert_eq!(numeric_value(&numeric(1, 1, 0, 0, &[2])), Some(Value::from(20000)));
        assert_eq!(numeric_value(&numeric(0, 0, 0, 0, &[])), Some(Value::from(0)));
        assert_eq!(numeric_value(&numeric(0, 0, 0xC000, 0, &[])), Some(Value::from("NaN")));
        assert_eq!(numeric_value(&[1, 2]), None);
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(display_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(display_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(display_url("sqlite:data.db"), "sqlite:data.db");
    }
}
