//! portcullis-bench: the load generator and harness that measures
//! portcullis against its peers and its own ceiling (see README.md).
//!
//! - [`run`]: `portcullis-bench all`, every measurement in one run.
//! - [`report`]: the Markdown report.
//! - [`smtp`] and [`scram`]: SMTP logins with AUTH PLAIN and SCRAM-SHA-256.
//! - [`echo`]: echo logins and lines, and the bare tokio echo (the ceiling).
//! - [`stats`]: bounded concurrent loads, rates and percentiles.
//! - [`metrics`]: the plugin instantiation and call times portcullis's
//!   metrics page reports, which give the sandbox's cost per exchange.
//! - [`idle`], [`startup`]: memory with idle sessions, start-up time.
//! - [`resources`]: issue 12's figures (idle sessions from many
//!   addresses, logins during a compiling reload and a lookup flood).
//! - [`files`]: logins/s for the last user of a password file and of an
//!   SQLite database at 1k / 100k / 1M users (issue 16).
//! - [`mta`]: logins/s through Postfix with portcullis as its SASL backend
//!   against Postfix with Dovecot's auth.
//! - [`relay`]: messages/s through portcullis's relay realm to Postfix
//!   against Postfix receiving directly.
//! - [`servers`]: building portcullis and starting the servers under test.

mod echo;
mod files;
mod flood;
mod hashes;
mod metrics;
mod mta;
mod postfix;
mod relay;
mod report;
mod resources;
mod run;
mod scram;
mod servers;
mod smtp;
mod startup;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "portcullis-bench",
    about = "Benchmarks for portcullis and its peers"
)]
enum Command {
    /// Build portcullis (under `cargo run`), start every server, run every
    /// measurement, print the Markdown report.
    #[command(alias = "run")]
    All(run::Options),
    /// The resource-model figures against a portcullis binary as it is:
    /// idle sessions, a compiling reload, a lookup flood (see
    /// src/resources.rs).
    Resources(resources::Options),
    /// One user's echo logins (Argon2id, verified by the host) alone and
    /// while other addresses flood wrong passwords for another user (see
    /// src/flood.rs).
    HashFlood(flood::Options),
    /// AUTH PLAIN logins/s for the last user of a password file and of an
    /// SQLite database with the same users, at several sizes, against
    /// the portcullis binary beside this one (see src/files.rs).
    Files(files::Options),
    /// Argon2id, bcrypt and SHA-512-crypt checks: native, in Wasm, and Dovecot.
    Hashes(hashes::Options),
    /// Logins/s through a private Postfix whose SASL backend is portcullis
    /// (Dovecot's auth protocol) against Dovecot 2.3's auth (see
    /// src/mta.rs). Needs root, Postfix and Dovecot (tests/setup.sh).
    Mta(mta::Options),
    /// Messages/s accepted by a private Postfix directly against the same
    /// Postfix behind portcullis's relay realm (see src/relay.rs). Needs
    /// root and Postfix (tests/setup.sh).
    Relay(relay::Options),
    /// Serve the bare tokio line echo (no authentication) until killed.
    BareEcho {
        #[arg(long, default_value = "127.0.0.1:8001")]
        listen: SocketAddr,
    },
    /// SMTP login load against one server.
    Smtp {
        #[arg(long, default_value = "127.0.0.1:2525")]
        addr: SocketAddr,
        /// plain or scram-sha-256.
        #[arg(long, default_value = "plain")]
        mech: String,
        #[arg(long, default_value = "guest")]
        user: String,
        #[arg(long, default_value = "password")]
        pass: String,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long, default_value_t = 40_000)]
        max_count: u64,
        /// The server's metrics page (`--metrics-listen`): also print the
        /// plugin time per login, by kind, from two scrapes around the load.
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// Echo login load against one server.
    EchoLogins {
        #[arg(long, default_value = "127.0.0.1:8000")]
        addr: SocketAddr,
        #[arg(long, default_value = "guest")]
        user: String,
        #[arg(long, default_value = "password")]
        pass: String,
        /// The server is the bare echo: the login line comes back as is.
        #[arg(long)]
        bare: bool,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::All(opts) => {
            if !opts.no_build {
                servers::build_portcullis()?;
            }
            run::run(opts).await
        }
        Command::Resources(opts) => resources::run(opts).await,
        Command::HashFlood(opts) => flood::run(opts).await,
        Command::Mta(opts) => mta::run(opts).await,
        Command::Relay(opts) => relay::run(opts).await,
        Command::Files(opts) => files::run(opts).await,
        Command::Hashes(opts) => hashes::run(opts).await,
        Command::BareEcho { listen } => {
            servers::raise_nofile();
            echo::bare_server(tokio::net::TcpListener::bind(listen).await?).await
        }
        Command::Smtp {
            addr,
            mech,
            user,
            pass,
            clients,
            seconds,
            max_count,
            metrics,
        } => {
            let mech = match mech.as_str() {
                "plain" => smtp::Mech::Plain { user, pass },
                "scram-sha-256" => {
                    smtp::Mech::Scram(Arc::new(scram::ScramClient::new(&user, &pass)))
                }
                other => anyhow::bail!("--mech {other}: plain or scram-sha-256"),
            };
            let bounds = stats::Bounds {
                clients,
                duration: Duration::from_secs_f64(seconds),
                max_count,
            };
            let before = match metrics {
                Some(m) => Some(metrics::scrape(m).await?),
                None => None,
            };
            // One thread, as an independent single-threaded client loads a
            // server; its CPU share says whether the client was the limit.
            let (rate, cpu) = tokio::task::spawn_blocking(move || {
                stats::run_on_one_thread(bounds, move || {
                    let mech = mech.clone();
                    async move { smtp::login(addr, &mech).await }
                })
            })
            .await?;
            println!(
                "{} (load: 1 thread, {:.0} % of one CPU)",
                rate.summary(),
                100.0 * cpu.as_secs_f64() / rate.elapsed.as_secs_f64().max(1e-9)
            );
            if let (Some(m), Some(before)) = (metrics, before) {
                let delta = metrics::scrape(m).await?.since(&before);
                println!("{}", metrics::per_op_line(&delta, rate.ok));
            }
            Ok(())
        }
        Command::EchoLogins {
            addr,
            user,
            pass,
            bare,
            clients,
            seconds,
        } => {
            let bounds = stats::Bounds {
                clients,
                duration: Duration::from_secs_f64(seconds),
                max_count: u64::MAX,
            };
            let (user, pass) = (Arc::new(user), Arc::new(pass));
            let rate = stats::run(bounds, move || {
                let (user, pass) = (user.clone(), pass.clone());
                async move { echo::Echo::login(addr, &user, &pass, bare).await.map(drop) }
            })
            .await;
            println!("{}", rate.summary());
            Ok(())
        }
    }
}
