//! What an operator says about a plugin beyond its path, grants and
//! configuration: the digest its file must have and the limits it runs
//! under. One representation for the command line (`:sha256=HEX`,
//! `:memory=64M`, `--plugin-memory`) and the configuration file
//! (`sha256 = "…"`, `limits = { memory = "64M" }`, `[plugins] memory`),
//! parsed by the same functions so both accept the same values and give
//! the same range errors.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{parse_duration, parse_size};
use crate::plugin::{Limits, Sha256Pin};

/// One plugin's pin and limits; unset fields keep the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginOptions {
    /// The digest the file must have, checked before it is compiled.
    pub sha256: Option<Sha256Pin>,
    /// Its own limits, over the global ones.
    pub limits: LimitArgs,
    /// A mechanism the operator lets call `lookup-secret`
    /// (`:lookup-secrets`, `lookup-secrets = true`).
    pub lookup_secrets: bool,
    /// A realm the operator says gives every identity an avatar, so SMTP
    /// asks for it at MAIL FROM rather than at AUTH (`:defer-avatar`,
    /// `defer-avatar = true`).
    pub defer_avatar: bool,
}

/// Resource limits an operator sets, for one plugin (`memory=64M`,
/// `call-time=500ms`, `max-output=16K`) or for every plugin
/// (`--plugin-memory`, `--plugin-call-time`, `--plugin-max-output`, or the
/// file's `[plugins]`). `None` keeps what lies beneath: a plugin's own
/// setting wins over the global one, which wins over [`Limits::default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitArgs {
    /// Linear memory, bytes.
    pub memory: Option<usize>,
    /// Wall-clock time per call into the guest.
    pub call_time: Option<Duration>,
    /// Wall-clock time for a realm's `deliver`.
    pub deliver_time: Option<Duration>,
    /// Largest answer accepted from the guest, bytes.
    pub max_output: Option<usize>,
    /// WASI resources one instance may hold.
    pub max_resources: Option<usize>,
}

impl LimitArgs {
    /// Sets one limit from its textual form (`memory`, `64M`). Returns
    /// `Ok(false)` if `key` is not a limit.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "memory" => self.memory = Some(parse_memory(value)?),
            "call-time" => self.call_time = Some(parse_call_time(value)?),
            "deliver-time" => self.deliver_time = Some(parse_deliver_time(value)?),
            "max-output" => self.max_output = Some(parse_max_output(value)?),
            "max-resources" => self.max_resources = Some(parse_max_resources(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// These overrides on top of `base`.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            memory: self.memory.unwrap_or(base.memory),
            call_time: self.call_time.unwrap_or(base.call_time),
            deliver_time: self.deliver_time.unwrap_or(base.deliver_time),
            max_output: self.max_output.unwrap_or(base.max_output),
            max_resources: self.max_resources.unwrap_or(base.max_resources),
            ..base
        }
    }
}

/// A plugin's linear memory: 1M to 512M (the pooling allocator's ceiling).
pub fn parse_memory(text: &str) -> Result<usize, String> {
    size_within(
        "memory",
        text,
        Limits::MIN_MEMORY..=Limits::MAX_MEMORY,
        "from 1M to 512M, e.g. 64M",
    )
}

/// The largest answer a plugin may give: 256 bytes to 16M.
pub fn parse_max_output(text: &str) -> Result<usize, String> {
    size_within(
        "max-output",
        text,
        Limits::MIN_OUTPUT..=Limits::MAX_OUTPUT,
        "from 256 to 16M, e.g. 64K",
    )
}

/// WASI resources one plugin instance may hold: 8 to 4096.
pub fn parse_max_resources(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (Limits::MIN_RESOURCES..=Limits::MAX_RESOURCES).contains(n))
        .ok_or_else(|| {
            format!("max-resources {text} is out of range; write a number from 8 to 4096, e.g. 64")
        })
}

/// The wasm stack of every plugin call: 64K to 8M.
pub fn parse_wasm_stack(text: &str) -> Result<usize, String> {
    size_within(
        "wasm-stack",
        text,
        Limits::MIN_WASM_STACK..=Limits::MAX_WASM_STACK,
        "from 64K to 8M, e.g. 1M",
    )
}

/// A plugin's time per call: 10ms to 5m.
pub fn parse_call_time(text: &str) -> Result<Duration, String> {
    let time = parse_duration(text).map_err(|e| format!("call-time: {e}"))?;
    if !(Limits::MIN_CALL_TIME..=Limits::MAX_CALL_TIME).contains(&time) {
        return Err(format!(
            "call-time {text} is out of range; write a duration from 10ms to 5m, e.g. 500ms"
        ));
    }
    Ok(time)
}

/// A realm's time for one `deliver`: 10ms to 5m.
pub fn parse_deliver_time(text: &str) -> Result<Duration, String> {
    let time = parse_duration(text).map_err(|e| format!("deliver-time: {e}"))?;
    if !(Limits::MIN_CALL_TIME..=Limits::MAX_CALL_TIME).contains(&time) {
        return Err(format!(
            "deliver-time {text} is out of range; write a duration from 10ms to 5m, e.g. 30s"
        ));
    }
    Ok(time)
}

fn size_within(
    what: &str,
    text: &str,
    range: RangeInclusive<usize>,
    write: &str,
) -> Result<usize, String> {
    let bytes = parse_size(text).map_err(|e| format!("{what}: {e}"))?;
    usize::try_from(bytes)
        .ok()
        .filter(|b| range.contains(b))
        .ok_or_else(|| format!("{what} {text} is out of range; write a size {write}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::PluginArg;

    #[test]
    fn limits_in_plugin_arguments() {
        let p: PluginArg =
            "x.wasm:memory=64M:call-time=500ms:deliver-time=1m:max-output=16K:grant=/srv"
                .parse()
                .unwrap();
        assert_eq!(
            p.options.limits,
            LimitArgs {
                memory: Some(64 << 20),
                call_time: Some(Duration::from_millis(500)),
                deliver_time: Some(Duration::from_secs(60)),
                max_output: Some(16 << 10),
                max_resources: None,
            }
        );
        assert!(
            parse_deliver_time("1ms")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            parse_deliver_time("6m")
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(p.grants.len(), 1);
        let limits = p.options.limits.apply(Limits::default());
        assert_eq!(limits.memory, 64 << 20);
        assert_eq!(limits.table_elements, Limits::default().table_elements);
    }

    #[test]
    fn unset_limits_keep_what_lies_beneath() {
        let global = LimitArgs {
            call_time: Some(Duration::from_secs(1)),
            ..LimitArgs::default()
        };
        let p: PluginArg = "x.wasm:memory=8M".parse().unwrap();
        let limits = p.options.limits.apply(global.apply(Limits::default()));
        assert_eq!(
            (limits.memory, limits.call_time, limits.max_output),
            (
                8 << 20,
                Duration::from_secs(1),
                Limits::default().max_output
            )
        );
    }

    #[test]
    fn out_of_range_limits_say_what_to_write() {
        let err = |arg: &str| arg.parse::<PluginArg>().unwrap_err();
        let cases = [
            ("x.wasm:memory=lots", "memory: \"lots\" is not a size"),
            (
                "x.wasm:memory=4G",
                "memory 4G is out of range; write a size from 1M to 512M",
            ),
            ("x.wasm:memory=1K", "out of range"),
            ("x.wasm:call-time=1ms", "from 10ms to 5m"),
            ("x.wasm:call-time=soon", "e.g. 250ms"),
            ("x.wasm:max-output=1G", "from 256 to 16M"),
            ("x.wasm:stack=1M", "not a plugin option"),
        ];
        for (arg, want) in cases {
            let got = err(arg);
            assert!(got.contains(want), "{arg}: got {got:?}, want {want:?}");
        }
        assert!(err("x.wasm:stack=1M").contains("memory=SIZE"));
        assert_eq!(parse_memory("512M"), Ok(Limits::MAX_MEMORY));
        assert_eq!(parse_max_output("256"), Ok(256));
    }
}
