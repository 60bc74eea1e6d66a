//! Prometheus metrics: counters and gauges the services update, and an
//! opt-in listener that serves them as text (exposition format 0.0.4) at
//! `GET /metrics`.
//!
//! One process-wide registry: the services record into [`METRICS`]; the
//! labels are few (protocol, mechanism, outcome, plugin, fault kind).
//! Plugin instantiation and guest-call times are recorded on every
//! exchange, so they go into [`PluginTimes`], lock-free histograms each
//! plugin holds, rather than through the registry's lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the authentication latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Upper bounds of the plugin instantiation and call histograms, in
/// seconds: both take microseconds when all is well.
const PHASE_BUCKETS: [f64; 11] = [
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.01, 0.1, 1.0,
];

/// Labels of a counter, in order.
type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A histogram updated with atomics only; `counts` are per bucket (not
/// cumulative), the last one past the largest bound.
#[derive(Default)]
pub struct PhaseHistogram {
    counts: [AtomicU64; PHASE_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl PhaseHistogram {
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = PHASE_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(PHASE_BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &Labels) {
        let mut cumulative = 0;
        for (i, bound) in PHASE_BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let le = render_labels(labels, Some(&bound.to_string()));
            let _ = writeln!(out, "{name}_bucket{le} {cumulative}");
        }
        cumulative += self.counts[PHASE_BUCKETS.len()].load(Ordering::Relaxed);
        let inf = render_labels(labels, Some("+Inf"));
        let plain = render_labels(labels, None);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{inf} {cumulative}");
        let _ = writeln!(out, "{name}_sum{plain} {sum}");
        let _ = writeln!(out, "{name}_count{plain} {cumulative}");
    }
}

/// Where one plugin's time goes: making a fresh store and instance, calls
/// into the guest (including any host imports they make, such as a
/// mechanism's secret lookup, which instantiates a checker in turn), and
/// dropping the store, which resets its memory, tables and stack for the
/// pool.
#[derive(Default)]
pub struct PluginTimes {
    pub instantiate: PhaseHistogram,
    pub call: PhaseHistogram,
    pub release: PhaseHistogram,
}

/// Everything counted.
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<Labels, Histogram>>,
    /// By plugin name and kind; kept across reloads so counts only grow.
    plugin_times: Mutex<BTreeMap<(String, &'static str), Arc<PluginTimes>>>,
    sessions_active: [AtomicI64; 3],
    instances_live: AtomicI64,
    instances_total: AtomicU64,
    pool_waits: AtomicU64,
    pool_timeouts: AtomicU64,
    penalty_store_up: AtomicI64,
}

pub static METRICS: Metrics = Metrics {
    counters: Mutex::new(BTreeMap::new()),
    histograms: Mutex::new(BTreeMap::new()),
    plugin_times: Mutex::new(BTreeMap::new()),
    sessions_active: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
    instances_live: AtomicI64::new(0),
    instances_total: AtomicU64::new(0),
    pool_waits: AtomicU64::new(0),
    pool_timeouts: AtomicU64::new(0),
    penalty_store_up: AtomicI64::new(-1),
};

/// The sessions' label: `echo`, `dovecot`, or `smtp` (with `smtps`).
fn session_label(protocol: &str) -> (&'static str, usize) {
    match protocol {
        "echo" => ("echo", 0),
        "dovecot" => ("dovecot", 2),
        _ => ("smtp", 1),
    }
}

impl Metrics {
    fn count(&self, name: &'static str, labels: Labels) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters.entry((name, labels)).or_default() += 1;
    }

    /// A connection was accepted (`smtp`, `smtps` count as smtp).
    pub fn session_started(&self, protocol: &str) {
        let (label, slot) = session_label(protocol);
        self.count(
            "portcullis_sessions_total",
            vec![("protocol", label.into())],
        );
        self.sessions_active[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_ended(&self, protocol: &str) {
        self.sessions_active[session_label(protocol).1].fetch_sub(1, Ordering::Relaxed);
    }

    /// One authentication outcome: `success`, `denied` or `fault`.
    pub fn auth(&self, protocol: &str, mechanism: &str, outcome: &str, took: Duration) {
        let labels: Labels = vec![
            ("protocol", protocol.into()),
            ("mechanism", mechanism.into()),
            ("outcome", outcome.into()),
        ];
        self.count("portcullis_auth_attempts_total", labels);
        let key = vec![
            ("protocol", protocol.into()),
            ("mechanism", mechanism.into()),
        ];
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        let h = histograms.entry(key).or_default();
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// A plugin failed (trap, timeout, memory, contract, ...).
    pub fn fault(&self, plugin: &str, kind: &str) {
        self.count(
            "portcullis_plugin_faults_total",
            vec![("plugin", plugin.into()), ("kind", kind.into())],
        );
    }

    /// A client address went over a per-address limit.
    pub fn client_limit_refused(&self, limit: &str) {
        self.count(
            "portcullis_client_limit_refusals_total",
            vec![("limit", limit.into())],
        );
    }

    /// A PROXY protocol header read (`client`, `local`) or refused (the
    /// reason: `untrusted`, `missing`, `malformed`, `timeout`, …).
    pub fn proxy_header(&self, outcome: &str) {
        self.count(
            "portcullis_proxy_headers_total",
            vec![("outcome", outcome.into())],
        );
    }

    /// The shared penalty store could not be used; local counts served.
    pub fn penalty_store_fallback(&self) {
        self.count("portcullis_penalty_store_fallbacks_total", Vec::new());
    }

    /// Whether the shared penalty store answers (1), or the local counts
    /// stand in for it (0); -1: no shared store configured.
    pub fn penalty_store_up(&self, up: bool) {
        self.penalty_store_up
            .store(i64::from(up), Ordering::Relaxed);
    }

    /// An exchange waited too long for the client and was cancelled.
    pub fn auth_step_timeout(&self, protocol: &str) {
        self.count(
            "portcullis_auth_step_timeouts_total",
            vec![("protocol", protocol.into())],
        );
    }

    /// A checker's `password-hash` call: `verified` natively, or why not
    /// (`unsupported`, `over_limit`, `malformed`; calls past an instance's
    /// share are not counted).
    pub fn password_hash(&self, outcome: &str) {
        self.count(
            "portcullis_password_hash_total",
            vec![("outcome", outcome.into())],
        );
    }

    pub fn message_delivered(&self) {
        self.count("portcullis_messages_delivered_total", Vec::new());
    }

    /// A plugin instance (store) was created / dropped.
    pub fn instance_created(&self) {
        self.instances_live.fetch_add(1, Ordering::Relaxed);
        self.instances_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn instance_dropped(&self) {
        self.instances_live.fetch_sub(1, Ordering::Relaxed);
    }

    /// An exchange found the instance pool full and waited for a slot.
    pub fn pool_wait(&self) {
        self.pool_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// ... and no slot came free in time.
    pub fn pool_timeout(&self) {
        self.pool_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The timing histograms of a plugin, made on first use; a plugin
    /// loaded again (a reload) gets the same ones.
    pub fn plugin_times(&self, plugin: &str, kind: &'static str) -> Arc<PluginTimes> {
        let mut times = self.plugin_times.lock().unwrap_or_else(|e| e.into_inner());
        times.entry((plugin.to_owned(), kind)).or_default().clone()
    }

    /// The exposition text.
    pub fn render(&self, pool_size: u32) -> String {
        let mut out = String::new();
        let help = |out: &mut String, name: &str, kind: &str, text: &str| {
            let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
        };
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let texts = [
            ("portcullis_sessions_total", "Connections accepted."),
            ("portcullis_auth_attempts_total", "Authentication outcomes."),
            (
                "portcullis_plugin_faults_total",
                "Plugin faults by plugin and kind.",
            ),
            (
                "portcullis_messages_delivered_total",
                "Messages accepted for delivery.",
            ),
            (
                "portcullis_client_limit_refusals_total",
                "Connections and exchanges refused by a per-address limit.",
            ),
            (
                "portcullis_auth_step_timeouts_total",
                "SASL exchanges cancelled while waiting for the client.",
            ),
            (
                "portcullis_proxy_headers_total",
                "PROXY protocol headers by outcome (client, local, or why refused).",
            ),
            (
                "portcullis_penalty_store_fallbacks_total",
                "Penalty updates served by local counts: the shared store failed or was down.",
            ),
            (
                "portcullis_password_hash_total",
                "Checkers' password-hash calls: verified natively, or why the guest verified it.",
            ),
        ];
        for (name, text) in texts {
            help(&mut out, name, "counter", text);
            for ((n, labels), value) in &counters {
                if *n == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
        }
        help(
            &mut out,
            "portcullis_sessions_active",
            "gauge",
            "Sessions open now.",
        );
        for (protocol, slot) in [("echo", 0), ("smtp", 1), ("dovecot", 2)] {
            let n = self.sessions_active[slot].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "portcullis_sessions_active{{protocol=\"{protocol}\"}} {n}"
            );
        }
        help(
            &mut out,
            "portcullis_auth_duration_seconds",
            "histogram",
            "Time from the client's credentials to the verdict.",
        );
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        for (labels, h) in histograms.iter() {
            let name = "portcullis_auth_duration_seconds";
            for (i, bound) in BUCKETS.iter().enumerate() {
                let le = render_labels(labels, Some(&bound.to_string()));
                let _ = writeln!(out, "{name}_bucket{le} {}", h.counts[i]);
            }
            let inf = render_labels(labels, Some("+Inf"));
            let plain = render_labels(labels, None);
            let _ = writeln!(out, "{name}_bucket{inf} {}", h.count);
            let _ = writeln!(out, "{name}_sum{plain} {}", h.sum);
            let _ = writeln!(out, "{name}_count{plain} {}", h.count);
        }
        help(
            &mut out,
            "portcullis_plugin_instances",
            "gauge",
            "Plugin instances alive now.",
        );
        let live = self.instances_live.load(Ordering::Relaxed);
        let _ = writeln!(out, "portcullis_plugin_instances {live}");
        help(
            &mut out,
            "portcullis_plugin_instances_total",
            "counter",
            "Plugin instances created.",
        );
        let total = self.instances_total.load(Ordering::Relaxed);
        let _ = writeln!(out, "portcullis_plugin_instances_total {total}");
        help(
            &mut out,
            "portcullis_plugin_pool_size",
            "gauge",
            "Instance pool capacity.",
        );
        let _ = writeln!(out, "portcullis_plugin_pool_size {pool_size}");
        help(
            &mut out,
            "portcullis_penalty_store_up",
            "gauge",
            "1: the shared penalty store answers; 0: local counts stand in; -1: none configured.",
        );
        let up = self.penalty_store_up.load(Ordering::Relaxed);
        let _ = writeln!(out, "portcullis_penalty_store_up {up}");
        for (name, text, value) in [
            (
                "portcullis_plugin_pool_waits_total",
                "Exchanges that found every instance slot in use and waited.",
                &self.pool_waits,
            ),
            (
                "portcullis_plugin_pool_timeouts_total",
                "Waits for an instance slot that ran out of time.",
                &self.pool_timeouts,
            ),
        ] {
            help(&mut out, name, "counter", text);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let times = self.plugin_times.lock().unwrap_or_else(|e| e.into_inner());
        for (name, text, phase) in [
            (
                "portcullis_plugin_instantiate_seconds",
                "Time to make a fresh store and plugin instance.",
                (|t: &PluginTimes| &t.instantiate) as fn(&PluginTimes) -> &PhaseHistogram,
            ),
            (
                "portcullis_plugin_call_seconds",
                "Time in calls into a plugin, host imports they make included.",
                |t: &PluginTimes| &t.call,
            ),
            (
                "portcullis_plugin_release_seconds",
                "Time to drop a plugin's store, giving its instance back to the pool.",
                |t: &PluginTimes| &t.release,
            ),
        ] {
            help(&mut out, name, "histogram", text);
            for ((plugin, kind), t) in times.iter() {
                let labels: Labels = vec![("plugin", plugin.clone()), ("kind", (*kind).into())];
                phase(t).render(&mut out, name, &labels);
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` over plain HTTP/1.1, one response per connection.
pub async fn serve(listener: TcpListener, pool_size: u32) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let mut request = vec![0u8; 2048];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < request.len() {
                    match stream.read(&mut request[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                }
            })
            .await;
            let head = String::from_utf8_lossy(&request[..len]);
            let words: Vec<&str> = head.split_whitespace().take(2).collect();
            let response = match (read, words.as_slice()) {
                (Ok(()), ["GET", "/metrics"]) => {
                    let body = METRICS.render(pool_size);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned(),
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics {
            counters: Mutex::new(BTreeMap::new()),
            histograms: Mutex::new(BTreeMap::new()),
            plugin_times: Mutex::new(BTreeMap::new()),
            sessions_active: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
            instances_live: AtomicI64::new(0),
            instances_total: AtomicU64::new(0),
            pool_waits: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            penalty_store_up: AtomicI64::new(-1),
        };
        m.pool_wait();
        m.session_started("smtps");
        m.auth("smtp", "PLAIN", "success", Duration::from_micros(300));
        m.auth("smtp", "PLAIN", "denied", Duration::from_millis(3));
        m.fault("trap-\"checker\"", "trap");
        let times = m.plugin_times("mech-plain", "mechanism");
        times.instantiate.record(Duration::from_micros(20));
        times.call.record(Duration::from_micros(3));
        times.call.record(Duration::from_secs(2));
        assert!(Arc::ptr_eq(
            &times,
            &m.plugin_times("mech-plain", "mechanism")
        ));
        let text = m.render(1000);
        for want in [
            "portcullis_sessions_total{protocol=\"smtp\"} 1",
            "portcullis_sessions_active{protocol=\"smtp\"} 1",
            "portcullis_auth_attempts_total{protocol=\"smtp\",mechanism=\"PLAIN\",outcome=\"success\"} 1",
            "portcullis_auth_duration_seconds_bucket{protocol=\"smtp\",mechanism=\"PLAIN\",le=\"0.0005\"} 1",
            "portcullis_auth_duration_seconds_bucket{protocol=\"smtp\",mechanism=\"PLAIN\",le=\"+Inf\"} 2",
            "portcullis_auth_duration_seconds_count{protocol=\"smtp\",mechanism=\"PLAIN\"} 2",
            "portcullis_plugin_faults_total{plugin=\"trap-\\\"checker\\\"\",kind=\"trap\"} 1",
            "portcullis_plugin_pool_size 1000",
            "portcullis_plugin_pool_waits_total 1",
            "portcullis_plugin_pool_timeouts_total 0",
            "portcullis_plugin_instantiate_seconds_bucket{plugin=\"mech-plain\",kind=\"mechanism\",le=\"0.00001\"} 0",
            "portcullis_plugin_instantiate_seconds_bucket{plugin=\"mech-plain\",kind=\"mechanism\",le=\"0.000025\"} 1",
            "portcullis_plugin_instantiate_seconds_sum{plugin=\"mech-plain\",kind=\"mechanism\"} 0.00002",
            "portcullis_plugin_call_seconds_bucket{plugin=\"mech-plain\",kind=\"mechanism\",le=\"0.000005\"} 1",
            "portcullis_plugin_call_seconds_bucket{plugin=\"mech-plain\",kind=\"mechanism\",le=\"1\"} 1",
            "portcullis_plugin_call_seconds_bucket{plugin=\"mech-plain\",kind=\"mechanism\",le=\"+Inf\"} 2",
            "portcullis_plugin_call_seconds_count{plugin=\"mech-plain\",kind=\"mechanism\"} 2",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
