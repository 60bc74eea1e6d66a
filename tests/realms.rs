//! Realm plugins through the host's plugin API: the delivery avatar of the
//! console realm (seeds/000) and the echo realm's refusal to deliver mail.

use crate::common;

use std::sync::Arc;

use portcullis::plugin::{PluginSpec, Runtime, RuntimeConfig, WasmRealm};
use portcullis::portal::{AvatarInterface, Denial, Mind, Portal, ReceivedInfo};

async fn portal_with(realm: &str, interface: AvatarInterface) -> Arc<Portal> {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let mut spec = PluginSpec::from_file(&common::guest_wasm(realm)).unwrap();
    spec.stdout = true;
    let plugin = runtime.load(spec).await.unwrap();
    let mut portal = Portal::default();
    portal.register_realm(interface, Arc::new(WasmRealm(plugin)));
    Arc::new(portal)
}

fn mind() -> Mind {
    Mind {
        peer: "127.0.0.1:4000".into(),
        protocol: "smtp",
        mechanism: Some("PLAIN".into()),
        secure: false,
    }
}

#[tokio::test]
async fn console_realm_accepts_only_console_recipients() {
    let portal = portal_with("realm-console", AvatarInterface::MessageDelivery).await;
    let mut avatar = portal
        .request_avatar(Some("guest"), AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(avatar.interface(), AvatarInterface::MessageDelivery);
    assert_eq!(
        avatar
            .validate_from("client", "a@example.com")
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        avatar.validate_to("console@example.com").await.unwrap(),
        Ok(())
    );
    let refused = avatar
        .validate_to("bob@example.com")
        .await
        .unwrap()
        .unwrap_err();
    assert!(refused.permanent);
    assert_eq!(refused.text, "Only mail to console@ is accepted here");
    let info = ReceivedInfo {
        helo: "client".into(),
        peer_ip: "127.0.0.1".into(),
        server_name: "localhost".into(),
        with_protocol: "ESMTPA".into(),
        authenticated_id: Some("guest".into()),
        id: "msg-1".into(),
        sender: "a@example.com".into(),
        recipients: vec!["console@example.com".into()],
        date: "Mon, 23 Nov 2026 00:00:00 +0000".into(),
    };
    assert_eq!(avatar.received_header(&info).await.unwrap(), None);
    let message = b"Subject: hi\r\n\r\nHello, console.\r\n";
    assert_eq!(avatar.deliver(&info, message).await.unwrap(), Ok(()));
    avatar.logout().await;
}

#[tokio::test]
async fn echo_realm_offers_no_delivery_and_console_no_echo() {
    let portal = portal_with("realm-echo", AvatarInterface::MessageDelivery).await;
    let denied = portal
        .request_avatar(Some("guest"), AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap();
    assert_eq!(denied.err(), Some(Denial::Unsupported));

    let portal = portal_with("realm-console", AvatarInterface::Echo).await;
    let denied = portal
        .request_avatar(Some("guest"), AvatarInterface::Echo, &mind())
        .await
        .unwrap();
    assert_eq!(denied.err(), Some(Denial::Unsupported));
}

async fn maildir_portal(spool: &std::path::Path, writable: bool, config: &str) -> Arc<Portal> {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let mut spec = PluginSpec::from_file(&common::guest_wasm("realm-maildir")).unwrap();
    spec.config = config.into();
    spec.grants.push(portcullis::plugin::Grant {
        host_path: spool.to_path_buf(),
        guest_path: "/spool".into(),
        writable,
    });
    let mut portal = Portal::default();
    portal.register_realm(
        AvatarInterface::MessageDelivery,
        Arc::new(WasmRealm(runtime.load(spec).await.unwrap())),
    );
    Arc::new(portal)
}

fn info_for(recipients: &[&str]) -> ReceivedInfo {
    ReceivedInfo {
        helo: "client".into(),
        peer_ip: "127.0.0.1".into(),
        server_name: "localhost".into(),
        with_protocol: "ESMTPA".into(),
        authenticated_id: Some("guest".into()),
        id: "msg-2".into(),
        sender: "a@example.com".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        date: "Mon, 23 Nov 2026 00:00:00 +0000".into(),
    }
}

#[tokio::test]
async fn maildir_realm_delivers_through_tmp_into_new() {
    let spool = tempfile::tempdir().unwrap();
    let config = r#"{"spool": "/spool", "domains": ["example.com"]}"#;
    let portal = maildir_portal(spool.path(), true, config).await;
    let mut avatar = portal
        .request_avatar(Some("guest"), AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        avatar.validate_to("Alice@example.com").await.unwrap(),
        Ok(())
    );
    for refused in ["bob@other.org", "../etc@example.com", ".x@example.com"] {
        let r = avatar.validate_to(refused).await.unwrap().unwrap_err();
        assert!(r.permanent, "{refused}");
    }
    let message = b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n";
    let info = info_for(&["alice@example.com", "bob@example.com", "ALICE@example.com"]);
    assert_eq!(avatar.deliver(&info, message).await.unwrap(), Ok(()));
    for user in ["alice", "bob"] {
        let dir = spool.path().join(user);
        let new: Vec<_> = std::fs::read_dir(dir.join("new")).unwrap().collect();
        assert_eq!(new.len(), 1, "{user}: one copy, duplicates merged");
        let path = new[0].as_ref().unwrap().path();
        assert_eq!(std::fs::read(path).unwrap(), message);
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    }
    avatar.logout().await;

    // With "create": false only existing mailboxes are recipients.
    let portal = maildir_portal(spool.path(), true, r#"{"create": false}"#).await;
    let mut avatar = portal
        .request_avatar(None, AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        avatar.validate_to("bob@anywhere.org").await.unwrap(),
        Ok(())
    );
    assert!(
        avatar
            .validate_to("carol@anywhere.org")
            .await
            .unwrap()
            .is_err()
    );
}

#[tokio::test]
async fn maildir_realm_on_a_read_only_grant_fails_temporarily() {
    let spool = tempfile::tempdir().unwrap();
    let portal = maildir_portal(spool.path(), false, "{}").await;
    let mut avatar = portal
        .request_avatar(Some("guest"), AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap()
        .unwrap();
    let refused = avatar
        .deliver(&info_for(&["guest@localhost"]), b"x\r\n")
        .await
        .unwrap()
        .unwrap_err();
    assert!(!refused.permanent);
    assert!(std::fs::read_dir(spool.path()).unwrap().next().is_none());
}
