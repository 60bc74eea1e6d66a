//! The host side of the imports every plugin sees (`host`), those a
//! mechanism sees during an exchange (`session`) and those a checker may
//! use (`sql`, `keyed-file`, `password-hash`).

use super::bindings::checker::portcullis::auth::{keyed_file, password_hash, sql};
use super::bindings::mechanism::portcullis::auth::{host, session, types};
use super::bindings::realm::portcullis::auth::relay;
use super::convert;
use super::state::PluginState;
use crate::portal::Denial;

/// Lines one instance may log before the host drops the rest.
const LOG_BUDGET: u32 = 64;
/// Longest log message kept, in bytes.
const LOG_LINE_MAX: usize = 512;

impl types::Host for PluginState {}

impl host::Host for PluginState {
    async fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.config.to_string())
    }

    async fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        self.logged += 1;
        if self.logged > LOG_BUDGET {
            if self.logged == LOG_BUDGET + 1 {
                tracing::warn!(plugin = %self.name, "plugin logs too much; dropping its further lines");
            }
            return Ok(());
        }
        let message = sanitize(&message);
        let plugin = &*self.name;
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            types::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin, "{message}"),
            types::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            types::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

/// Keeps a guest's log line to one printable line of bounded length.
fn sanitize(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > LOG_LINE_MAX {
        let mut cut = LOG_LINE_MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

impl session::Host for PluginState {
    async fn server_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.session_ctx()?.channel.server_name.clone())
    }

    async fn secure(&mut self) -> wasmtime::Result<bool> {
        Ok(self.session_ctx()?.channel.secure)
    }

    async fn external_identity(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.session_ctx()?.channel.external_identity.clone())
    }

    async fn lookup_secret(
        &mut self,
        username: String,
        kind: types::CredentialKind,
    ) -> wasmtime::Result<Result<types::StoredSecret, session::LookupError>> {
        let kind = convert::kind_from_wit(kind);
        let session = self.session_mut()?;
        if !session.may_lookup || !session.declared.contains(&kind) {
            tracing::debug!(plugin = %self.name, %kind,
                "lookup-secret refused: not allowed for this mechanism or kind");
            return Ok(Err(session::LookupError::Unsupported));
        }
        if session.lookups_left == 0 {
            tracing::warn!(plugin = %self.name, "lookup-secret refused: too many in one exchange");
            return Ok(Err(session::LookupError::Unavailable(
                "too many secret lookups in one exchange".into(),
            )));
        }
        session.lookups_left -= 1;
        let source = session.source.clone();
        match source.lookup_secret(&username, kind).await {
            Ok(Ok(entry)) => {
                let secret = convert::secret_to_wit(&entry.secret);
                self.session_mut()?
                    .secrets
                    .push((username, kind, entry.avatar_id));
                Ok(Ok(secret))
            }
            Ok(Err(Denial::NoChecker(_))) => Ok(Err(session::LookupError::Unsupported)),
            Ok(Err(denial)) => Ok(Err(session::LookupError::Denied(convert::denial_to_wit(
                &denial,
            )))),
            Err(fault) => {
                let text = fault.to_string();
                self.session_mut()?.fault = Some(fault);
                Ok(Err(session::LookupError::Unavailable(text)))
            }
        }
    }
}

impl PluginState {
    fn session_ctx(&self) -> wasmtime::Result<&super::state::SessionContext> {
        self.session
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("session import used outside an exchange"))
    }

    fn session_mut(&mut self) -> wasmtime::Result<&mut super::state::SessionContext> {
        self.session
            .as_mut()
            .ok_or_else(|| wasmtime::format_err!("session import used outside an exchange"))
    }
}

impl sql::Host for PluginState {
    async fn query(
        &mut self,
        name: String,
        params: Vec<sql::Value>,
    ) -> wasmtime::Result<Result<Vec<Vec<sql::Value>>, sql::QueryError>> {
        let Some(grant) = self.sql.clone() else {
            return Ok(Err(sql::QueryError::UnknownQuery(
                "this plugin was granted no SQL queries".into(),
            )));
        };
        let params = params
            .into_iter()
            .map(convert::sql_value_from_wit)
            .collect();
        let answer = grant.query(&name, params, self.max_output).await;
        if let Err(e) = &answer {
            tracing::debug!(plugin = %self.name, query = %name, "query failed: {e}");
        }
        Ok(answer
            .map(|rows| {
                rows.into_iter()
                    .map(|row| row.into_iter().map(convert::sql_value_to_wit).collect())
                    .collect()
            })
            .map_err(convert::sql_error_to_wit))
    }
}

/// The `relay` import: each call runs under the guest call's own
/// deadline (a step that would outlast it gives up first, so the realm
/// can still answer with a temporary failure).
impl relay::Host for PluginState {
    async fn mail(
        &mut self,
        hop: String,
        sender: String,
    ) -> wasmtime::Result<Result<relay::Reply, relay::RelayError>> {
        let limit = self.deadline;
        let Some(session) = self.relay.as_mut() else {
            return Ok(Err(no_relay_grant()));
        };
        let answer = session.mail(&hop, &sender, limit).await;
        Ok(answer.map(reply_to_wit).map_err(relay_error_to_wit))
    }

    async fn rcpt(
        &mut self,
        recipient: String,
    ) -> wasmtime::Result<Result<relay::Reply, relay::RelayError>> {
        let limit = self.deadline;
        let Some(session) = self.relay.as_mut() else {
            return Ok(Err(no_relay_grant()));
        };
        let answer = session.rcpt(&recipient, limit).await;
        Ok(answer.map(reply_to_wit).map_err(relay_error_to_wit))
    }

    async fn data(
        &mut self,
        message: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<relay::Reply>, relay::RelayError>> {
        let limit = self.deadline;
        let Some(session) = self.relay.as_mut() else {
            return Ok(Err(no_relay_grant()));
        };
        let answer = session.data(&message, limit).await;
        Ok(answer
            .map(|replies| replies.into_iter().map(reply_to_wit).collect())
            .map_err(relay_error_to_wit))
    }
}

fn no_relay_grant() -> relay::RelayError {
    relay::RelayError::UnknownHop("this plugin was granted no next hop".into())
}

fn reply_to_wit(reply: crate::relay::Reply) -> relay::Reply {
    relay::Reply {
        code: reply.code,
        text: reply.text,
    }
}

fn relay_error_to_wit(e: crate::relay::RelayError) -> relay::RelayError {
    use crate::relay::RelayError as E;
    match e {
        E::UnknownHop(t) => relay::RelayError::UnknownHop(t),
        E::Unavailable(t) => relay::RelayError::Unavailable(t),
        E::NoTransaction => relay::RelayError::NoTransaction,
    }
}

impl keyed_file::Host for PluginState {
    async fn lookup(
        &mut self,
        path: String,
        format: keyed_file::LineFormat,
        key: String,
    ) -> wasmtime::Result<Result<keyed_file::Entry, keyed_file::FileError>> {
        let answer = self
            .files
            .lookup(&path, convert::line_format_from_wit(format), &key)
            .await;
        if let Err(e) = &answer {
            tracing::debug!(plugin = %self.name, file = %crate::logtext::escape(&path),
                "keyed-file lookup failed: {e}");
        }
        Ok(answer
            .map(convert::entry_to_wit)
            .map_err(convert::file_error_to_wit))
    }
}

/// The `password-hash` import: a slow hash verified natively when its
/// cost is within the host's caps and the store has not used its share
/// (see `crate::password_hash`); otherwise the guest is told why and
/// verifies it itself.
impl password_hash::Host for PluginState {
    async fn verify(
        &mut self,
        password: String,
        stored: String,
    ) -> wasmtime::Result<Result<bool, password_hash::HashError>> {
        use crate::password_hash::Verifier;
        use password_hash::HashError;
        // Every call counts, declined or not, so a guest that calls in a
        // loop costs the host two answers and then nothing (no metrics,
        // no log line) until its call ends.
        if self.hashes_left == 0 {
            return Ok(Err(HashError::Exhausted));
        }
        self.hashes_left -= 1;
        if let Err(why) = self.hash_caps.admit(&stored, password.len()) {
            crate::metrics::METRICS.password_hash(why.outcome());
            tracing::debug!(plugin = %self.name, "password-hash declined: {why}");
            return Ok(Err(convert::declined_to_wit(why)));
        }
        let answer = Verifier::global().verify(password, stored).await;
        crate::metrics::METRICS.password_hash(match &answer {
            Ok(_) => "verified",
            Err(why) => why.outcome(),
        });
        Ok(answer.map_err(convert::declined_to_wit))
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn sanitize_folds_control_characters_and_bounds_length() {
        assert_eq!(sanitize("a\nb\r\tc"), "a b  c");
        let long = "é".repeat(1000);
        let out = sanitize(&long);
        assert!(out.len() <= super::LOG_LINE_MAX + '…'.len_utf8());
        assert!(out.ends_with('…'));
    }
}
