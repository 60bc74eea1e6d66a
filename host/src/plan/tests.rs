//! `plan()` is pure: these run without wasm, sockets or files.

use std::time::Duration;

use super::{Cache, Origin};
use super::{ListenerTls, Protocol};
use crate::cli::AuthSpec;
use crate::config::tests::plan_of;

const FILE: &str = "/etc/portcullis/p.toml";

#[test]
fn a_flag_wins_over_the_file_which_wins_over_the_default() {
    let text = "[auth]\nfailure-delay = \"250ms\"\npenalty = \"3s\"\n";
    let plan = plan_of(text, &["--auth-failure-delay", "2s"]).unwrap();
    let a = &plan.auth;
    assert_eq!(
        (*a.failure_delay, &a.failure_delay.origin),
        (
            Duration::from_secs(2),
            &Origin::Flag("--auth-failure-delay")
        )
    );
    assert_eq!(*a.penalty, Duration::from_secs(3));
    assert_eq!(
        a.penalty.origin.to_string(),
        format!("{FILE}:3: [auth] penalty")
    );
    assert_eq!(*a.penalty_cap, Duration::from_secs(15));
    assert_eq!(a.penalty_cap.origin, Origin::Default("--auth-penalty-cap"));

    // The same without a file: flags and defaults.
    let plan = plan_of("", &["--no-cache"]).unwrap();
    assert_eq!(*plan.plugins.cache, Cache::Off);
    assert_eq!(*plan.server_name, "localhost");
    assert!(plan.server_name.origin.is_default());
}

#[test]
fn list_flags_replace_the_files_lists() {
    let text = r#"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:2587"
[[listener]]
protocol = "echo"
address = "127.0.0.1:8001"
[[checker]]
type = "memory"
users = { a = "b" }
[[mechanism]]
plugin = "m.wasm"
"#;
    let plan = plan_of(
        text,
        &[
            "--echo-listen",
            "127.0.0.1:9",
            "--auth",
            "anonymous",
            "--mechanism",
            "/x.wasm",
        ],
    )
    .unwrap();
    let echo: Vec<_> = plan
        .listeners
        .iter()
        .filter(|l| l.protocol == Protocol::Echo)
        .map(|l| (l.address.to_string(), l.origin.clone()))
        .collect();
    assert_eq!(
        echo,
        [("127.0.0.1:9".to_owned(), Origin::Flag("--echo-listen"))]
    );
    let smtp = plan.listeners.iter().find(|l| l.protocol == Protocol::Smtp);
    assert_eq!(smtp.unwrap().address.port(), 2587, "the file's SMTP stays");
    assert_eq!(plan.checkers.len(), 1);
    assert_eq!(plan.checkers[0].spec, AuthSpec::Anonymous);
    assert_eq!(plan.checkers[0].origin, Origin::Flag("--auth"));
    assert_eq!(plan.mechanisms.len(), 1);
    assert_eq!(plan.mechanisms[0].origin, Origin::Flag("--mechanism"));
}

#[test]
fn without_listeners_or_checkers_the_defaults_serve() {
    let plan = plan_of(
        "server-name = \"x\"\n",
        &["--smtps-listen", "127.0.0.1:465"],
    )
    .unwrap();
    let listeners: Vec<_> = plan
        .listeners
        .iter()
        .map(|l| (l.protocol, l.tls, l.origin.is_flag()))
        .collect();
    assert_eq!(
        listeners,
        [
            (Protocol::Smtp, ListenerTls::Starttls, false),
            (Protocol::Smtp, ListenerTls::Implicit, true),
            (Protocol::Echo, ListenerTls::None, false),
        ]
    );
    assert!(plan.default_checkers());
    assert_eq!(
        plan.checkers[0].spec,
        AuthSpec::Memory(vec![("guest".into(), "password".into())])
    );
}

#[test]
fn origins_name_what_to_change_in_errors() {
    let plan_file = plan_of("[service]\nuser = \"nobody\"\n", &[]).unwrap();
    let user = &plan_file.service.user;
    assert_eq!(
        user.origin.naming("nobody"),
        format!("{FILE}:2: [service] user = \"nobody\"")
    );
    assert_eq!(user.origin.name(), "[service] user");
    let plan_flag = plan_of("[service]\nuser = \"nobody\"\n", &["--user", "mail"]).unwrap();
    let user = &plan_flag.service.user;
    assert_eq!(user.as_deref(), Some("mail"));
    assert_eq!(user.origin.naming("mail"), "--user mail");

    // An error about an entry of the file gets its FILE:LINE in front.
    let plan = plan_of(
        "\n[[checker]]\ntype = \"memory\"\nusers = { a = \"b\" }\n",
        &[],
    )
    .unwrap();
    let e = plan.checkers[0]
        .origin
        .wrap(anyhow::anyhow!("plugin checker-memory: trapped"));
    assert_eq!(
        format!("{e:#}"),
        format!("{FILE}:2: plugin checker-memory: trapped")
    );
}

#[test]
fn a_bad_checker_table_is_refused_with_its_line_and_the_fix() {
    let text = "[auth]\nrequired = true\n\n[[checker]]\ntype = \"sql\"\npath = \"users.db\"\n";
    let e = plan_of(text, &[]).unwrap_err();
    assert_eq!((e.file.to_str(), e.line), (Some(FILE), 6));
    assert_eq!(
        e.message,
        "a checker of type \"sql\" takes no `path` (it takes database, pool, query, kinds and limits)"
    );
    // Refused even when --auth replaces the file's checkers: the file is wrong.
    assert!(plan_of(text, &["--auth", "anonymous"]).is_err());

    let e = plan_of("[[checker]]\ntype = \"file\"\n", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FILE}:1: a file checker needs path = \"PATH\"")
    );
}
