//! What every plugin may ask of the host (`interface host`): its
//! configuration and the host's log.

use serde::de::DeserializeOwned;

pub use crate::bindings::mechanism::portcullis::auth::host::{config, log};
pub use crate::types::LogLevel;

/// The operator's configuration for this plugin, parsed from its JSON
/// (`{}` when none was given, so a config struct with
/// `#[serde(default)]` fields works without any). The error text is fit
/// for a `failure` or `unavailable` answer: it names what is wrong, never
/// the configuration's values.
pub fn config_as<T: DeserializeOwned>() -> Result<T, String> {
    parse_config(&config())
}

/// [`config_as`] over given text, for unit tests.
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| {
        format!(
            "bad plugin configuration at line {} column {}: {}",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Data => "a field has the wrong name or type",
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof =>
                    "not valid JSON",
                serde_json::error::Category::Io => "unreadable",
            }
        )
    })
}

/// Logs at info level. Messages MUST NOT contain passwords, tokens or SASL
/// responses.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Logs at warn level. Messages MUST NOT contain secrets.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}
