//! The command line: flags, and the strcred-style `--auth` specifications.

pub mod auth;
pub mod plugin_arg;

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};

pub use auth::AuthSpec;
pub use plugin_arg::{GrantArg, PluginArg, RealmArg};

/// The user a default run creates, printed at start-up.
pub const DEFAULT_USER: (&str, &str) = ("guest", "password");

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An authentication host: every credential decision is made by sandboxed \
             WebAssembly plugins.",
    after_help = "With no --auth, portcullis serves the user guest with the password \
                  'password' from memory.\nSee --help-auth for the auth types."
)]
pub struct Args {
    /// Address of the authenticating echo service.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub echo_listen: SocketAddr,

    /// A credentials checker, as AuthType[:ArgString]; repeat for several
    /// credential kinds. See --help-auth.
    #[arg(long = "auth", value_name = "TYPE[:ARGS]")]
    pub auth: Vec<AuthSpec>,

    /// List the auth types and their argument formats, then exit.
    #[arg(long)]
    pub help_auth: bool,

    /// Explain one auth type, then exit.
    #[arg(long, value_name = "TYPE")]
    pub help_auth_type: Option<String>,

    /// Load a SASL mechanism plugin: PATH[:grant=DIR]...[:{JSON}]. A plugin
    /// with the name of a built-in replaces it.
    #[arg(long = "mechanism", value_name = "PLUGIN")]
    pub mechanisms: Vec<PluginArg>,

    /// Serve an avatar interface with a realm plugin: INTERFACE=PATH[...],
    /// INTERFACE being echo or message-delivery.
    #[arg(long = "realm", value_name = "INTERFACE=PLUGIN")]
    pub realms: Vec<RealmArg>,

    /// Do not offer this SASL mechanism; repeatable.
    #[arg(long = "exclude-mechanism", value_name = "NAME")]
    pub exclude_mechanisms: Vec<String>,

    /// The server's host name, used in greetings and challenges.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub server_name: String,

    /// Plugin instances alive at once (the pooling allocator's size).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_instances: u32,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. info, portcullis=debug).
    #[arg(
        long,
        value_name = "FILTER",
        env = "PORTCULLIS_LOG",
        default_value = "info"
    )]
    pub log: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}
