//! The penalty store a fleet shares: a Redis or Valkey server, through
//! redis-rs's connection manager (one multiplexed connection per node,
//! reconnected in the background after a failure). Each failure is one
//! Lua script (`INCR` and `PEXPIRE` of the address's key and the user's,
//! atomically); each success one `DEL` of both.
//!
//! Keys: `portcullis:penalty:addr:ADDRESS` and
//! `portcullis:penalty:user:NAME`, each expiring after the quiet spell
//! that forgets it. Both keys of one event go to one server: in a Redis
//! Cluster they would need one hash slot, so run a single primary (with
//! replicas and Sentinel for failover) instead.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Counts, PenaltyStore, STORE_TIMEOUT, StoreError};

const PREFIX: &str = "portcullis:penalty:";

const FAILED: &str = r"
local a = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local u = 0
if KEYS[2] then
  u = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return {a, u}
";

/// Counts in a Redis/Valkey server.
pub struct RedisStore {
    url: String,
    connection: ConnectionManager,
    script: redis::Script,
}

impl RedisStore {
    /// A store at `url` (`redis://HOST:PORT/DB`, or `redis+unix:///PATH`);
    /// connects on first use, so a node starts even while the store is
    /// down. Must be called inside the tokio runtime.
    pub fn new(url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(STORE_TIMEOUT))
            .set_response_timeout(Some(STORE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = client
            .get_connection_manager_lazy(config)
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(RedisStore {
            url: redact(url),
            connection,
            script: redis::Script::new(FAILED),
        })
    }

    /// Whether `url` names a store this build can reach (checked when
    /// planning, before anything runs).
    pub fn check_url(url: &str) -> Result<(), String> {
        let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
            format!("{url:?} is not a Redis URL ({e}); write e.g. \"redis://127.0.0.1:6379/0\"")
        })?;
        match info.addr() {
            redis::ConnectionAddr::Tcp(..) | redis::ConnectionAddr::Unix(_) => Ok(()),
            _ => Err(format!(
                "{url:?}: TLS to the penalty store (rediss://) is not built in; use redis:// on a private network or a UNIX socket"
            )),
        }
    }
}

/// `url` without a password, for the log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

#[async_trait::async_trait]
impl PenaltyStore for RedisStore {
    async fn failed(
        &self,
        address: &str,
        user: Option<&str>,
        forget: Duration,
    ) -> Result<Counts, StoreError> {
        let mut invocation = self.script.key(format!("{PREFIX}addr:{address}"));
        if let Some(user) = user {
            invocation.key(format!("{PREFIX}user:{user}"));
        }
        invocation.arg(u64::try_from(forget.as_millis()).unwrap_or(u64::MAX));
        let mut connection = self.connection.clone();
        let (address, user): (u32, u32) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(Counts { address, user })
    }

    async fn succeeded(&self, address: &str, user: Option<&str>) -> Result<(), StoreError> {
        let mut del = redis::cmd("DEL");
        del.arg(format!("{PREFIX}addr:{address}"));
        if let Some(user) = user {
            del.arg(format!("{PREFIX}user:{user}"));
        }
        let mut connection = self.connection.clone();
        del.query_async::<()>(&mut connection).await.map_err(failed)
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(RedisStore::check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(RedisStore::check_url("redis+unix:///run/redis.sock").is_ok());
        assert!(RedisStore::check_url("http://x").is_err());
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://…@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
    }
}
