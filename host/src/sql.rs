//! Named, parameterised queries granted to a checker plugin (seeds/001's
//! DB-backed checker): the host keeps the connection and the SQL text, the
//! plugin names a query and supplies parameters. SQLite (a database file,
//! opened read-only) is the embedded default; PostgreSQL when the operator
//! gives a connection string.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio_postgres::types::{ToSql, Type};

/// The query a checker runs by default, and its name.
pub const DEFAULT_QUERY_NAME: &str = "credentials";
pub const DEFAULT_SQLITE_QUERY: &str = "SELECT username, password FROM users WHERE username = ?";
pub const DEFAULT_POSTGRES_QUERY: &str = "SELECT username, password FROM users WHERE username = $1";

/// Most rows one query returns.
const MAX_ROWS: usize = 100;
/// How long a query may take, waiting for a connection included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL connections one checker keeps by default. Each node of a
/// fleet holds at most this many, so a hundred nodes stay well inside
/// PostgreSQL's default `max_connections` only with a small number here.
pub const DEFAULT_POSTGRES_POOL: usize = 4;
/// The most connections an operator may ask for.
pub const MAX_POSTGRES_POOL: usize = 64;

/// A parameter or column value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Value::Text(t) => t.len(),
            Value::Blob(b) => b.len(),
            _ => 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown query: {0}")]
    UnknownQuery(String),
    #[error("bad parameters: {0}")]
    BadParameters(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// Where the queries run.
enum Database {
    Sqlite {
        path: PathBuf,
        conn: Arc<Mutex<rusqlite::Connection>>,
    },
    Postgres(Box<PostgresPool>),
}

/// At most `slots.len()` PostgreSQL connections, each opened when first
/// needed and opened again after it fails. A query takes a permit, then a
/// free slot: a slot is only held with a permit, and released before it,
/// so a permit always finds one free.
struct PostgresPool {
    dsn: String,
    permits: tokio::sync::Semaphore,
    slots: Vec<tokio::sync::Mutex<Option<Postgres>>>,
}

/// A PostgreSQL connection and the statements prepared on it, so a login
/// costs one round trip, not a prepare and an execute.
struct Postgres {
    client: tokio_postgres::Client,
    statements: BTreeMap<String, tokio_postgres::Statement>,
}

/// A database and the queries one plugin may run on it, by name.
pub struct SqlGrant {
    database: Database,
    queries: BTreeMap<String, String>,
}

impl std::fmt::Debug for SqlGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connection string: it may hold a password.
        let kind = match &self.database {
            Database::Sqlite { path, .. } => format!("sqlite {}", path.display()),
            Database::Postgres(pool) => format!("postgresql, {} connections", pool.slots.len()),
        };
        f.debug_struct("SqlGrant")
            .field("database", &kind)
            .field("queries", &self.queries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SqlGrant {
    /// Connects to `dsn` (`sqlite:PATH`, or a `postgres://` /
    /// `postgresql://` URL) and checks that every query prepares.
    /// `pool` is the most PostgreSQL connections it keeps (default
    /// [`DEFAULT_POSTGRES_POOL`]); SQLite reads through one connection.
    pub async fn open(
        dsn: &str,
        queries: BTreeMap<String, String>,
        pool: Option<usize>,
    ) -> anyhow::Result<SqlGrant> {
        let database = if let Some(path) = dsn.strip_prefix("sqlite:") {
            if pool.is_some() {
                bail!("pool: SQLite reads through one connection; pool is for PostgreSQL");
            }
            let path = PathBuf::from(path.trim_start_matches("//"));
            if !path.is_file() {
                bail!("sqlite:{}: no such database file", path.display());
            }
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = rusqlite::Connection::open_with_flags(&path, flags)
                .with_context(|| format!("sqlite:{}: cannot open", path.display()))?;
            for (name, sql) in &queries {
                conn.prepare(sql)
                    .with_context(|| format!("query {name} ({sql}) does not prepare"))?;
            }
            Database::Sqlite {
                path,
                conn: Arc::new(Mutex::new(conn)),
            }
        } else if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
            let size = pool.unwrap_or(DEFAULT_POSTGRES_POOL);
            if !(1..=MAX_POSTGRES_POOL).contains(&size) {
                bail!("pool = {size}: between 1 and {MAX_POSTGRES_POOL} PostgreSQL connections");
            }
            // A bad connection string is the operator's mistake: refuse it
            // now, not at every login.
            dsn.parse::<tokio_postgres::Config>()
                .context("not a PostgreSQL connection string")?;
            let slots: Vec<_> = (0..size).map(|_| tokio::sync::Mutex::new(None)).collect();
            // Check every query on a first connection. A database that is
            // down is not a reason to stay down with it: the node starts,
            // its logins get 454 and it checks the queries when it
            // reconnects (a query that does not prepare then fails each
            // login with 454 and a log line naming it).
            match connect_postgres(dsn).await {
                Ok(client) => {
                    let mut statements = BTreeMap::new();
                    for (name, sql) in &queries {
                        let statement = client
                            .prepare(sql)
                            .await
                            .with_context(|| format!("query {name} ({sql}) does not prepare"))?;
                        statements.insert(sql.clone(), statement);
                    }
                    *slots[0].try_lock().expect("not shared yet") =
                        Some(Postgres { client, statements });
                }
                Err(e) => tracing::warn!(
                    "PostgreSQL is unreachable ({}); starting anyway: logins it checks \
                     get 454 until it answers",
                    crate::logtext::escape(&e.to_string())
                ),
            }
            Database::Postgres(Box::new(PostgresPool {
                dsn: dsn.to_owned(),
                permits: tokio::sync::Semaphore::new(size),
                slots,
            }))
        } else {
            // Name only the scheme: the rest may hold a password.
            let scheme = dsn.split(':').next().unwrap_or_default();
            bail!(
                "unknown database kind {scheme:?}; write sqlite:PATH or \
                 postgresql://user@host/dbname"
            );
        };
        Ok(SqlGrant { database, queries })
    }

    /// Runs query `name`; the result may hold at most `max_bytes` of values.
    pub async fn query(
        &self,
        name: &str,
        params: Vec<Value>,
        max_bytes: usize,
    ) -> Result<Vec<Vec<Value>>, QueryError> {
        let Some(sql) = self.queries.get(name) else {
            return Err(QueryError::UnknownQuery(format!(
                "no query named {name:?} was granted"
            )));
        };
        let run = async {
            match &self.database {
                Database::Sqlite { conn, .. } => {
                    let (conn, sql) = (conn.clone(), sql.clone());
                    tokio::task::spawn_blocking(move || sqlite_query(&conn, &sql, &params))
                        .await
                        .map_err(|e| QueryError::Unavailable(e.to_string()))?
                }
                Database::Postgres(pool) => pool.query(sql, &params).await,
            }
        };
        let rows = tokio::time::timeout(QUERY_TIMEOUT, run)
            .await
            .map_err(|_| QueryError::Unavailable("the query timed out".into()))??;
        let size: usize = rows.iter().flatten().map(Value::size).sum();
        if size > max_bytes {
            return Err(QueryError::Unavailable(format!(
                "the result ({size} bytes) is over the plugin's output limit"
            )));
        }
        Ok(rows)
    }
}

impl PostgresPool {
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, QueryError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        let mut slot = self
            .slots
            .iter()
            .find_map(|s| s.try_lock().ok())
            .expect("a permit always finds a free slot");
        let result = postgres_query(&self.dsn, &mut slot, sql, params).await;
        if matches!(result, Err(QueryError::Unavailable(_))) {
            // Reconnect (and prepare again) on the next call.
            *slot = None;
        }
        // The slot goes before the permit, which keeps a permit's promise.
        drop(slot);
        result
    }
}

fn sqlite_query(
    conn: &Mutex<rusqlite::Connection>,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Vec<Value>>, QueryError> {
    use rusqlite::types::{ToSqlOutput, Value as Sv, ValueRef};
    let unavailable = |e: rusqlite::Error| QueryError::Unavailable(e.to_string());
    let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    if stmt.parameter_count() != params.len() {
        return Err(QueryError::BadParameters(format!(
            "the query takes {} parameters, {} given",
            stmt.parameter_count(),
            params.len()
        )));
    }
    let bound: Vec<ToSqlOutput<'_>> = params
        .iter()
        .map(|v| {
            ToSqlOutput::Owned(match v {
                Value::Null => Sv::Null,
                Value::Integer(i) => Sv::Integer(*i),
                Value::Real(r) => Sv::Real(*r),
                Value::Text(t) => Sv::Text(t.clone()),
                Value::Blob(b) => Sv::Blob(b.clone()),
            })
        })
        .collect();
    let columns = stmt.column_count();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(bound))
        .map_err(unavailable)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(unavailable)? {
        if out.len() == MAX_ROWS {
            break;
        }
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i).map_err(unavailable)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    Ok(out)
}

async fn connect_postgres(dsn: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

async fn postgres_query(
    dsn: &str,
    slot: &mut Option<Postgres>,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Vec<Value>>, QueryError> {
    let unavailable = |e: tokio_postgres::Error| QueryError::Unavailable(e.to_string());
    if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
        let client = connect_postgres(dsn)
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        *slot = Some(Postgres {
            client,
            statements: BTreeMap::new(),
        });
    }
    let conn = slot.as_mut().expect("connected above");
    let stmt = match conn.statements.get(sql) {
        Some(stmt) => stmt.clone(),
        None => {
            let stmt = conn.client.prepare(sql).await.map_err(unavailable)?;
            conn.statements.insert(sql.to_owned(), stmt.clone());
            stmt
        }
    };
    let client = &conn.client;
    if stmt.params().len() != params.len() {
        return Err(QueryError::BadParameters(format!(
            "the query takes {} parameters, {} given",
            stmt.params().len(),
            params.len()
        )));
    }
    let bound = stmt
        .params()
        .iter()
        .zip(params)
        .map(|(ty, v)| postgres_param(ty, v))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&(dyn ToSql + Sync)> = bound
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&stmt, &refs).await.map_err(unavailable)?;
    rows.iter()
        .take(MAX_ROWS)
        .map(|row| {
            (0..row.len())
                .map(|i| postgres_column(row, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect()
}

fn postgres_param(ty: &Type, value: &Value) -> Result<Box<dyn ToSql + Sync + Send>, QueryError> {
    let bad =
        || QueryError::BadParameters(format!("{value:?} does not fit a parameter of type {ty}"));
    Ok(match (value, ty) {
        (Value::Null, _) => Box::new(Option::<String>::None),
        (Value::Text(t), _)
            if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) =>
        {
            Box::new(t.clone())
        }
        (Value::Integer(i), &Type::INT8) => Box::new(*i),
        (Value::Integer(i), &Type::INT4) => Box::new(i32::try_from(*i).map_err(|_| bad())?),
        (Value::Integer(i), &Type::INT2) => Box::new(i16::try_from(*i).map_err(|_| bad())?),
        (Value::Integer(i), &Type::BOOL) => Box::new(*i != 0),
        (Value::Real(r), &Type::FLOAT8) => Box::new(*r),
        (Value::Blob(b), &Type::BYTEA) => Box::new(b.clone()),
        _ => return Err(bad()),
    })
}

fn postgres_column(row: &tokio_postgres::Row, i: usize) -> Result<Value, QueryError> {
    let ty = row.columns()[i].type_().clone();
    let fail = |e: tokio_postgres::Error| QueryError::Unavailable(e.to_string());
    Ok(match ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(i)
            .map_err(fail)?
            .map_or(Value::Null, Value::Text),
        Type::INT8 => opt(
            row.try_get::<_, Option<i64>>(i).map_err(fail)?,
            Value::Integer,
        ),
        Type::INT4 => opt(row.try_get::<_, Option<i32>>(i).map_err(fail)?, |n| {
            Value::Integer(n.into())
        }),
        Type::INT2 => opt(row.try_get::<_, Option<i16>>(i).map_err(fail)?, |n| {
            Value::Integer(n.into())
        }),
        Type::BOOL => opt(row.try_get::<_, Option<bool>>(i).map_err(fail)?, |b| {
            Value::Integer(b.into())
        }),
        Type::FLOAT8 => opt(row.try_get::<_, Option<f64>>(i).map_err(fail)?, Value::Real),
        Type::FLOAT4 => opt(row.try_get::<_, Option<f32>>(i).map_err(fail)?, |r| {
            Value::Real(r.into())
        }),
        Type::BYTEA => opt(
            row.try_get::<_, Option<Vec<u8>>>(i).map_err(fail)?,
            Value::Blob,
        ),
        other => {
            return Err(QueryError::Unavailable(format!(
                "column {} has type {other}, which is not supported; cast it to text",
                row.columns()[i].name()
            )));
        }
    })
}

fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_named_queries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE users (username TEXT, password TEXT, age INTEGER, pic BLOB);
                 INSERT INTO users VALUES ('alice', 'wonderland', 30, x'0102');
                 INSERT INTO users VALUES ('bob', NULL, NULL, NULL);",
            )
            .unwrap();
        }
        let queries = BTreeMap::from([
            (
                DEFAULT_QUERY_NAME.to_owned(),
                DEFAULT_SQLITE_QUERY.to_owned(),
            ),
            (
                "all".to_owned(),
                "SELECT username, age, pic FROM users ORDER BY username".to_owned(),
            ),
        ]);
        let grant = SqlGrant::open(&format!("sqlite:{}", path.display()), queries, None)
            .await
            .unwrap();
        let text = |s: &str| Value::Text(s.into());
        assert_eq!(
            grant.query("credentials", vec![text("alice")], 1000).await,
            Ok(vec![vec![text("alice"), text("wonderland")]])
        );
        assert_eq!(
            grant.query("credentials", vec![text("carol")], 1000).await,
            Ok(vec![])
        );
        assert_eq!(
            grant.query("all", vec![], 1000).await,
            Ok(vec![
                vec![text("alice"), Value::Integer(30), Value::Blob(vec![1, 2])],
                vec![text("bob"), Value::Null, Value::Null],
            ])
        );
        assert!(matches!(
            grant.query("drop", vec![], 1000).await,
            Err(QueryError::UnknownQuery(_))
        ));
        assert!(matches!(
            grant.query("credentials", vec![], 1000).await,
            Err(QueryError::BadParameters(_))
        ));
        assert!(matches!(
            grant.query("all", vec![], 5).await,
            Err(QueryError::Unavailable(_))
        ));
        // Read-only: a granted query cannot write.
        let writer = BTreeMap::from([("w".to_owned(), "DELETE FROM users".to_owned())]);
        let grant = SqlGrant::open(&format!("sqlite:{}", path.display()), writer, None)
            .await
            .unwrap();
        assert!(matches!(
            grant.query("w", vec![], 1000).await,
            Err(QueryError::Unavailable(_))
        ));
        assert!(
            SqlGrant::open("sqlite:/nonexistent.db", BTreeMap::new(), None)
                .await
                .is_err()
        );
        assert!(
            SqlGrant::open("mysql://x", BTreeMap::new(), None)
                .await
                .is_err()
        );
    }
}
