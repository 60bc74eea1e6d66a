//! Users from a SQL database, as a portcullis checker plugin (the DB-backed
//! checker of seeds/001); what `--auth sql:DSN` loads.
//!
//! The plugin never sees a connection or SQL text: the operator grants it
//! named, parameterised queries, and it can run only those, through the
//! host's `sql` import. It runs the query named in its configuration with
//! one parameter, the user name, and expects rows of
//! `(username, password)` (the stored user name, then the password field)
//! or just `(password)`.
//!
//! Configuration (JSON, defaults shown): `{"query": "credentials"}`.
//!
//! Password fields are those of the file checker (both use the
//! `password-fields` crate): plain text compared in constant time, or Argon2,
//! bcrypt, SHA-512-crypt, SHA-256-crypt recognised by prefix, and
//! Dovecot-style `{SCRAM-SHA-256}` / `{SCRAM-SHA-1}` stored keys, which also
//! answer SCRAM lookups (plain-text fields answer them with derived keys;
//! hashed fields cannot). A NULL
//! password is a disabled account. Several rows for one name: the first
//! wins. An authzid must name the user itself. A database failure or an
//! unusable field makes the answer `unavailable`.

use password_fields::{hash, scram};
use portcullis_sdk::checker::{Checker, SecretAnswer, Verdict};
use portcullis_sdk::sql::{self, QueryError, Value};
use portcullis_sdk::types::{
    CredentialKind, Credentials, Denial, ScramKeys, SecretEntry, StoredSecret,
};
use scram_core::Algorithm;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_query")]
    query: String,
}

fn default_query() -> String {
    "credentials".into()
}

/// One row of the credentials query.
#[derive(Debug, PartialEq)]
struct Entry {
    username: Option<String>,
    password: Option<String>,
}

/// Reads the first row: `(username, password)` or `(password)`.
fn entry_from_rows(rows: &[Vec<Value>]) -> Result<Option<Entry>, String> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let text = |v: &Value| match v {
        Value::Text(t) => Ok(Some(t.clone())),
        Value::Null => Ok(None),
        _ => Err("the credentials query must return text columns".to_owned()),
    };
    match row.as_slice() {
        [password] => Ok(Some(Entry {
            username: None,
            password: text(password)?,
        })),
        [username, password, ..] => Ok(Some(Entry {
            username: text(username)?,
            password: text(password)?,
        })),
        [] => Err("the credentials query returned no columns".into()),
    }
}

/// The verdict for `password` against what the database holds.
fn verify(entry: Option<Entry>, username: &str, authzid: Option<&str>, password: &str) -> Verdict {
    let Some(entry) = entry else {
        hash::burn_via_host(password, None);
        return Verdict::Denied(Denial::UnknownUser);
    };
    let Some(stored) = entry.password else {
        hash::burn_via_host(password, None);
        return Verdict::Denied(Denial::AccountDisabled);
    };
    let name = entry.username.unwrap_or_else(|| username.to_owned());
    match hash::verify_via_host(password, &stored) {
        Err(e) => Verdict::Unavailable(format!("password entry for {name} is unusable: {e}")),
        Ok(false) => Verdict::Denied(Denial::BadCredentials),
        Ok(true) => match authzid {
            Some(z) if z != name && z != username => Verdict::Denied(Denial::NotAuthorized),
            _ => Verdict::Accepted(name),
        },
    }
}

/// Runs the configured query for `username`; the first row's entry.
fn fetch(username: &str) -> Result<Option<Entry>, String> {
    let config: Config = serde_json::from_str(&portcullis_sdk::host::config())
        .map_err(|e| format!("bad configuration: {e}"))?;
    let rows = sql::query(&config.query, &[Value::Text(username.to_owned())]).map_err(|e| {
        let (QueryError::UnknownQuery(t)
        | QueryError::BadParameters(t)
        | QueryError::Unavailable(t)) = e;
        format!("query {}: {t}", config.query)
    })?;
    entry_from_rows(&rows)
}

/// The SCRAM keys an entry provides.
fn secret(entry: Option<Entry>, username: &str, algorithm: Algorithm) -> SecretAnswer {
    let Some(entry) = entry else {
        return SecretAnswer::Denied(Denial::UnknownUser);
    };
    let Some(stored) = entry.password else {
        return SecretAnswer::Denied(Denial::AccountDisabled);
    };
    let name = entry.username.unwrap_or_else(|| username.to_owned());
    match scram::keys_for(&stored, username, algorithm) {
        Ok(keys) => SecretAnswer::Found(SecretEntry {
            avatar_id: name,
            secret: StoredSecret::Scram(ScramKeys {
                salt: keys.salt,
                iterations: keys.iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
            }),
        }),
        Err(scram::NoKeys::Hashed | scram::NoKeys::OtherVariant(_)) => {
            SecretAnswer::Denied(Denial::Other(format!(
                "no {} keys stored for {name}",
                algorithm.mechanism_name()
            )))
        }
        Err(scram::NoKeys::Unusable(e)) => {
            SecretAnswer::Unavailable(format!("SCRAM entry for {name} is unusable: {e}"))
        }
    }
}

struct SqlChecker;

impl Checker for SqlChecker {
    fn kinds() -> Vec<CredentialKind> {
        vec![
            CredentialKind::UsernamePassword,
            CredentialKind::ScramSha1,
            CredentialKind::ScramSha256,
        ]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::UsernamePassword(up) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        match fetch(&up.username) {
            Ok(entry) => verify(entry, &up.username, up.authzid.as_deref(), &up.password),
            Err(e) => Verdict::Unavailable(e),
        }
    }

    fn lookup_secret(username: String, kind: CredentialKind) -> SecretAnswer {
        let algorithm = match kind {
            CredentialKind::ScramSha1 => Algorithm::Sha1,
            CredentialKind::ScramSha256 => Algorithm::Sha256,
            _ => return SecretAnswer::Denied(Denial::Unsupported),
        };
        match fetch(&username) {
            Ok(entry) => secret(entry, &username, algorithm),
            Err(e) => SecretAnswer::Unavailable(e),
        }
    }
}

portcullis_sdk::export_checker!(SqlChecker);

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: Verdict) -> String {
        match v {
            Verdict::Accepted(id) => format!("ok {id}"),
            Verdict::Denied(d) => format!("denied {d:?}"),
            Verdict::Unavailable(t) => format!("unavailable {t}"),
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn rows_and_verdicts() {
        let two = vec![vec![text("Alice"), text("wonderland")]];
        let one = vec![vec![text("wonderland")]];
        let disabled = vec![vec![text("alice"), Value::Null]];
        type Case = (
            Vec<Vec<Value>>,
            Option<&'static str>,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (two.clone(), None, "wonderland", "ok Alice"),
            (two.clone(), None, "nope", "denied Denial::BadCredentials"),
            (two.clone(), Some("Alice"), "wonderland", "ok Alice"),
            (
                two.clone(),
                Some("bob"),
                "wonderland",
                "denied Denial::NotAuthorized",
            ),
            (one, None, "wonderland", "ok alice"),
            (vec![], None, "x", "denied Denial::UnknownUser"),
            (disabled, None, "x", "denied Denial::AccountDisabled"),
        ];
        for (rows, authzid, password, want) in cases {
            let entry = entry_from_rows(&rows).unwrap();
            assert_eq!(show(verify(entry, "alice", authzid, password)), want);
        }
        assert!(entry_from_rows(&[vec![Value::Integer(1), text("x")]]).is_err());
        assert!(entry_from_rows(&[vec![]]).is_err());
    }
}
