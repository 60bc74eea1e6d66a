//! The sandbox's cost per AUTH PLAIN login, in process: the host's own
//! plugin path (`plugin::Runtime`, the built-in plugins the default run
//! loads, the same pool settings) with no network, no protocol and no
//! other load, on one thread.
//!
//! ```text
//! cargo run --release -p portcullis --example sandbox_cost [LOGINS]
//! ```
//!
//! It prints, in microseconds of wall time per operation:
//!
//! - each plugin's share of one login: the PLAIN exchange (a fresh
//!   mechanism instance, `start`), the check (a fresh checker instance,
//!   `check`); and the avatar (a fresh realm instance, `request-avatar`,
//!   then logout), which the default run's console realm defers to the
//!   session's first MAIL FROM (`defer-avatar`), so that a login costs two
//!   instances and a login that sends mail three;
//! - the floor of one fresh instance: a store, an instantiation, the
//!   smallest call the plugin has, and the store's drop, for the mechanism
//!   and the checker.
//!
//! This is what a login costs in the sandbox when nothing else competes
//! for the CPU: the lower bound of `portcullis_plugin_*_seconds` under load.
//! `portcullis-bench all` builds and runs it and reports its last line
//! (`summary: login µs floor µs`) beside the targets (see `examples/bench`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use portcullis::plugin::realm::WasmRealm;
use portcullis::plugin::{PluginSpec, Runtime, RuntimeConfig, builtin};
use portcullis::portal::{
    AvatarInterface, ChannelInfo, CredentialKind, Credentials, Exchange, Mind, Realm, SecretEntry,
    SecretSource, Step, Verdict,
};

/// PLAIN never looks a secret up; any lookup is a bug here.
struct NoSecrets;

#[async_trait]
impl SecretSource for NoSecrets {
    async fn lookup_secret(&self, _: &str, _: CredentialKind) -> Verdict<SecretEntry> {
        unreachable!("PLAIN looks no secret up")
    }
}

fn spec(name: &str, config: &str) -> PluginSpec {
    let wasm = builtin::get(name).unwrap_or_else(|| panic!("no built-in {name}"));
    let mut spec = PluginSpec::new(name, wasm);
    spec.config = config.into();
    spec
}

/// Runs `op` `n` times and gives the mean wall time of one, in µs.
async fn mean<F, Fut>(n: u32, mut op: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n.min(1000) {
        op().await;
    }
    let started = Instant::now();
    for _ in 0..n {
        op().await;
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    let runtime = Runtime::new(&RuntimeConfig::default())?;
    let mechanism = runtime.load(spec("mech-plain", "{}")).await?;
    let checker = runtime
        .load(spec(
            "checker-memory",
            r#"{"users": {"guest": "password"}, "scram": {}}"#,
        ))
        .await?;
    let realm = WasmRealm(runtime.load(spec("realm-console", "{}")).await?);

    let source: Arc<dyn SecretSource> = Arc::new(NoSecrets);
    let channel = ChannelInfo {
        server_name: "localhost".into(),
        secure: false,
        external_identity: None,
        peer: "127.0.0.1:40000".into(),
    };
    let credentials = Credentials::UsernamePassword {
        authzid: None,
        username: "guest".into(),
        password: "password".into(),
    };
    let mind = Mind {
        peer: channel.peer.clone(),
        protocol: "smtp",
        mechanism: Some("PLAIN".into()),
        secure: false,
    };

    let exchange = mean(n, || async {
        let mut exchange = mechanism
            .exchange(
                source.clone(),
                channel.clone(),
                &[CredentialKind::UsernamePassword],
            )
            .await
            .expect("an exchange");
        let step = exchange.start(Some(b"\0guest\0password")).await;
        assert!(matches!(step, Ok(Step::Success { .. })), "{step:?}");
    })
    .await;
    let check = mean(n, || async {
        let verdict = checker.check(&credentials).await;
        assert!(matches!(verdict, Ok(Ok(_))), "{verdict:?}");
    })
    .await;
    let avatar = mean(n, || async {
        let avatar = realm
            .request_avatar(Some("guest"), AvatarInterface::MessageDelivery, &mind)
            .await
            .expect("no fault")
            .expect("an avatar");
        avatar.logout().await;
    })
    .await;
    let mechanism_floor = mean(n, || async {
        mechanism.mechanism_info().await.expect("info");
    })
    .await;
    let checker_floor = mean(n, || async {
        checker.credential_kinds().await.expect("kinds");
    })
    .await;

    let login = exchange + check;
    println!("sandbox cost per AUTH PLAIN login, in process, 1 thread, {n} logins:");
    println!("  mechanism (mech-plain: instance, start, drop)          {exchange:6.1} µs");
    println!("  checker (checker-memory: instance, check, drop)        {check:6.1} µs");
    println!("  login (the two above)                                  {login:6.1} µs");
    println!("and at the session's first MAIL FROM (the console realm defers its avatar):");
    println!("  realm (realm-console: instance, request-avatar, logout) {avatar:6.1} µs");
    println!(
        "  a login that sends mail (all three)                    {:6.1} µs",
        login + avatar
    );
    println!("floor of one fresh instance (store, instantiation, smallest call, drop):");
    println!("  mech-plain (info)                                      {mechanism_floor:6.1} µs");
    println!("  checker-memory (credential-kinds)                      {checker_floor:6.1} µs");
    // One line for `portcullis-bench all` to read: a login's cost, the
    // floor of one instance, and the instances a login makes.
    println!(
        "summary: login {login:.1} floor {:.1} instances 2",
        (mechanism_floor + checker_floor) / 2.0
    );
    // Let the pool's epoch thread see the runtime go.
    drop(runtime);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
