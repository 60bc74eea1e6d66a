//! Running a bounded load: `clients` tasks repeat one operation until a
//! time limit or a total count is reached; successes, failures and each
//! success's latency are recorded.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long and how much.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub clients: usize,
    pub duration: Duration,
    /// Operations started in all, at most.
    pub max_count: u64,
}

/// What a load run measured.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latencies of the successful operations, sorted.
    pub latencies: Vec<Duration>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// CPU time the load thread used, when the load ran on one thread
    /// ([`run_on_one_thread`]).
    pub load_cpu: Option<Duration>,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The load thread's CPU time over the load's wall time, in % of one
    /// core: near 100 says the client, not the server, was the limit.
    pub fn load_cpu_share(&self) -> Option<f64> {
        self.load_cpu
            .map(|cpu| 100.0 * cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9))
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    /// `12345/s (p50 1.2 ms, p99 3.4 ms)`, plus the failures if any.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:.0}/s (n={}, p50 {}, p99 {})",
            self.per_second(),
            self.ok,
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99))
        );
        if let Some(share) = self.load_cpu_share() {
            s += &format!(", load thread {share:.0} % CPU");
        }
        if self.failed > 0 {
            s += &format!(
                ", {} FAILED: {}",
                self.failed,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        s
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Runs `op` from `bounds.clients` tasks at once until the time or the
/// count runs out.
pub async fn run<F, Fut>(bounds: Bounds, op: F) -> Rate
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let started = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let deadline = begin + bounds.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..bounds.clients {
        let (op, started) = (op.clone(), started.clone());
        tasks.spawn(async move {
            let mut rate = Rate::default();
            while Instant::now() < deadline
                && started.fetch_add(1, Ordering::Relaxed) < bounds.max_count
            {
                let t = Instant::now();
                // An operation that hangs past the deadline counts as failed.
                let left = deadline.saturating_duration_since(t) + Duration::from_secs(2);
                match tokio::time::timeout(left, op()).await {
                    Ok(Ok(())) => {
                        rate.ok += 1;
                        rate.latencies.push(t.elapsed());
                    }
                    Ok(Err(e)) => {
                        rate.failed += 1;
                        rate.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                    Err(_) => {
                        rate.failed += 1;
                        rate.first_error.get_or_insert_with(|| "timed out".into());
                    }
                }
            }
            rate
        });
    }
    let mut total = Rate::default();
    while let Some(done) = tasks.join_next().await {
        let rate = done.expect("a load task panicked");
        total.ok += rate.ok;
        total.failed += rate.failed;
        total.latencies.extend(rate.latencies);
        if total.first_error.is_none() {
            total.first_error = rate.first_error;
        }
    }
    total.elapsed = begin.elapsed();
    total.latencies.sort_unstable();
    total
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only the struct given.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// [`run`] on a thread of its own with a current-thread runtime, as an
/// independent single-threaded client would load a server; the rate and
/// the CPU time the load thread used. Blocks until the load is over.
pub fn run_on_one_thread<F, Fut>(bounds: Bounds, op: F) -> (Rate, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let (mut rate, cpu) = on_one_thread(move || run(bounds, op));
    rate.load_cpu = Some(cpu);
    (rate, cpu)
}

/// [`run_on_one_thread`] from async code: the load thread is a thread of
/// its own, so the caller's runtime neither helps nor competes.
pub async fn run_on_one_thread_async<F, Fut>(bounds: Bounds, op: F) -> Rate
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    tokio::task::spawn_blocking(move || run_on_one_thread(bounds, op).0)
        .await
        .expect("the load thread panicked")
}

/// Runs the future `make` returns to completion on a new thread with a
/// current-thread runtime; its output and the CPU time that thread used.
pub fn on_one_thread<M, Fut>(make: M) -> (Fut::Output, Duration)
where
    M: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let cpu = thread_cpu();
        let out = runtime.block_on(make());
        (out, thread_cpu() - cpu)
    })
    .join()
    .expect("the load thread panicked")
}
