//! The plugin arguments shared by `--auth wasm:`, `--mechanism` and
//! `--realm`: a path, folder grants, a digest pin, resource limits and
//! JSON configuration, as `PATH[:OPTION]...[:{JSON}]`.

use std::path::PathBuf;
use std::str::FromStr;

use serde_json::Value;

use super::plugin_options::PluginOptions;

/// The options a plugin argument takes, for error messages.
const OPTIONS: &str = "grant=DIR[@GUESTPATH] (read-only), grant-rw=DIR[@GUESTPATH], \
                       sha256=HEX, memory=SIZE, call-time=DURATION, max-output=SIZE, \
                       max-resources=N, lookup-secrets or defer-avatar";

/// `grant=DIR[@GUESTPATH]` or `grant-rw=DIR[@GUESTPATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantArg {
    pub host_path: PathBuf,
    pub guest_path: String,
    pub writable: bool,
}

impl FromStr for GrantArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let (writable, spec) = if let Some(s) = arg.strip_prefix("grant=") {
            (false, s)
        } else if let Some(s) = arg.strip_prefix("grant-rw=") {
            (true, s)
        } else {
            return Err(format!(
                "'{arg}' is not a plugin option; write {OPTIONS}, then :{{JSON}} for \
                 configuration"
            ));
        };
        let (host, guest) = spec.split_once('@').unwrap_or((spec, "/grant"));
        if host.is_empty() || !guest.starts_with('/') {
            return Err(format!(
                "grant '{arg}': the folder must not be empty and the guest path must be absolute"
            ));
        }
        Ok(GrantArg {
            host_path: PathBuf::from(host),
            guest_path: guest.to_owned(),
            writable,
        })
    }
}

/// Splits `HEAD[:{JSON}]` at the first `:{`; the JSON must be an object.
fn split_config(args: &str) -> Result<(&str, Value), String> {
    let Some(at) = args.find(":{") else {
        return Ok((args, Value::Object(Default::default())));
    };
    let json = &args[at + 1..];
    let value: Value = serde_json::from_str(json)
        .map_err(|e| format!("plugin configuration is not valid JSON ({e}): {json}"))?;
    if !value.is_object() {
        return Err("plugin configuration must be a JSON object".into());
    }
    Ok((&args[..at], value))
}

/// `--mechanism PATH[:grant=...][:sha256=HEX][:memory=SIZE]...[:{JSON}]`
#[derive(Clone, Debug, PartialEq)]
pub struct PluginArg {
    pub path: PathBuf,
    pub grants: Vec<GrantArg>,
    /// Its pin and its own limits.
    pub options: PluginOptions,
    pub config: Value,
}

impl FromStr for PluginArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let (head, config) = split_config(arg)?;
        let mut parts = head.split(':');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err("a plugin needs the path of its .wasm file".into());
        }
        let mut plugin = PluginArg {
            path: PathBuf::from(path),
            grants: Vec::new(),
            options: PluginOptions::default(),
            config,
        };
        for part in parts.filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match key {
                "grant" | "grant-rw" => plugin.grants.push(part.parse()?),
                "sha256" if plugin.options.sha256.is_some() => {
                    return Err("a plugin takes one sha256= pin".into());
                }
                "sha256" => plugin.options.sha256 = Some(value.parse()?),
                "lookup-secrets" if value.is_empty() => plugin.options.lookup_secrets = true,
                "defer-avatar" if value.is_empty() => plugin.options.defer_avatar = true,
                _ if plugin.options.limits.set(key, value)? => {}
                _ => {
                    return Err(format!(
                        "'{part}' is not a plugin option; write {OPTIONS}, then :{{JSON}} \
                         for configuration"
                    ));
                }
            }
        }
        Ok(plugin)
    }
}

/// `--realm INTERFACE=PATH[...]`
#[derive(Clone, Debug, PartialEq)]
pub struct RealmArg {
    pub interface: crate::portal::AvatarInterface,
    pub plugin: PluginArg,
}

impl FromStr for RealmArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        use crate::portal::AvatarInterface;
        let Some((interface, rest)) = arg.split_once('=') else {
            return Err("write --realm INTERFACE=PATH, e.g. --realm echo=./my-realm.wasm".into());
        };
        let interface = match interface {
            "echo" => AvatarInterface::Echo,
            "message-delivery" | "smtp" => AvatarInterface::MessageDelivery,
            other => {
                return Err(format!(
                    "unknown avatar interface '{other}'; use echo or message-delivery"
                ));
            }
        };
        let plugin: PluginArg = rest.parse()?;
        if plugin.options.defer_avatar && interface != AvatarInterface::MessageDelivery {
            return Err(
                "defer-avatar goes with --realm message-delivery=…: an echo session needs its \
                 avatar at login"
                    .into(),
            );
        }
        Ok(RealmArg { interface, plugin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Sha256Pin;
    use serde_json::json;

    #[test]
    fn grants() {
        let g: GrantArg = "grant=/srv".parse().unwrap();
        assert_eq!(
            (g.host_path.to_str(), g.guest_path.as_str(), g.writable),
            (Some("/srv"), "/grant", false)
        );
        let g: GrantArg = "grant-rw=/srv@/spool".parse().unwrap();
        assert_eq!((g.guest_path.as_str(), g.writable), ("/spool", true));
        assert!("grant=/srv@rel".parse::<GrantArg>().is_err());
        assert!("grant=".parse::<GrantArg>().is_err());
        assert!("folder=/x".parse::<GrantArg>().is_err());
    }

    #[test]
    fn plugins_and_realms() {
        let p: PluginArg = r#"x.wasm:{"k":1}"#.parse().unwrap();
        assert_eq!(p.config, json!({"k": 1}));
        assert!(r#"x.wasm:[1]"#.parse::<PluginArg>().is_err());
        assert!(r#"x.wasm:{"k":"#.parse::<PluginArg>().is_err());
        let r: RealmArg = "echo=r.wasm".parse().unwrap();
        assert_eq!(r.plugin.path, PathBuf::from("r.wasm"));
        assert!(
            "imap=r.wasm"
                .parse::<RealmArg>()
                .unwrap_err()
                .contains("unknown avatar interface")
        );
        assert!("r.wasm".parse::<RealmArg>().is_err());
    }

    #[test]
    fn sha256_pins() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let p: PluginArg = format!("x.wasm:sha256={hex}:{{}}").parse().unwrap();
        assert_eq!(p.options.sha256, Some(Sha256Pin::of(b"abc")));
        let err = |arg: String| arg.parse::<PluginArg>().unwrap_err();
        assert!(err("x.wasm:sha256=abc".into()).contains("64 hexadecimal digits"));
        assert!(err(format!("x.wasm:sha256={hex}:sha256={hex}")).contains("one sha256"));
    }
}
