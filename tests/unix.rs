//! The Unix checker: passwd/shadow pairs through the host's plugin API and
//! through `--auth unix` on the echo service, and the sandbox keeping it
//! inside its grant.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::{LOGIN_DENIED, LOGIN_OK, Server};
use portcullis::plugin::{Grant, PluginSpec, Runtime, RuntimeConfig, WasmChecker};
use portcullis::portal::{Credentials, Denial, FaultKind, Portal, Verdict};
use serde_json::{Value, json};

// Python's crypt.crypt(PASSWORD, SALT) over libxcrypt.
const ANN_YESCRYPT: &str =
    "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$xzg3OEQ6gXjbRIaRkGgMQOvYycVge1ztSr3GUoaBii3";
const BEN_BCRYPT: &str = "$2b$04$benbenbenbenbenbenbenuRVywfAh/ILEMFEdLFUJ2YnwA6hPT7XW";
const CID_SHA512: &str = "$6$cidsalt$.J2Wfa0rgwoBPBl.hpxGu7ROD6ZEj/AED0QRvrKwVMVoGCf5vA9PvtTS1blG0AHyd/het.3zvCxsptOBID3S6/";
const DEE_SHA256: &str = "$5$deesalt$EPDX09pdCBf0Kj/5LX.XEA9KCWeGLymJN9AkzonLlD6";

/// A passwd and a shadow file in a fresh folder.
fn accounts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let passwd = [
        "root:x:0:0:root:/root:/bin/sh".to_owned(),
        "ann:x:1000:1000:Ann:/home/ann:/bin/sh".to_owned(),
        "ben:x:1001:1001::/home/ben:/bin/sh".to_owned(),
        format!("cid:{CID_SHA512}:1002:1002::/home/cid:/bin/sh"),
        "dee:x:1003:1003::/home/dee:/bin/sh".to_owned(),
        "eve:x:1004:1004::/home/eve:/bin/sh".to_owned(),
        "fay:x:1005:1005::/home/fay:/bin/sh".to_owned(),
        "gus:x:1006:1006::/home/gus:/bin/sh".to_owned(),
    ]
    .join("\n");
    let shadow = [
        "root:*:19000:0:99999:7:::".to_owned(),
        format!("ann:{ANN_YESCRYPT}:19000:0:99999:7:::"),
        format!("ben:{BEN_BCRYPT}:19000:0:99999:7:::"),
        format!("dee:{DEE_SHA256}:19000:0:99999:7:::"),
        format!("eve:!{DEE_SHA256}:19000:0:99999:7:::"),
        // Expired on 2001-09-09.
        format!("fay:{DEE_SHA256}:19000:0:99999:7::11574:"),
        "gus::19000:0:99999:7:::".to_owned(),
    ]
    .join("\n");
    std::fs::write(dir.path().join("passwd"), passwd + "\n").unwrap();
    std::fs::write(dir.path().join("shadow"), shadow + "\n").unwrap();
    dir
}

async fn portal(grant: &Path, config: Value) -> Portal {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let mut spec = PluginSpec::from_file(&common::guest_wasm("checker-unix")).unwrap();
    spec.grants.push(Grant {
        host_path: grant.to_path_buf(),
        guest_path: "/grant".into(),
        writable: false,
    });
    spec.config = config.to_string();
    let mut portal = Portal::default();
    portal
        .register_checker(Arc::new(WasmChecker(runtime.load(spec).await.unwrap())))
        .await
        .unwrap();
    portal
}

async fn check(portal: &Portal, user: &str, password: &str) -> Verdict<Option<String>> {
    portal
        .check(&Credentials::UsernamePassword {
            authzid: None,
            username: user.into(),
            password: password.into(),
        })
        .await
}

#[tokio::test]
async fn accounts_through_the_plugin_api() {
    let dir = accounts();
    let portal = portal(dir.path(), json!({})).await;
    let ok = |u: &str| Ok(Some(u.to_owned()));
    let cases = [
        ("ann", "ann-pass", ok("ann")),
        ("ann", "ann-pasS", Err(Denial::BadCredentials)),
        ("ben", "ben-pass", ok("ben")),
        ("ben", "ben", Err(Denial::BadCredentials)),
        ("cid", "cid-pass", ok("cid")),
        ("dee", "dee-pass", ok("dee")),
        ("eve", "dee-pass", Err(Denial::AccountDisabled)),
        ("fay", "dee-pass", Err(Denial::AccountDisabled)),
        ("fay", "wrong", Err(Denial::BadCredentials)),
        ("gus", "", Err(Denial::BadCredentials)),
        ("root", "", Err(Denial::AccountDisabled)),
        ("zed", "ann-pass", Err(Denial::UnknownUser)),
        ("Ann", "ann-pass", Err(Denial::UnknownUser)),
    ];
    for (user, pass, want) in cases {
        let got = check(&portal, user, pass).await.unwrap();
        assert_eq!(got, want, "{user}/{pass}");
    }
    let not_me = portal
        .check(&Credentials::UsernamePassword {
            authzid: Some("root".into()),
            username: "ann".into(),
            password: "ann-pass".into(),
        })
        .await;
    assert_eq!(not_me.unwrap(), Err(Denial::NotAuthorized));
}

#[tokio::test]
async fn the_checker_cannot_read_outside_its_grant() {
    let dir = accounts();
    // Paths that exist on the host (or would, outside the sandbox) but are
    // not inside the grant.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("shadow"), format!("ann:{DEE_SHA256}:::::::\n")).unwrap();
    let grant = dir.path().join("granted");
    std::fs::create_dir(&grant).unwrap();
    std::fs::copy(dir.path().join("passwd"), grant.join("passwd")).unwrap();
    for shadow in [
        "/etc/shadow",
        "../outside/shadow",
        "/grant/../outside/shadow",
        &outside.join("shadow").display().to_string(),
    ] {
        let portal = portal(&grant, json!({ "shadow": shadow })).await;
        let fault = check(&portal, "ann", "dee-pass").await.expect_err(shadow);
        assert_eq!(fault.kind, FaultKind::Unavailable, "{shadow}");
        assert!(
            fault.detail.starts_with("cannot read shadow file"),
            "{shadow}: {}",
            fault.detail
        );
    }
}

fn login(server: &Server, user: &str, pass: &str) -> String {
    server.connect().ask(&format!("{user} {pass}"))
}

#[test]
fn auth_unix_on_the_echo_service() {
    let dir = accounts();
    let spec = format!(
        "unix:passwd={}:shadow={}",
        dir.path().join("passwd").display(),
        dir.path().join("shadow").display()
    );
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "ann", "ann-pass"), LOGIN_OK);
    assert_eq!(login(&server, "cid", "cid-pass"), LOGIN_OK);
    assert_eq!(login(&server, "ann", "nope"), LOGIN_DENIED);
    assert_eq!(login(&server, "eve", "dee-pass"), LOGIN_DENIED);
    assert_eq!(login(&server, "nobody", "x"), LOGIN_DENIED);
}

#[test]
fn auth_unix_with_the_files_in_two_folders() {
    let dir = accounts();
    let other = tempfile::tempdir().unwrap();
    std::fs::rename(dir.path().join("shadow"), other.path().join("shadow.db")).unwrap();
    let spec = format!(
        "unix:passwd={}:shadow={}",
        dir.path().join("passwd").display(),
        other.path().join("shadow.db").display()
    );
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "ben", "ben-pass"), LOGIN_OK);
    assert_eq!(login(&server, "ben", "nope"), LOGIN_DENIED);
}

#[test]
fn auth_unix_with_a_missing_file_is_refused_at_start() {
    let dir = accounts();
    let spec = format!(
        "unix:passwd={}:shadow=/nonexistent/shadow",
        dir.path().join("passwd").display()
    );
    let err = Server::try_start(&["--auth", &spec]).unwrap_err();
    assert_eq!(err.code, Some(1));
    assert!(
        err.stderr
            .contains("--auth unix:shadow=/nonexistent/shadow: no such file"),
        "{}",
        err.stderr
    );
}

#[test]
fn auth_unix_follows_edits_to_passwd_and_shadow() {
    let dir = accounts();
    let (passwd, shadow) = (dir.path().join("passwd"), dir.path().join("shadow"));
    let spec = format!(
        "unix:passwd={}:shadow={}",
        passwd.display(),
        shadow.display()
    );
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "dee", "dee-pass"), LOGIN_OK);
    // vipw's way: a new file renamed over the old one. Dee is locked.
    let text = std::fs::read_to_string(&shadow).unwrap();
    let locked = text.replace(&format!("dee:{DEE_SHA256}"), &format!("dee:!{DEE_SHA256}"));
    std::fs::write(dir.path().join("shadow.new"), locked).unwrap();
    std::fs::rename(dir.path().join("shadow.new"), &shadow).unwrap();
    assert_eq!(login(&server, "dee", "dee-pass"), LOGIN_DENIED);
    // A new account, edited in place.
    let mut lines = std::fs::read_to_string(&passwd).unwrap();
    lines.push_str(&format!("hal:{CID_SHA512}:1007:1007:::\n"));
    std::fs::write(&passwd, lines).unwrap();
    assert_eq!(login(&server, "hal", "cid-pass"), LOGIN_OK);
    // A shadow that cannot be read fails those whose hash is in it,
    // temporarily.
    std::fs::remove_file(&shadow).unwrap();
    std::fs::create_dir(&shadow).unwrap();
    assert_eq!(login(&server, "ann", "ann-pass"), common::TEMPORARY);
    server.wait_for_log("cannot read shadow file");
    assert_eq!(login(&server, "hal", "cid-pass"), LOGIN_OK);
}
