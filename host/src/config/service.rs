//! `[log]`, `[metrics]` and `[service]`: what running as a service needs.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::cli::LogFormat;
use crate::plan::{LogPlan, ServicePlan, Setting};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LogTable {
    format: Option<Spanned<LogFormatValue>>,
    filter: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LogFormatValue {
    Human,
    Json,
}

impl LogTable {
    pub(super) fn plan(&self, src: &Source, plan: &mut LogPlan) {
        if let Some(f) = &self.format {
            let format = match f.get_ref() {
                LogFormatValue::Human => LogFormat::Human,
                LogFormatValue::Json => LogFormat::Json,
            };
            plan.format
                .offer(Some(format), || src.origin(f.span().start, "[log] format"));
        }
        if let Some(f) = &self.filter {
            plan.filter.offer(Some(f.get_ref().clone()), || {
                src.origin(f.span().start, "[log] filter")
            });
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct MetricsTable {
    listen: Option<Spanned<String>>,
}

impl MetricsTable {
    pub(super) fn plan(
        &self,
        src: &Source,
        plan: &mut Setting<Option<SocketAddr>>,
    ) -> Result<(), ConfigError> {
        if let Some(a) = &self.listen {
            let address = src.at(a, |a| {
                a.parse::<SocketAddr>().map_err(|_| {
                    format!("\"{a}\" is not an address; write e.g. \"127.0.0.1:9100\"")
                })
            })?;
            plan.offer(Some(Some(address)), || {
                src.origin(a.span().start, "[metrics] listen")
            });
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ServiceTable {
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    control_socket: Option<Spanned<PathBuf>>,
    shutdown_grace: Option<Spanned<String>>,
}

impl ServiceTable {
    pub(super) fn plan(&self, src: &Source, plan: &mut ServicePlan) -> Result<(), ConfigError> {
        for (setting, value, key) in [
            (&mut plan.user, &self.user, "[service] user"),
            (&mut plan.group, &self.group, "[service] group"),
        ] {
            if let Some(v) = value {
                setting.offer(Some(Some(v.get_ref().clone())), || {
                    src.origin(v.span().start, key)
                });
            }
        }
        if let Some(p) = &self.control_socket {
            plan.control_socket
                .offer(Some(Some(src.relative(p.get_ref()))), || {
                    src.origin(p.span().start, "[service] control-socket")
                });
        }
        if let Some(d) = &self.shutdown_grace {
            plan.shutdown_grace.offer(Some(src.duration(d)?), || {
                src.origin(d.span().start, "[service] shutdown-grace")
            });
        }
        Ok(())
    }
}
