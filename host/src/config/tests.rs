//! The file's sections, read into a plan: values, paths relative to the
//! file, and errors that name the line and the fix.

use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _};

use super::{ConfigError, ListenerTls, parse};
use crate::cli::{Args, AuthSpec, PluginArg, PluginOptions};
use crate::plan::ServerPlan;
use crate::portal::CredentialKind;
use crate::smtp::TlsOnly;

/// The plan of `text` (as /etc/portcullis/p.toml) under the flags `argv`.
pub(crate) fn plan_of(text: &str, argv: &[&str]) -> Result<ServerPlan, ConfigError> {
    let matches = Args::command()
        .try_get_matches_from(std::iter::once("portcullis").chain(argv.iter().copied()))
        .unwrap();
    let args = Args::from_arg_matches(&matches).unwrap();
    let file = parse(Path::new("/etc/portcullis/p.toml"), text.to_owned())?;
    super::plan(&args, &matches, Some(&file))
}

fn error(text: &str) -> String {
    plan_of(text, &[]).unwrap_err().to_string()
}

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../../examples/portcullis.toml");
    let plan = plan_of(text, &[]).unwrap();
    assert!(plan.listeners.len() >= 2);
    assert!(!plan.checkers.is_empty() && !plan.default_checkers());
}

#[test]
fn sections_become_settings() {
    let text = r#"
server-name = "mail.example.com"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:2587"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:2465"
tls = "implicit"
[[listener]]
protocol = "echo"
address = "127.0.0.1:8001"
[auth]
required = true
tls-only = false
failure-delay = "250ms"
[sessions]
max-message-size = "1M"
[[checker]]
type = "memory"
users = { alice = "wonder:land" }
kinds = ["username-password"]
"#;
    let plan = plan_of(text, &[]).unwrap();
    assert_eq!(*plan.server_name, "mail.example.com");
    assert!(*plan.auth.required);
    assert_eq!(*plan.auth.tls_only, TlsOnly::No);
    assert_eq!(*plan.auth.failure_delay, Duration::from_millis(250));
    assert_eq!(*plan.sessions.max_message_size, 1 << 20);
    assert_eq!(plan.listeners.len(), 3);
    assert_eq!(plan.listeners[1].tls, ListenerTls::Implicit);
    let c = &plan.checkers[0];
    assert_eq!(
        c.spec,
        AuthSpec::Memory(vec![("alice".into(), "wonder:land".into())])
    );
    assert_eq!(c.kinds, Some(vec![CredentialKind::UsernamePassword]));
    assert_eq!(c.origin.at().unwrap().line, 19, "the line of [[checker]]");
}

#[test]
fn plugins_relative_to_the_file() {
    let text = r#"
[[checker]]
type = "wasm"
plugin = "plugins/users.wasm"
sha256 = "AB00000000000000000000000000000000000000000000000000000000000000"
grants = [{ dir = "data" }, { dir = "/srv/spool", at = "/spool", writable = true }]
config = { file = "/grant/users.json" }
limits = { memory = "32M", call-time = "500ms" }
[[mechanism]]
plugin = "/opt/x-totp.wasm"
[[realm]]
serves = "message-delivery"
builtin = "maildir"
maildir = "mail"
"#;
    let plan = plan_of(text, &[]).unwrap();
    let c = &plan.checkers[0];
    let AuthSpec::Wasm(PluginArg {
        path,
        grants,
        config,
        options,
    }) = &c.spec
    else {
        panic!("{:?}", c.spec)
    };
    assert_eq!(path, Path::new("/etc/portcullis/plugins/users.wasm"));
    assert_eq!(grants[0].host_path, Path::new("/etc/portcullis/data"));
    assert_eq!(grants[0].guest_path, "/grant");
    assert!(grants[1].writable);
    assert_eq!(config["file"], "/grant/users.json");
    assert_eq!(options, &PluginOptions::default(), "kept in the plan");
    assert_eq!(c.options.limits.memory, Some(32 << 20));
    assert_eq!(c.options.limits.call_time, Some(Duration::from_millis(500)));
    let pin = c.options.sha256.unwrap().to_string();
    assert!(pin.starts_with("ab00"), "{pin}");
    assert_eq!(
        plan.mechanisms[0].plugin.path,
        Path::new("/opt/x-totp.wasm")
    );
    assert_eq!(
        plan.realms.maildir.as_deref(),
        Some(Path::new("/etc/portcullis/mail"))
    );
}

#[test]
fn a_delivery_realm_may_defer_its_avatar() {
    let text = r#"
[[realm]]
serves = "message-delivery"
plugin = "realm.wasm"
defer-avatar = true
"#;
    let plan = plan_of(text, &[]).unwrap();
    assert!(plan.realms.plugins[0].1.plugin.options.defer_avatar);
    let text = "[[realm]]\nserves = \"message-delivery\"\nbuiltin = \"maildir\"\n\
                maildir = \"mail\"\ndefer-avatar = true\n";
    let plan = plan_of(text, &[]).unwrap();
    assert!(plan.realms.builtin("maildir").0.defer_avatar);
    assert!(!plan.realms.builtin("console").0.defer_avatar, "not set");
}

#[test]
fn errors_name_the_line_and_the_fix() {
    let cases = [
        ("[auth]\nrequird = true\n", ":2: unknown field `requird`"),
        (
            "[[listener]]\nprotocol = \"smtp\"\naddress = \"localhost\"\n",
            ":3: \"localhost\" is not an address; write e.g.",
        ),
        (
            "[[listener]]\nprotocol = \"imap\"\naddress = \"127.0.0.1:1\"\n",
            ":2: unknown variant `imap`, expected one of `smtp`, `echo`, `dovecot`",
        ),
        (
            "\n\n[auth]\nfailure-delay = \"1 s\"\n",
            ":4: \"1 s\" is not a duration (unknown unit",
        ),
        (
            "[[checker]]\ntype = \"fiel\"\n",
            ":2: unknown checker type \"fiel\"; write one of memory, file, anonymous, \
             external, sql, unix, token, wasm",
        ),
        (
            "[[checker]]\ntype = \"file\"\nusers = {a = \"b\"}\n",
            ":3: a checker of type \"file\" takes no `users` (it takes path, delimiter, \
             username-field, password-field, case-insensitive, kinds and limits)",
        ),
        (
            "[[checker]]\ntype = \"anonymous\"\n\nallow = []\n",
            ":4: a checker of type \"anonymous\" takes no `allow` (it takes only kinds and limits)",
        ),
        (
            "[[checker]]\nusers = {a = \"b\"}\n",
            ":1: a checker needs type = \"TYPE\": memory, file,",
        ),
        (
            "[[checker]]\ntype = \"memory\"\nusers = {a = \"b\"}\nkinds = [\"scram\"]\n",
            ":4: unknown credential kind \"scram\"",
        ),
        (
            "[[checker]]\ntype = \"wasm\"\nplugin = \"x.wasm\"\nsha256 = \"abc\"\n",
            ":4: sha256 \"abc\" is not a SHA-256 digest; write the 64 hexadecimal digits",
        ),
        (
            "[plugins]\nmemory = \"4G\"\n",
            ":2: memory 4G is out of range; write a size from 1M to 512M",
        ),
        (
            "[plugins]\n\nmemory = 1024\n",
            ":3: memory 1024 is out of range",
        ),
        (
            "[plugins]\nmax-exchanges = 0\n",
            ":2: max-exchanges = 0 is out of range; write 1 to 100000",
        ),
        (
            "[[mechanism]]\nplugin = \"m.wasm\"\nlimits = { call-time = \"1h\" }\n",
            ":3: call-time 1h is out of range; write a duration from 10ms to 5m",
        ),
        (
            "[[checker]]\ntype = \"memory\"\nusers = {a = \"b\"}\nlimits = { max-output = \"1\" }\n",
            ":4: max-output 1 is out of range",
        ),
        (
            "[plugins]\nmemory = \"12Q\"\n",
            ":2: memory: unknown size unit \"Q\"",
        ),
        (
            "[[realm]]\nserves = \"echo\"\nbuiltin = \"maildir\"\n",
            ":3: the built-in realm \"maildir\" serves message-delivery, not echo",
        ),
        (
            "[tls]\ncert = \"c.pem\"\n",
            ":1: [tls] needs both cert and key",
        ),
        (
            "[auth]\ntls-only = \"maybe\"\n",
            ":2: tls-only = \"maybe\": write \"auto\", true or false",
        ),
        (
            "[[realm]]\nserves = \"echo\"\nbuiltin = \"echo\"\ndefer-avatar = true\n",
            ":1: defer-avatar goes with serves = \"message-delivery\"",
        ),
        ("port = 25\n", ":1: unknown field `port`"),
        ("[auth\n", ":1: "),
    ];
    for (text, want) in cases {
        let got = error(text);
        assert!(
            got.starts_with("/etc/portcullis/p.toml") && got.contains(want),
            "{text:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn the_dovecot_service_listens_on_sockets_and_addresses() {
    let text = r#"
[[listener]]
protocol = "dovecot"
path = "run/auth"
mode = "0660"
owner = "postfix"
group = "postfix"
[[listener]]
protocol = "dovecot"
address = "127.0.0.1:12345"
[dovecot]
trusted-networks = ["10.0.0.0/8"]
max-connections = 64
"#;
    let plan = plan_of(text, &[]).unwrap();
    let socket = &plan.dovecot.sockets[0];
    assert_eq!(socket.path, Path::new("/etc/portcullis/run/auth"));
    assert_eq!(socket.mode, 0o660);
    assert_eq!(socket.owner.as_deref(), Some("postfix"));
    assert_eq!(socket.group.as_deref(), Some("postfix"));
    assert_eq!(
        socket.origin.to_string(),
        "/etc/portcullis/p.toml:2: [[listener]]"
    );
    let tcp = &plan.listeners[0];
    assert_eq!(tcp.protocol, crate::plan::Protocol::Dovecot);
    assert_eq!(tcp.address.port(), 12345);
    assert_eq!(*plan.dovecot.max_connections, 64);
    assert!(plan.dovecot.trusted_networks[0].contains("10.1.2.3".parse().unwrap()));
    assert!(!plan.dovecot.trusted_networks[0].contains("127.0.0.1".parse().unwrap()));
    // --dovecot-socket replaces the file's sockets.
    let plan = plan_of(text, &["--dovecot-socket", "/run/a"]).unwrap();
    assert_eq!(plan.dovecot.sockets.len(), 1);
    assert_eq!(plan.dovecot.sockets[0].path, Path::new("/run/a"));
    assert_eq!(
        plan.dovecot.sockets[0].origin.to_string(),
        "--dovecot-socket"
    );
}

#[test]
fn dovecot_listener_errors_name_the_fix() {
    let e = error("[[listener]]\nprotocol = \"smtp\"\npath = \"/run/x\"\n");
    assert!(e.contains(":1: only protocol = \"dovecot\""), "{e}");
    let e = error("[[listener]]\nprotocol = \"dovecot\"\npath = \"/run/x\"\nmode = \"rw\"\n");
    assert!(e.contains("write octal permission bits"), "{e}");
    let e = error("[[listener]]\nprotocol = \"dovecot\"\n");
    assert!(e.contains("needs an address"), "{e}");
    let e = error(
        "[[listener]]\nprotocol = \"dovecot\"\naddress = \"127.0.0.1:1\"\ntls = \"implicit\"\n",
    );
    assert!(e.contains("the dovecot listener has no TLS"), "{e}");
    let e = error("[dovecot]\nmax-connections = 0\n");
    assert!(e.contains("max-connections = 0 is out of range"), "{e}");
}

#[test]
fn the_mta_example_file_is_valid() {
    let text = include_str!("../../../examples/mta/portcullis.toml");
    let plan = plan_of(text, &[]).unwrap();
    assert_eq!(plan.dovecot.sockets.len(), 2);
    assert_eq!(plan.dovecot.sockets[0].owner.as_deref(), Some("postfix"));
    assert!(!plan.default_checkers());
}

#[test]
fn a_file_with_only_a_dovecot_socket_opens_nothing_else() {
    let text = "[[listener]]\nprotocol = \"dovecot\"\npath = \"/run/auth\"\n";
    let plan = plan_of(text, &[]).unwrap();
    assert!(plan.listeners.is_empty(), "{:?}", plan.listeners);
    // A listener flag given on the command line still adds its socket.
    let plan = plan_of(text, &["--smtp-listen", "127.0.0.1:2600"]).unwrap();
    assert_eq!(plan.listeners.len(), 1);
    assert_eq!(plan.listeners[0].address.port(), 2600);
}

#[test]
fn the_relay_example_file_is_valid() {
    let text = include_str!("../../../examples/relay/portcullis.toml");
    let plan = plan_of(text, &[]).unwrap();
    let relay = plan.realms.relay.as_ref().expect("a relay realm");
    assert_eq!(relay.url, "smtp://127.0.0.1:10025");
    assert!(relay.xclient);
    assert!(!relay.allow_anonymous);
    assert_eq!(relay.timeouts.data, std::time::Duration::from_secs(60));
    assert_eq!(plan.dovecot.sockets.len(), 1);
    assert_eq!(plan.listeners.len(), 2);
}

#[test]
fn relay_settings_are_checked() {
    let realm = "[[realm]]\nserves = \"message-delivery\"\nbuiltin = \"relay\"\n";
    let e = error(realm);
    assert!(e.contains("the relay realm needs next-hop"), "{e}");
    let e = error(&format!("{realm}next-hop = \"http://mta:25\"\n"));
    assert!(e.contains("unknown scheme"), "{e}");
    let e = error(&format!(
        "{realm}next-hop = \"smtp://mta:25\"\ntls = \"starttls\"\n"
    ));
    assert!(e.contains("needs tls-ca"), "{e}");
    let e = error(&format!(
        "{realm}next-hop = \"smtp://mta:25\"\ntls-ca = \"/ca.pem\"\n"
    ));
    assert!(e.contains("go with tls = \"starttls\""), "{e}");
    let e = error(&format!(
        "{realm}next-hop = \"smtp://mta:25\"\ndata-timeout = \"0s\"\n"
    ));
    assert!(e.contains("more than 0s"), "{e}");
    let e = error(
        "[[realm]]\nserves = \"message-delivery\"\nbuiltin = \"maildir\"\n\
         maildir = \"/srv/mail\"\nnext-hop = \"smtp://mta:25\"\n",
    );
    assert!(e.contains("go with builtin = \"relay\""), "{e}");
}

#[test]
fn native_hashes_from_the_file_unless_a_flag_says_otherwise() {
    let on = plan_of("", &[]).unwrap();
    assert!(*on.plugins.native_hashes, "on by default");
    let text = "[plugins]\nnative-hashes = false\n";
    let off = plan_of(text, &[]).unwrap();
    assert!(!*off.plugins.native_hashes);
    assert_eq!(
        off.plugins.native_hashes.origin.at().unwrap().line,
        2,
        "the file's line"
    );
    let flag = plan_of(text, &["--plugin-native-hashes", "yes"]).unwrap();
    assert!(*flag.plugins.native_hashes, "a flag wins over the file");
    let off = plan_of("", &["--plugin-native-hashes", "no"]).unwrap();
    assert!(!*off.plugins.native_hashes);
    let e = error("[plugins]\nnative-hashes = \"maybe\"\n");
    assert!(e.contains("p.toml:2") && e.contains("boolean"), "{e}");
}
