//! The Maildir realm through the host's plugin API: messages land in
//! `new/` of every recipient's Maildir inside a writable grant, refused
//! recipients are refused at RCPT time, and a spool it cannot write to is a
//! temporary failure, not a crash.

mod common;

use std::path::Path;
use std::sync::Arc;

use portcullis::plugin::realm::{Avatar, AvatarInterface, Mind, ReceivedInfo};
use portcullis::plugin::{Grant, PluginSpec, Runtime, RuntimeConfig};
use portcullis::portal::{Denial, Portal};
use serde_json::{Value, json};

fn portal(spool: &Path, writable: bool, config: Value) -> Arc<Portal> {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let mut spec = PluginSpec::from_file(&common::guest_wasm("realm-maildir")).unwrap();
    spec.grants.push(Grant {
        host_path: spool.to_path_buf(),
        guest_path: "/spool".into(),
        writable,
    });
    spec.config = config.to_string();
    let mut portal = Portal::default();
    portal.register_realm(
        AvatarInterface::MessageDelivery,
        runtime.load(spec).unwrap(),
    );
    Arc::new(portal)
}

fn mind() -> Mind {
    Mind {
        peer: "127.0.0.1:4000".into(),
        protocol: "smtp",
        mechanism: None,
        secure: false,
    }
}

async fn avatar(portal: &Portal) -> Avatar {
    portal
        .request_avatar(None, AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap()
        .unwrap()
}

fn info(recipients: &[&str]) -> ReceivedInfo {
    ReceivedInfo {
        helo: "client.example".into(),
        peer_ip: "127.0.0.1".into(),
        server_name: "mx.example.com".into(),
        with_protocol: "ESMTP".into(),
        authenticated_id: None,
        id: "msg-1".into(),
        sender: "sender@example.net".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        date: "Mon, 23 Nov 2026 00:00:00 +0000".into(),
    }
}

/// The names in a folder, sorted; empty when it does not exist.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const MESSAGE: &[u8] = b"Received: from client.example by mx.example.com\r\n\
    Subject: hi\r\n\r\nHello, both.\r\n.. a dotted line\r\n";

#[tokio::test]
async fn delivers_into_new_of_every_recipient() {
    let spool = tempfile::tempdir().unwrap();
    let portal = portal(
        spool.path(),
        true,
        json!({"domains": ["example.com"], "hostname": "mx.test"}),
    );
    let mut avatar = avatar(&portal).await;
    assert_eq!(
        avatar
            .validate_from("client.example", "sender@example.net")
            .await
            .unwrap(),
        Ok(())
    );
    for rcpt in ["alice@example.com", "Bob@EXAMPLE.com"] {
        assert_eq!(avatar.validate_to(rcpt).await.unwrap(), Ok(()), "{rcpt}");
    }
    let info = info(&["alice@example.com", "Bob@EXAMPLE.com"]);
    assert_eq!(avatar.received_header(&info).await.unwrap(), None);
    assert_eq!(avatar.deliver(&info, MESSAGE).await.unwrap(), Ok(()));
    avatar.logout().await;

    assert_eq!(names(spool.path()), ["alice", "bob"]);
    for user in ["alice", "bob"] {
        let maildir = spool.path().join(user);
        assert_eq!(names(&maildir), ["cur", "new", "tmp"], "{user}");
        assert!(names(&maildir.join("tmp")).is_empty(), "{user}");
        assert!(names(&maildir.join("cur")).is_empty(), "{user}");
        let new = names(&maildir.join("new"));
        assert_eq!(new.len(), 1, "{user}: {new:?}");
        assert!(new[0].ends_with(".mx.test"), "{}", new[0]);
        let bytes = std::fs::read(maildir.join("new").join(&new[0])).unwrap();
        assert_eq!(bytes, MESSAGE, "{user}");
    }
    // A second message gets a different name.
    let mut avatar = self::avatar(&portal).await;
    assert_eq!(
        avatar
            .deliver(&self::info(&["alice@example.com"]), b"second\r\n")
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(names(&spool.path().join("alice/new")).len(), 2);
}

#[tokio::test]
async fn refused_recipients_are_refused_at_rcpt_time() {
    let spool = tempfile::tempdir().unwrap();
    std::fs::create_dir(spool.path().join("carol")).unwrap();
    let portal = portal(
        spool.path(),
        true,
        json!({"domains": ["example.com"], "create": false}),
    );
    let mut avatar = avatar(&portal).await;
    assert_eq!(
        avatar.validate_to("Carol@example.com").await.unwrap(),
        Ok(())
    );
    for (rcpt, says) in [
        ("dave@example.com", "No such mailbox here"),
        (
            "carol@example.org",
            "Mail for that domain is not accepted here",
        ),
        ("../carol@example.com", "Mailbox names here are made of"),
        (".carol@example.com", "Mailbox names here are made of"),
        ("carol", "not an address"),
    ] {
        let refused = avatar.validate_to(rcpt).await.unwrap().unwrap_err();
        assert!(refused.permanent, "{rcpt}");
        assert!(refused.text.contains(says), "{rcpt}: {}", refused.text);
    }
    assert_eq!(
        avatar
            .deliver(&info(&["carol@example.com"]), MESSAGE)
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(names(spool.path()), ["carol"], "no folder for dave");
    assert_eq!(names(&spool.path().join("carol/new")).len(), 1);
}

#[tokio::test]
async fn a_read_only_spool_is_a_temporary_failure() {
    let spool = tempfile::tempdir().unwrap();
    let portal = portal(spool.path(), false, json!({}));
    let mut avatar = avatar(&portal).await;
    assert_eq!(
        avatar.validate_to("alice@anywhere.example").await.unwrap(),
        Ok(())
    );
    let refused = avatar
        .deliver(&info(&["alice@anywhere.example"]), MESSAGE)
        .await
        .expect("a refusal, not a fault")
        .unwrap_err();
    assert!(!refused.permanent);
    assert_eq!(
        refused.text,
        "Cannot store the message now, try again later"
    );
    assert!(names(spool.path()).is_empty());
    // The avatar is still usable after the failure.
    assert_eq!(
        avatar.validate_to("bob@anywhere.example").await.unwrap(),
        Ok(())
    );
    avatar.logout().await;
}

#[tokio::test]
async fn no_echo_avatar_and_bad_configuration_is_a_denial() {
    let spool = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let spec = PluginSpec::from_file(&common::guest_wasm("realm-maildir")).unwrap();
    let mut portal = Portal::default();
    portal.register_realm(AvatarInterface::Echo, runtime.load(spec).unwrap());
    let denied = portal
        .request_avatar(Some("guest"), AvatarInterface::Echo, &mind())
        .await
        .unwrap();
    assert_eq!(denied.err(), Some(Denial::Unsupported));

    let portal = self::portal(spool.path(), true, json!({"domains": []}));
    let denied = portal
        .request_avatar(None, AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap();
    match denied {
        Err(Denial::Other(why)) => assert!(why.contains("domains is empty"), "{why}"),
        other => panic!("expected a denial, got {:?}", other.err()),
    }
}
