//! Realm plugins through the host's plugin API: the delivery avatar of the
//! console realm (seeds/000) and the echo realm's refusal to deliver mail.

mod common;

use std::sync::Arc;

use portcullis::plugin::realm::{AvatarInterface, Mind, ReceivedInfo};
use portcullis::plugin::{PluginSpec, Runtime, RuntimeConfig};
use portcullis::portal::{Denial, Portal};

fn portal_with(realm: &str, interface: AvatarInterface) -> Arc<Portal> {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let mut spec = PluginSpec::from_file(&common::guest_wasm(realm)).unwrap();
    spec.stdout = true;
    let plugin = runtime.load(spec).unwrap();
    let mut portal = Portal::default();
    portal.register_realm(interface, plugin);
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
    let portal = portal_with("realm-console", AvatarInterface::MessageDelivery);
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
    let portal = portal_with("realm-echo", AvatarInterface::MessageDelivery);
    let denied = portal
        .request_avatar(Some("guest"), AvatarInterface::MessageDelivery, &mind())
        .await
        .unwrap();
    assert_eq!(denied.err(), Some(Denial::Unsupported));

    let portal = portal_with("realm-console", AvatarInterface::Echo);
    let denied = portal
        .request_avatar(Some("guest"), AvatarInterface::Echo, &mind())
        .await
        .unwrap();
    assert_eq!(denied.err(), Some(Denial::Unsupported));
}
