//! The command line: flags, and the strcred-style `--auth` specifications.

pub mod auth;
pub mod conformance;
pub mod inspect;
pub mod password;
pub mod plugin_arg;
pub mod plugin_options;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
use clap::{Parser, ValueEnum};

use crate::smtp::{BareNewline, TlsOnly};

pub use auth::AuthSpec;
pub use plugin_arg::{GrantArg, PluginArg, RealmArg};
pub use plugin_options::{LimitArgs, PluginOptions};

/// The user a default run creates, printed at start-up.
pub const DEFAULT_USER: (&str, &str) = ("guest", "password");

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An authentication host: every credential decision is made by sandboxed \
             WebAssembly plugins.",
    after_help = "With no --auth, portcullis serves the user guest with the password \
                  'password' from memory.\nSee --help-auth for the auth types.",
    // A flag given twice means its last value, as in most daemons.
    args_override_self = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// Read settings from this TOML file (see examples/portcullis.toml);
    /// flags given on the command line override it.
    #[arg(long, short = 'c', value_name = "FILE", env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address of the authenticating echo service.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub echo_listen: SocketAddr,

    /// Address of the SMTP service (STARTTLS offered).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2525")]
    pub smtp_listen: SocketAddr,

    /// Address of an SMTP listener with implicit TLS (RFC 8314, the
    /// submissions port's style). Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub smtps_listen: Option<SocketAddr>,

    /// Address of a Dovecot auth protocol listener (TCP), for Postfix's
    /// `smtpd_sasl_path = inet:ADDR` or Exim's dovecot authenticator.
    /// Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub dovecot_listen: Option<SocketAddr>,

    /// A UNIX socket for the Dovecot auth protocol (e.g. Postfix's
    /// `private/auth`), mode 0660; owner and group from the file. Off
    /// unless given.
    #[arg(long, value_name = "PATH")]
    pub dovecot_socket: Option<PathBuf>,

    /// Peers the Dovecot auth protocol's TCP listener serves,
    /// comma-separated ADDR/PREFIX.
    #[arg(long, value_name = "NETS", default_value = "127.0.0.0/8,::1", value_parser = parse_networks)]
    pub dovecot_trusted: Networks,

    /// Dovecot auth protocol connections at once (Postfix holds one per
    /// smtpd process).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub dovecot_max_connections: u32,

    /// TLS certificate chain (PEM). Without --tls-cert and --tls-key a
    /// self-signed certificate is generated at start-up.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The TLS certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Ask TLS clients for a certificate issued by these CAs (PEM); a
    /// verified one's subject CN (or e-mail) is the SASL EXTERNAL identity.
    /// Clients without a certificate are still served.
    #[arg(long, value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,

    /// Where to write the generated self-signed certificate, for clients
    /// to trust (default: a file in the temporary folder, printed at
    /// start-up).
    #[arg(long, value_name = "PATH", conflicts_with = "tls_cert")]
    pub tls_cert_out: Option<PathBuf>,

    /// Refuse MAIL, RCPT and DATA before a successful AUTH (530 5.7.0).
    #[arg(long)]
    pub auth_required: bool,

    /// When plaintext mechanisms (PLAIN, LOGIN) need TLS first: auto means
    /// yes except for clients on loopback.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = tls_only())]
    pub auth_tls_only: TlsOnly,

    /// Pause before answering a failed AUTH (e.g. 1s, 250ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub auth_failure_delay: Duration,

    /// Per-address penalty: the first failed login from an address is
    /// answered after this pause, each further one after twice the last
    /// (Dovecot's auth penalty); 0s turns it off.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub auth_penalty: Duration,

    /// The longest per-address penalty.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub auth_penalty_cap: Duration,

    /// Networks exempt from the penalty, comma-separated ADDR/PREFIX, or
    /// `none`.
    #[arg(long, value_name = "NETS", default_value = "127.0.0.0/8,::1", value_parser = parse_networks)]
    pub auth_penalty_trusted: Networks,

    /// Share the penalty's failure counts with the other nodes of a fleet
    /// in this Redis/Valkey server (e.g. redis://127.0.0.1:6379/0); when it
    /// is down, each node counts alone until it answers again.
    #[arg(long, value_name = "URL")]
    pub auth_penalty_store: Option<String>,

    /// Failed AUTHs allowed per SMTP connection before 421 and close.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_auth_failures: u32,

    /// Largest message accepted, in bytes (advertised with SIZE).
    #[arg(long, value_name = "BYTES", default_value_t = 10 << 20)]
    pub max_message_size: usize,

    /// Concurrent sessions, all listeners together; more are told to try
    /// later.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_sessions: u32,

    /// Serve Prometheus metrics at http://ADDR/metrics. Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Close a session that sends nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// The longest an SMTP session may last, however busy (then 421 4.4.2).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub session_timeout: Duration,

    /// What a bare CR or LF (not part of CRLF) in SMTP input does:
    /// normalize keeps it in the message as CRLF (only CRLF.CRLF ends
    /// DATA), reject refuses the message with 550 5.6.0. A command holding
    /// one is refused either way (500 5.5.2).
    #[arg(long, value_name = "POLICY", default_value = "normalize", value_parser = bare_newline())]
    pub bare_newline: BareNewline,

    /// On SIGTERM or Ctrl-C, wait this long for sessions to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

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

    /// Deliver SMTP mail into Maildirs under this folder (one per
    /// recipient's local part), with the built-in maildir realm granted
    /// this folder read-write. Replaces the console realm.
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<PathBuf>,

    /// Do not offer this SASL mechanism; repeatable.
    #[arg(long = "exclude-mechanism", value_name = "NAME")]
    pub exclude_mechanisms: Vec<String>,

    /// The server's host name, used in greetings and challenges.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub server_name: String,

    /// Cache compiled plugins here (default: $XDG_CACHE_HOME/portcullis or
    /// ~/.cache/portcullis), so restarts skip compilation.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile every plugin at start, with no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,

    /// Mechanism instances alive at once: SASL exchanges in flight, all
    /// clients together. An exchange that finds none free waits up to its
    /// plugin's call time, then fails 454.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_exchanges: u32,

    /// Checker instances alive at once (each lives for one check or
    /// secret lookup).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_checks: u32,

    /// Realm avatar instances alive at once, one per logged-in session
    /// [default: --max-sessions, so every session can hold one].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_avatars: Option<u32>,

    /// `lookup-secret` calls one SASL exchange may make (SCRAM makes one).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_lookups: u32,

    /// How long a SASL exchange may wait for the client's next response;
    /// then it is cancelled (SMTP 501) and its instance freed.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    pub auth_step_timeout: Duration,

    /// Concurrent connections from one client address (IPv6: one /64),
    /// all listeners together; more get 421 4.7.0. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_connections_per_address: u32,

    /// SASL exchanges in flight from one client address (IPv6: one /64);
    /// more get 421 4.7.0. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_exchanges_per_address: u32,

    /// Networks exempt from the per-address limits, comma-separated
    /// ADDR/PREFIX, or `none` (e.g. a proxy or an MTA you run).
    #[arg(long, value_name = "NETS", default_value = "none", value_parser = parse_networks)]
    pub client_limit_exempt: Networks,

    /// Every listener requires a PROXY protocol header (v1 or v2, as
    /// HAProxy's send-proxy-v2 sends) from --proxy-trusted-networks; the
    /// client it names is the client everywhere.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// The load balancers a PROXY header is accepted from, comma-separated
    /// ADDR/PREFIX; anyone else is closed.
    #[arg(long, value_name = "NETS", default_value = "none", value_parser = parse_networks)]
    pub proxy_trusted_networks: Networks,

    /// Linear memory each plugin may use (e.g. 64M; default 96M); a
    /// plugin's own memory=SIZE wins.
    #[arg(long, value_name = "SIZE", value_parser = plugin_options::parse_memory)]
    pub plugin_memory: Option<usize>,

    /// Time each call into a plugin may take (e.g. 500ms; default 2s); a
    /// plugin's own call-time=DURATION wins.
    #[arg(long, value_name = "DURATION", value_parser = plugin_options::parse_call_time)]
    pub plugin_call_time: Option<Duration>,

    /// Time a realm's deliver may take to store one message (e.g. 1m;
    /// default 30s), apart from --plugin-call-time; a realm's own
    /// deliver-time=DURATION wins.
    #[arg(long, value_name = "DURATION", value_parser = plugin_options::parse_deliver_time)]
    pub plugin_deliver_time: Option<Duration>,

    /// Largest challenge, credentials or reply accepted from a plugin
    /// (e.g. 16K; default 64K); a plugin's own max-output=SIZE wins.
    #[arg(long, value_name = "SIZE", value_parser = plugin_options::parse_max_output)]
    pub plugin_max_output: Option<usize>,

    /// WASI resources (open files, streams) each plugin instance may hold
    /// at once (8-4096; default 64); a plugin's own max-resources=N wins.
    #[arg(long, value_name = "N", value_parser = plugin_options::parse_max_resources)]
    pub plugin_max_resources: Option<usize>,

    /// The wasm stack each call into a plugin may use (e.g. 1M; default
    /// 512K). wasmtime sets it for the whole engine, so it applies to every
    /// plugin; a guest that recurses past it traps (454).
    #[arg(long, value_name = "SIZE", value_parser = plugin_options::parse_wasm_stack)]
    pub plugin_wasm_stack: Option<usize>,

    /// Let checkers have slow password hashes (Argon2, bcrypt, SHA-crypt)
    /// verified natively by the host, within caps read off each hash
    /// (`password-hash` import; default yes). `no` keeps every hash parser
    /// inside the sandbox, at 1.4 to 2.9 times the CPU.
    #[arg(long, value_name = "yes|no", default_value = "yes", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub plugin_native_hashes: bool,

    /// After binding the listeners, switch to this user (by name or uid);
    /// needs root. Plugins are loaded and the TLS files read before.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// After binding, switch to this group (default: the --user's group).
    #[arg(long, value_name = "GROUP", requires = "user")]
    pub group: Option<String>,

    /// Listen for `portcullis reload` on this Unix socket (mode 0600).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,

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

/// Tools that run instead of the server.
// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Print a password entry for the file and SQL checkers (the password
    /// is read from standard input, or prompted for twice).
    Password(password::PasswordArgs),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Check a configuration file (or --config's) and every plugin, TLS file
    /// and database it names, without listening or writing anything; exit 1
    /// on any error in it (2 for a wrong command line).
    CheckConfig(CheckConfigArgs),
    /// Ask a running server to reload its configuration and plugins, through
    /// its --control-socket.
    Reload(ReloadArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The file to check (default: the one --config names).
    pub file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    /// The server's control socket.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
}

// Parsed once per run: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Show which world and WIT version a plugin implements, what it
    /// provides (mechanism name, credential kinds, avatar interfaces) and
    /// what it may need granted; refuse a file the server would refuse.
    Inspect(inspect::InspectArgs),
    /// Drive a plugin through its contract's rules (the conformance kit):
    /// one line per rule, and a failing exit status if any rule fails.
    Test(conformance::TestArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// `--auth-tls-only`: the protocol layer's type, parsed here so that it
/// needs no clap.
fn tls_only() -> impl clap::builder::TypedValueParser<Value = TlsOnly> {
    PossibleValuesParser::new([
        PossibleValue::new("auto").help("Over TLS only, except for clients on loopback"),
        PossibleValue::new("yes").help("Always over TLS only"),
        PossibleValue::new("no").help("Allowed in the clear"),
    ])
    .map(|word| word.parse::<TlsOnly>().expect("a possible value"))
}

/// `--bare-newline`.
fn bare_newline() -> impl clap::builder::TypedValueParser<Value = BareNewline> {
    PossibleValuesParser::new([
        PossibleValue::new("normalize")
            .help("Keep the message; each bare CR or LF is stored as CRLF"),
        PossibleValue::new("reject").help("Refuse a message or command containing one"),
    ])
    .map(|word| word.parse::<BareNewline>().expect("a possible value"))
}

/// A list of networks (a newtype so clap takes the whole list as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Networks(pub Vec<crate::penalty::Network>);

fn parse_networks(text: &str) -> Result<Networks, String> {
    if text.trim() == "none" {
        return Ok(Networks(Vec::new()));
    }
    text.split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .map(Networks)
}

/// `250ms`, `2s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 250ms, 2s or 5m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?} is not a duration (unknown unit {unit:?}); write e.g. 250ms, \
                 2s, 5m or 1h"
            ));
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// `64M`, `512K`, `1G`, or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size; write e.g. 65536, \"512K\" or \"64M\""))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        other => return Err(format!("unknown size unit \"{other}\"; use K, M or G")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_size};
    use std::time::Duration;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", 250),
            ("2s", 2000),
            ("3", 3000),
            ("1.5s", 1500),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("0", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "2x", "-1s", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("96M"), Ok(96 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in [
            "",
            "M",
            "-1",
            "64X",
            "1.5M",
            "99999999999999999999G",
            "20000000000G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
