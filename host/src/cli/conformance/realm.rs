//! The realm rules: it serves some avatar interface, and its avatars
//! answer and log out (without delivering anything).

use std::sync::Arc;

use super::{Outcome, RuleResult, fail, faulted, pass, rule};
use crate::plugin::{Plugin, WasmRealm};
use crate::portal::{Avatar, AvatarInterface, Fault, Mind, Realm as _, ReceivedInfo};

pub(super) async fn realm_rules(plugin: &Arc<Plugin>) -> Vec<RuleResult> {
    let realm = WasmRealm(plugin.clone());
    let mut out = Vec::new();
    let mut served = 0;
    for interface in [AvatarInterface::Echo, AvatarInterface::MessageDelivery] {
        let name: &'static str = match interface {
            AvatarInterface::Echo => "echo-avatar",
            AvatarInterface::MessageDelivery => "delivery-avatar",
        };
        let mind = Mind {
            peer: "127.0.0.1:0".into(),
            protocol: match interface {
                AvatarInterface::Echo => "echo",
                AvatarInterface::MessageDelivery => "smtp",
            },
            mechanism: Some("PLAIN".into()),
            secure: true,
        };
        let outcome = match realm
            .request_avatar(Some("conformance"), interface, &mind)
            .await
        {
            Ok(Ok(mut avatar)) => {
                served += 1;
                let used = match interface {
                    AvatarInterface::Echo => avatar
                        .echo_line("hello")
                        .await
                        .map(|r| format!("answered a line with {} line(s)", r.lines.len())),
                    AvatarInterface::MessageDelivery => delivery_calls(&mut avatar).await,
                };
                avatar.logout().await;
                match used {
                    Ok(what) => pass(format!("served; {what}; logged out")),
                    Err(f) => faulted("using the avatar", &f),
                }
            }
            Ok(Err(denial)) => Outcome::Skip(format!("not served ({denial})")),
            Err(f) => faulted("request-avatar", &f),
        };
        out.push(rule(name, outcome));
        let anonymous = match realm.request_avatar(None, interface, &mind).await {
            Ok(Ok(avatar)) => {
                avatar.logout().await;
                pass("an avatar")
            }
            Ok(Err(denial)) => pass(format!("denied ({denial})")),
            Err(f) => faulted("request-avatar(none)", &f),
        };
        out.push(rule(
            match interface {
                AvatarInterface::Echo => "anonymous-echo",
                AvatarInterface::MessageDelivery => "anonymous-delivery",
            },
            anonymous,
        ));
    }
    out.push(rule(
        "serves-something",
        if served > 0 {
            pass(format!("{served} avatar interface(s)"))
        } else {
            fail("serves neither echo nor message-delivery")
        },
    ));
    out
}

/// Everything a delivery avatar answers short of delivering (which would
/// have effects: a printed or stored message).
async fn delivery_calls(avatar: &mut Box<dyn Avatar>) -> Result<String, Fault> {
    let from = avatar
        .validate_from("client.conformance.invalid", "sender@conformance.invalid")
        .await?;
    let to = avatar
        .validate_to("conformance@conformance.invalid")
        .await?;
    let info = ReceivedInfo {
        helo: "client.conformance.invalid".into(),
        peer_ip: "127.0.0.1".into(),
        server_name: "conformance.invalid".into(),
        with_protocol: "ESMTPSA".into(),
        authenticated_id: Some("conformance".into()),
        id: "conformance".into(),
        sender: "sender@conformance.invalid".into(),
        recipients: vec!["conformance@conformance.invalid".into()],
        date: "Thu, 1 Jan 2026 00:00:00 +0000".into(),
    };
    avatar.received_header(&info).await?;
    Ok(format!(
        "validate-from {}, validate-to {}, received-header answered (deliver not called)",
        if from.is_ok() { "ok" } else { "refused" },
        if to.is_ok() { "ok" } else { "refused" },
    ))
}
