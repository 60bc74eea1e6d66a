//! The mechanism rules: a sane `info`, no success on garbage, empty or
//! huge input, the call order enforced, and nothing after a success.

use std::sync::Arc;

use super::{Outcome, RuleResult, fail, faulted, pass, rule};
use crate::plugin::Plugin;
use crate::portal::{ChannelInfo, Credentials, Exchange, Fault, Portal, Step};

/// Bytes no mechanism should take for a valid message: not UTF-8, with
/// NULs and control characters.
const GARBAGE: &[&[u8]] = &[
    b"\xff\xfe\x00\x01garbage\xc0\x80\x00",
    b"\x00\x00\x00\xff",
    b"\x80",
];

/// Messages that might complete some mechanism, to reach a success and
/// check what follows it.
const PLAUSIBLE: &[&[u8]] = &[
    b"\0conformance\0conformance-password",
    b"conformance",
    b"user=conformance\x01auth=Bearer conformance-token\x01\x01",
    b"n,,\x01auth=Bearer conformance-token\x01\x01",
    b"n,,n=conformance,r=conformance-nonce",
    b"conformance 0123456789abcdef0123456789abcdef",
];

/// Rounds a drive goes on answering challenges before giving up.
const MAX_ROUNDS: usize = 8;

/// Where one driven exchange ended.
enum End {
    Success {
        anonymous: bool,
    },
    Failure,
    /// Still challenging after [`MAX_ROUNDS`].
    Running,
    Fault(Fault),
}

fn channel() -> ChannelInfo {
    ChannelInfo {
        server_name: "conformance.invalid".into(),
        secure: true,
        external_identity: None,
        peer: "127.0.0.1:0".into(),
    }
}

/// Starts an exchange with `first` and answers every challenge with
/// `response`, until it ends; returns the exchange unless it faulted.
async fn drive(
    plugin: &Arc<Plugin>,
    first: Option<&[u8]>,
    response: &[u8],
) -> Result<(End, Option<Box<dyn Exchange>>), Fault> {
    let mut exchange: Box<dyn Exchange> = Box::new(
        plugin
            .exchange(Arc::new(Portal::default()), channel(), &[])
            .await?,
    );
    let mut step = exchange.start(first).await;
    for _ in 0..MAX_ROUNDS {
        match step {
            Ok(Step::Challenge(_)) => step = exchange.step(response).await,
            Ok(Step::Success { credentials, .. }) => {
                let anonymous = matches!(credentials, Credentials::Anonymous { .. });
                return Ok((End::Success { anonymous }, Some(exchange)));
            }
            Ok(Step::Failure(_)) => return Ok((End::Failure, Some(exchange))),
            Err(fault) => return Ok((End::Fault(fault), None)),
        }
    }
    Ok((End::Running, Some(exchange)))
}

/// A named drive: the initial response, and the answer to every challenge.
type Input<'a> = (&'a str, Option<&'a [u8]>, &'a [u8]);

/// The rule "hostile input does not succeed", over several inputs.
async fn must_not_succeed(
    plugin: &Arc<Plugin>,
    inputs: &[Input<'_>],
    allow_anonymous: bool,
) -> Outcome {
    for (name, first, response) in inputs {
        match drive(plugin, *first, response).await {
            Err(f) | Ok((End::Fault(f), _)) => return faulted(name, &f),
            Ok((End::Success { anonymous }, _)) if !(anonymous && allow_anonymous) => {
                return fail(format!("{name}: the exchange succeeded"));
            }
            Ok((End::Running, _)) => {
                return fail(format!(
                    "{name}: still challenging after {MAX_ROUNDS} rounds of it"
                ));
            }
            Ok(_) => {}
        }
    }
    pass(format!(
        "{} refused",
        inputs
            .iter()
            .map(|(n, ..)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(super) async fn mechanism_rules(plugin: &Arc<Plugin>) -> Vec<RuleResult> {
    let mut out = Vec::new();
    let info = match plugin.mechanism_info().await {
        Ok(info) if info.kinds.is_empty() => {
            out.push(rule("info", fail("declares no credential kinds")));
            info
        }
        Ok(info) => {
            let kinds: Vec<_> = info.kinds.iter().map(|k| k.as_str()).collect();
            out.push(rule(
                "info",
                pass(format!(
                    "{} is a valid SASL name; produces {}",
                    info.name,
                    kinds.join(", ")
                )),
            ));
            info
        }
        Err(f) => {
            out.push(rule("info", faulted("info()", &f)));
            return out;
        }
    };
    out.push(rule(
        "info-stable",
        match plugin.mechanism_info().await {
            Ok(again) if again == info => pass("the same answer twice"),
            Ok(_) => fail("info() changed between calls"),
            Err(f) => faulted("info()", &f),
        },
    ));

    let garbage: Vec<Input> = GARBAGE
        .iter()
        .map(|g| ("binary garbage", Some(*g), *g))
        .chain(std::iter::once((
            "garbage after no initial response",
            None,
            GARBAGE[0],
        )))
        .collect();
    out.push(rule(
        "garbage-input",
        must_not_succeed(plugin, &garbage, false).await,
    ));

    // ANONYMOUS may succeed on an empty message: it claims nobody.
    out.push(rule(
        "empty-input",
        must_not_succeed(
            plugin,
            &[
                ("an empty initial response", Some(b""), b""),
                ("empty responses", None, b""),
            ],
            true,
        )
        .await,
    ));
    let huge = vec![b'A'; 1 << 20];
    out.push(rule(
        "huge-input",
        must_not_succeed(
            plugin,
            &[
                ("a 1 MiB initial response", Some(&huge), &huge),
                ("1 MiB responses", None, &huge),
            ],
            true,
        )
        .await,
    ));

    out.push(rule("start-twice", start_twice(plugin).await));
    out.push(rule("step-before-start", step_before_start(plugin).await));
    out.push(rule("step-after-failure", step_after_failure(plugin).await));
    out.push(rule("success-is-final", success_is_final(plugin).await));
    out
}

async fn start_twice(plugin: &Arc<Plugin>) -> Outcome {
    let mut exchange = match plugin
        .exchange(Arc::new(Portal::default()), channel(), &[])
        .await
    {
        Ok(e) => e,
        Err(f) => return faulted("instantiating", &f),
    };
    if let Err(f) = exchange.start(None).await {
        return faulted("start(none)", &f);
    }
    match exchange.start(None).await {
        Ok(Step::Failure(_)) => pass("a second start fails"),
        Ok(Step::Success { .. }) => fail("a second start succeeded"),
        Ok(Step::Challenge(_)) => fail("a second start was answered with a challenge"),
        Err(f) => faulted("the second start", &f),
    }
}

async fn step_before_start(plugin: &Arc<Plugin>) -> Outcome {
    let mut exchange = match plugin
        .exchange(Arc::new(Portal::default()), channel(), &[])
        .await
    {
        Ok(e) => e,
        Err(f) => return faulted("instantiating", &f),
    };
    match exchange.step(PLAUSIBLE[0]).await {
        Ok(Step::Failure(_)) => pass("step before start fails"),
        Ok(Step::Success { .. }) => fail("step before start succeeded"),
        Ok(Step::Challenge(_)) => fail("step before start was answered with a challenge"),
        Err(f) => faulted("step before start", &f),
    }
}

async fn step_after_failure(plugin: &Arc<Plugin>) -> Outcome {
    match drive(plugin, Some(GARBAGE[0]), GARBAGE[0]).await {
        Err(f) | Ok((End::Fault(f), _)) => faulted("reaching a failure", &f),
        Ok((End::Failure, Some(mut exchange))) => match exchange.step(PLAUSIBLE[0]).await {
            Ok(Step::Failure(_)) => pass("step after failure fails"),
            Ok(_) => fail("the exchange went on after its failure"),
            Err(f) => faulted("step after failure", &f),
        },
        Ok(_) => Outcome::Skip("garbage did not end in failure (see garbage-input)".into()),
    }
}

/// After a success, `denied`, `step` and `start` must not succeed again.
async fn success_is_final(plugin: &Arc<Plugin>) -> Outcome {
    for message in PLAUSIBLE {
        for first in [Some(*message), None] {
            let Ok((End::Success { .. }, Some(mut exchange))) = drive(plugin, first, message).await
            else {
                continue;
            };
            if let Err(f) = exchange.denied().await {
                return faulted("denied() after success", &f);
            }
            for (what, again) in [
                ("step", exchange.step(message).await),
                ("start", exchange.start(Some(message)).await),
            ] {
                match again {
                    Ok(Step::Failure(_)) => {}
                    Ok(Step::Success { .. }) => {
                        return fail(format!("{what} after success succeeded again"));
                    }
                    Ok(Step::Challenge(_)) => {
                        return fail(format!(
                            "{what} after success was answered with a challenge"
                        ));
                    }
                    Err(f) => return faulted(&format!("{what} after success"), &f),
                }
            }
            return pass("after a success, denied() answers and step and start fail");
        }
    }
    Outcome::Skip(
        "no generic message reached a success; start-twice and step-after-failure cover \
         the ordering rules"
            .into(),
    )
}
