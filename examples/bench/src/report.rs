//! The report: Markdown tables of what [`crate::run`] measured, with the
//! ratios between servers worked out. README.md says what each number
//! means.

use std::fmt::Write as _;

use crate::files::{FILE, SQLITE};
use crate::metrics::Phase;
use crate::run::{
    AIOSMTPD, BARE, Hook, NATIVE, Plan, Results, SCRAM, SINK, TWISTED, TWISTED_ECHO, WASM,
    echo_what, lines_what, plain_what, scram_what,
};
use crate::stats::Rate;

const KINDS: [&str; 3] = ["mechanism", "checker", "realm"];

pub fn markdown(plan: &Plan, r: &Results) -> String {
    let mut out = String::new();
    let o = &mut out;
    w(o, "# portcullis benchmark\n\n");
    if plan.quick {
        w(
            o,
            "**Smoke run (`--quick`)**: loads too short and counts too small for these numbers to mean anything.\n\n",
        );
    }
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    w(
        o,
        &format!(
            "All on 127.0.0.1, {cores} CPUs, Linux {}. Clients per load: {}. Each load runs {} s or {} operations in all, whichever ends first; every login on a new TCP connection. Every load runs on one thread of its own (a current-thread tokio runtime), as an independent single-threaded client would; a cell's `client N %` is that thread's CPU time over the load's wall time (near 100 % the client, not the server, was the limit). The servers and the client share the machine's CPUs.\n",
            kernel.trim(),
            plan.clients
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            plan.seconds,
            plan.max_count
        ),
    );
    if !r.missing.is_empty() {
        w(o, "\n");
    }
    for (server, why) in &r.missing {
        w(o, &format!("- {server}: {why}\n"));
    }
    if let Some(problem) = &r.native_problem {
        w(
            o,
            &format!("\n**The native column is not the native path**: {problem}.\n"),
        );
    }

    w(
        o,
        "\n## SMTP logins: `connect → EHLO → AUTH → QUIT`\n\nLogins per second (latency p50 / p99; the load thread's CPU share).\n\n",
    );
    let smtp = [WASM, NATIVE, SINK, TWISTED, AIOSMTPD];
    header(o, "load", &smtp);
    for &c in &plan.clients {
        row(o, &plain_what(c), &smtp, |s| cell(r, &plain_what(c), s));
    }
    for &c in &plan.clients {
        // SCRAM-SHA-256 runs against a portcullis with stored keys only.
        row(o, &scram_what(c), &smtp, |s| match s {
            WASM => cell(r, &scram_what(c), SCRAM),
            _ => "–".into(),
        });
    }

    w(
        o,
        "\n## Echo\n\nLogins (`user pass`, the reply, close) per second; lines per second over logged-in connections.\n\n",
    );
    let echo = [WASM, NATIVE, BARE, TWISTED_ECHO];
    header(o, "load", &echo);
    for &c in &plan.clients {
        row(o, &echo_what(c), &echo, |s| cell(r, &echo_what(c), s));
    }
    let lines = lines_what(plan);
    row(
        o,
        &format!("{lines}, batches of {} (lines/s)", plan.batch),
        &echo,
        |s| match (r.missing.get(s), r.lines.get(s)) {
            (Some(why), _) => why.clone(),
            (_, Some(Ok(v))) => format!("{v:.0}"),
            (_, Some(Err(e))) => format!("failed: {e}"),
            _ => "–".into(),
        },
    );

    w(
        o,
        "\n## Ratios\n\nportcullis's rate divided by the other's, from the tables above.\n\n",
    );
    let against = [NATIVE, SINK, TWISTED, AIOSMTPD];
    header(o, "load", &divided(&against));
    for &c in &plan.clients {
        row(o, &plain_what(c), &against, |s| ratio(r, &plain_what(c), s));
    }
    let against = [NATIVE, BARE, TWISTED_ECHO];
    w(o, "\n");
    header(o, "load", &divided(&against));
    for &c in &plan.clients {
        row(o, &echo_what(c), &against, |s| ratio(r, &echo_what(c), s));
    }
    let wasm_lines = r.lines.get(WASM).and_then(|v| v.as_ref().ok());
    row(o, &lines, &against, |s| {
        match (wasm_lines, r.lines.get(s)) {
            (Some(a), Some(Ok(b))) if *b > 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        }
    });

    w(
        o,
        "\n## The sandbox's cost\n\nFrom portcullis's own metrics page (`portcullis_plugin_instantiate_seconds`, `portcullis_plugin_call_seconds`, `portcullis_plugin_release_seconds`), scraped before and after each load: microseconds of server time per operation spent making plugin instances, calling into them and dropping their stores (which resets their memory, tables and stacks for the pool), by plugin kind. The `bench-native` path does PLAIN and the username-password check natively, so only the realm's share is left in it. With more clients than CPUs these wall times include waiting for a CPU. A call includes the host imports it makes: SCRAM's mechanism call contains its checker lookup, which also shows under checker.\n\n",
    );
    w(
        o,
        "| load | server | instances / op | instantiate µs / op (mech · checker · realm) | calls µs / op (mech · checker · realm) | release µs / op (mech · checker · realm) | total µs / op |\n|---|---|---|---|---|---|---|\n",
    );
    for hook in &r.hooks {
        hook_row(o, hook);
    }
    if let Some(hook) = r
        .hooks
        .iter()
        .find(|h| h.server == WASM && h.what == plain_what(1))
    {
        let per = hook.ops.max(1) as f64;
        let us = |phase| {
            ["mechanism", "checker"]
                .map(|k| hook.delta.get(k, phase).seconds)
                .iter()
                .sum::<f64>()
                * 1e6
                / per
        };
        let (inst, call, release) = (us(Phase::Instantiate), us(Phase::Call), us(Phase::Release));
        w(
            o,
            &format!(
                "\nWhat the native path replaces, at 1 client: {:.1} µs per AUTH PLAIN login in the mechanism and checker plugins, {inst:.1} µs instantiating, {call:.1} µs in calls and {release:.1} µs releasing.\n",
                inst + call + release
            ),
        );
    }

    w(
        o,
        "\n## Memory and start-up\n\n| measurement | value |\n|---|---|\n",
    );
    match &r.rss {
        Some(Ok((before, with))) => {
            let n = plan.idle_sessions;
            w(
                o,
                &format!(
                    "| portcullis RSS, no sessions (after one login) | {:.1} MiB |\n",
                    *before as f64 / 1024.0
                ),
            );
            w(
                o,
                &format!(
                    "| portcullis RSS with {n} idle SMTP sessions (fresh server) | {:.1} MiB ({:.1} KiB per session) |\n",
                    *with as f64 / 1024.0,
                    per_session(*before, *with, n)
                ),
            );
        }
        Some(Err(e)) => w(
            o,
            &format!(
                "| RSS with {} idle SMTP sessions | failed: {e} |\n",
                plan.idle_sessions
            ),
        ),
        None => {}
    }
    match &r.echo_rss {
        Some(Ok((before, with))) => w(
            o,
            &format!(
                "| portcullis RSS with {} logged-in echo sessions (fresh server) | {:.1} MiB ({:.1} KiB per session) |\n",
                plan.idle_sessions,
                *with as f64 / 1024.0,
                per_session(*before, *with, plan.idle_sessions)
            ),
        ),
        Some(Err(e)) => w(
            o,
            &format!(
                "| RSS with {} logged-in echo sessions | failed: {e} |\n",
                plan.idle_sessions
            ),
        ),
        None => {}
    }
    match &r.startup {
        Some(Ok((cold, warm))) => {
            w(
                o,
                &format!(
                    "| start-up, plugin cache cold (empty folder) | {:.0} ms |\n",
                    cold.as_secs_f64() * 1e3
                ),
            );
            w(
                o,
                &format!(
                    "| start-up, plugin cache warm (median of {}) | {:.0} ms |\n",
                    plan.warm_starts,
                    warm.as_secs_f64() * 1e3
                ),
            );
        }
        Some(Err(e)) => w(o, &format!("| start-up | failed: {e} |\n")),
        None => {}
    }

    match &r.files {
        Some(Ok(files)) => {
            w(o, "\n## Password files at any size\n\n");
            w(o, &files.text);
        }
        Some(Err(e)) => w(
            o,
            &format!("\n## Password files at any size\n\nfailed: {e}\n"),
        ),
        None => {}
    }
    match &r.sandbox {
        Some(Ok(sandbox)) => w(
            o,
            &format!(
                "\n## The sandbox alone\n\nThe host's `sandbox_cost` example \
                 (`cargo run --release -p portcullis --example sandbox_cost`), run after every \
                 server above stopped: the host's own plugin path and pool settings, the \
                 default run's built-in plugins, no network, one thread, mean of 30,000. What \
                 one AUTH PLAIN login costs in the sandbox when nothing competes for the CPU, \
                 and the floor of one fresh instance (a store, an instantiation, the \
                 plugin's smallest call, the store's drop), which wasmtime sets: a login \
                 makes two (the mechanism's and the checker's; the console realm's avatar \
                 waits for the session's first MAIL FROM), a login that sends mail three.\
                 \n\n```text\n{}\n```\n",
                sandbox.text
            ),
        ),
        Some(Err(e)) => w(o, &format!("\n## The sandbox alone\n\nnot measured: {e}\n")),
        None => {}
    }
    targets(o, plan, r);
    out
}

fn per_session(before: u64, with: u64, n: usize) -> f64 {
    with.saturating_sub(before) as f64 / n.max(1) as f64
}

/// Issue 16's targets against what this run measured.
fn targets(o: &mut String, plan: &Plan, r: &Results) {
    w(
        o,
        "\n## Targets\n\n| target | measured | met |\n|---|---|---|\n",
    );
    let mut line = |what: String, got: Option<f64>, unit: &str, ok: &dyn Fn(f64) -> bool| {
        let (value, met) = match got {
            Some(v) => (
                format!("{v:.2}{unit}"),
                if ok(v) { "yes" } else { "**no**" },
            ),
            None => ("not measured".into(), "–"),
        };
        w(o, &format!("| {what} | {value} | {met} |\n"));
    };
    let plugin_us = r
        .hooks
        .iter()
        .find(|h| h.server == WASM && h.what == plain_what(1))
        .map(|h| {
            KINDS
                .iter()
                .flat_map(|k| Phase::ALL.map(|p| h.delta.get(k, p).seconds))
                .sum::<f64>()
                * 1e6
                / h.ops.max(1) as f64
        });
    line(
        "plugin time per AUTH PLAIN login at 1 client ≤ 20 µs".into(),
        plugin_us,
        " µs",
        &|v| v <= 20.0,
    );
    if let Some(Ok(sandbox)) = &r.sandbox {
        line(
            "the same in process, nothing else running (`sandbox_cost`) ≤ 20 µs".into(),
            Some(sandbox.login_us),
            " µs",
            &|v| v <= 20.0,
        );
        line(
            format!(
                "a login's {} fresh instances at wasmtime's floor ({} × the floor of one) ≤ 20 µs",
                sandbox.instances, sandbox.instances
            ),
            Some(f64::from(sandbox.instances) * sandbox.floor_us),
            " µs",
            &|v| v <= 20.0,
        );
    }
    let rate_ratio = |what: &str, other: &str| match (clean(r, what, WASM), clean(r, what, other)) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    for &c in &plan.clients {
        line(
            format!("Wasm ÷ native, AUTH PLAIN, {} ≥ 0.9", clients_label(c)),
            rate_ratio(&plain_what(c), NATIVE),
            "",
            &|v| v >= 0.9,
        );
    }
    for &c in plan.clients.iter().filter(|&&c| c >= 16) {
        line(
            format!(
                "portcullis ÷ smtp-sink, AUTH PLAIN, {} ≥ 0.8",
                clients_label(c)
            ),
            rate_ratio(&plain_what(c), SINK),
            "",
            &|v| v >= 0.8,
        );
    }
    let kib = |m: &Option<Result<(u64, u64), String>>| match m {
        Some(Ok((before, with))) => Some(per_session(*before, *with, plan.idle_sessions)),
        _ => None,
    };
    line(
        format!(
            "idle SMTP session ≤ 12 KiB ({} sessions)",
            plan.idle_sessions
        ),
        kib(&r.rss),
        " KiB",
        &|v| v <= 12.0,
    );
    line(
        format!(
            "logged-in echo session ≤ 32 KiB ({} sessions)",
            plan.idle_sessions
        ),
        kib(&r.echo_rss),
        " KiB",
        &|v| v <= 32.0,
    );
    if let Some(Ok(files)) = &r.files {
        let rate = |checker: &str, users: u64| {
            files
                .rates
                .iter()
                .find(|(c, u, _)| *c == checker && *u == users)
                .map(|(_, _, v)| *v)
        };
        let sizes: Vec<u64> = files.rates.iter().map(|(_, u, _)| *u).collect();
        if let (Some(&small), Some(&large)) = (sizes.iter().min(), sizes.iter().max()) {
            let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
            line(
                format!("file checker at {large} users ÷ at {small} users ≥ 0.9"),
                ratio(rate(FILE, large), rate(FILE, small)),
                "",
                &|v| v >= 0.9,
            );
            line(
                format!("file checker ÷ SQLite at {small} users ≥ 1"),
                ratio(rate(FILE, small), rate(SQLITE, small)),
                "",
                &|v| v >= 1.0,
            );
        }
    }
}

fn clients_label(c: usize) -> String {
    if c == 1 {
        "1 client".into()
    } else {
        format!("{c} clients")
    }
}

fn w(out: &mut String, text: &str) {
    out.push_str(text);
}

fn header<S: AsRef<str>>(out: &mut String, first: &str, columns: &[S]) {
    let columns: Vec<&str> = columns.iter().map(AsRef::as_ref).collect();
    let _ = writeln!(out, "| {first} | {} |", columns.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
}

fn divided(servers: &[&str]) -> Vec<String> {
    servers.iter().map(|s| format!("÷ {s}")).collect()
}

fn row(out: &mut String, what: &str, columns: &[&str], cell: impl Fn(&str) -> String) {
    let cells: Vec<String> = columns.iter().map(|c| cell(c)).collect();
    let _ = writeln!(out, "| {what} | {} |", cells.join(" | "));
}

fn cell(r: &Results, what: &str, server: &str) -> String {
    if let Some(why) = r.missing.get(server) {
        return why.clone();
    }
    match r.rates.get(&(what.to_owned(), server.to_owned())) {
        None => "–".into(),
        Some(rate) if rate.ok == 0 => {
            format!("failed: {}", rate.first_error.as_deref().unwrap_or("?"))
        }
        Some(rate) => {
            let mut s = format!(
                "{:.0} ({:.2} / {:.2} ms",
                rate.per_second(),
                rate.percentile(0.5).as_secs_f64() * 1e3,
                rate.percentile(0.99).as_secs_f64() * 1e3
            );
            match rate.load_cpu_share() {
                Some(share) => {
                    let _ = write!(s, "; client {share:.0} %)");
                }
                None => s.push(')'),
            }
            if rate.failed > 0 {
                let _ = write!(
                    s,
                    " **{} failed**: {}",
                    rate.failed,
                    rate.first_error.as_deref().unwrap_or("?")
                );
            }
            s
        }
    }
}

fn clean(r: &Results, what: &str, server: &str) -> Option<f64> {
    r.rates
        .get(&(what.to_owned(), server.to_owned()))
        .filter(|rate: &&Rate| rate.ok > 0 && rate.failed == 0)
        .map(Rate::per_second)
}

fn ratio(r: &Results, what: &str, other: &str) -> String {
    match (clean(r, what, WASM), clean(r, what, other)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn hook_row(out: &mut String, hook: &Hook) {
    let per = hook.ops.max(1) as f64;
    let us = |kind: &str, phase| hook.delta.get(kind, phase).seconds * 1e6 / per;
    let parts = |phase| KINDS.map(|k| format!("{:.1}", us(k, phase))).join(" · ");
    let instances: f64 = KINDS
        .iter()
        .map(|k| hook.delta.get(k, Phase::Instantiate).count)
        .sum::<f64>()
        / per;
    let total: f64 = KINDS
        .iter()
        .flat_map(|k| Phase::ALL.map(|p| us(k, p)))
        .sum();
    let _ = writeln!(
        out,
        "| {} | {} | {instances:.2} | {} | {} | {} | {total:.1} |",
        hook.what,
        hook.server,
        parts(Phase::Instantiate),
        parts(Phase::Call),
        parts(Phase::Release)
    );
}
