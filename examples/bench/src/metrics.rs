//! Reading portcullis's metrics page (`--metrics-listen`): the plugin
//! instantiation, call and release histograms, summed by plugin kind, so a
//! load's share of each is the difference of two scrapes.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Instantiation, call, or release (the store's drop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Instantiate,
    Call,
    Release,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Instantiate, Phase::Call, Phase::Release];
}

/// Seconds and count of one phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Total {
    pub seconds: f64,
    pub count: f64,
}

/// Totals by plugin kind (`mechanism`, `checker`, `realm`) and phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot(BTreeMap<(String, Phase), Total>);

impl Snapshot {
    pub fn get(&self, kind: &str, phase: Phase) -> Total {
        self.0
            .get(&(kind.to_owned(), phase))
            .copied()
            .unwrap_or_default()
    }

    /// What happened between `before` and this one.
    pub fn since(&self, before: &Snapshot) -> Snapshot {
        let mut out = self.clone();
        for (key, total) in &mut out.0 {
            let b = before.0.get(key).copied().unwrap_or_default();
            total.seconds -= b.seconds;
            total.count -= b.count;
        }
        out
    }
}

/// Sums the `_sum` and `_count` lines of the three plugin histograms by
/// the `kind` label.
pub fn parse(text: &str) -> Snapshot {
    let mut out = Snapshot::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let (phase, is_sum) = match name {
            "portcullis_plugin_instantiate_seconds_sum" => (Phase::Instantiate, true),
            "portcullis_plugin_instantiate_seconds_count" => (Phase::Instantiate, false),
            "portcullis_plugin_call_seconds_sum" => (Phase::Call, true),
            "portcullis_plugin_call_seconds_count" => (Phase::Call, false),
            "portcullis_plugin_release_seconds_sum" => (Phase::Release, true),
            "portcullis_plugin_release_seconds_count" => (Phase::Release, false),
            _ => continue,
        };
        let Some(kind) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("kind=\""))
            .map(|k| k.trim_end_matches(['}', '"']))
        else {
            continue;
        };
        let total = out.0.entry((kind.to_owned(), phase)).or_default();
        if is_sum {
            total.seconds += value;
        } else {
            total.count += value;
        }
    }
    out
}

/// `GET /metrics`, parsed.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Snapshot> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("metrics at {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    if !body.starts_with("HTTP/1.1 200") {
        bail!("metrics at {addr}: {}", body.lines().next().unwrap_or(""));
    }
    Ok(parse(&body))
}

/// `plugin µs per op: instantiate 1.0 + 2.0 + 3.0, calls ..., release
/// ...`: one load's plugin time per successful operation, by kind
/// (mechanism, checker, realm), and the total.
pub fn per_op_line(delta: &Snapshot, ops: u64) -> String {
    let ops = ops.max(1) as f64;
    let kinds = ["mechanism", "checker", "realm"];
    let us = |kind: &str, phase: Phase| delta.get(kind, phase).seconds * 1e6 / ops;
    let row = |phase: Phase| {
        kinds
            .iter()
            .map(|k| format!("{:.1}", us(k, phase)))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let total: f64 = kinds
        .iter()
        .flat_map(|k| Phase::ALL.map(|p| us(k, p)))
        .sum();
    format!(
        "plugin µs per login (mechanism + checker + realm): instantiate {}, calls {}, release {}; total {total:.1}",
        row(Phase::Instantiate),
        row(Phase::Call),
        row(Phase::Release)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_kind_and_subtracts() {
        let before = parse(
            "portcullis_plugin_call_seconds_sum{plugin=\"a\",kind=\"mechanism\"} 0.5\n\
             portcullis_plugin_call_seconds_count{plugin=\"a\",kind=\"mechanism\"} 10\n",
        );
        let after = parse(
            "# HELP portcullis_plugin_call_seconds x\n\
             portcullis_plugin_call_seconds_bucket{plugin=\"a\",kind=\"mechanism\",le=\"+Inf\"} 30\n\
             portcullis_plugin_call_seconds_sum{plugin=\"a\",kind=\"mechanism\"} 1.5\n\
             portcullis_plugin_call_seconds_count{plugin=\"a\",kind=\"mechanism\"} 30\n\
             portcullis_plugin_call_seconds_sum{plugin=\"b\",kind=\"mechanism\"} 1\n\
             portcullis_plugin_call_seconds_count{plugin=\"b\",kind=\"mechanism\"} 5\n\
             portcullis_plugin_instantiate_seconds_sum{plugin=\"c\",kind=\"realm\"} 0.25\n\
             portcullis_plugin_release_seconds_sum{plugin=\"c\",kind=\"realm\"} 0.125\n",
        );
        let d = after.since(&before);
        assert_eq!(
            d.get("mechanism", Phase::Call),
            Total {
                seconds: 2.0,
                count: 25.0
            }
        );
        assert_eq!(d.get("realm", Phase::Instantiate).seconds, 0.25);
        assert_eq!(d.get("realm", Phase::Release).seconds, 0.125);
        assert_eq!(d.get("checker", Phase::Call), Total::default());
    }
}
