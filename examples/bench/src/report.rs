//! The report: Markdown tables of what [`crate::run`] measured, with the
//! ratios between servers worked out. README.md says what each number
//! means.

use std::fmt::Write as _;

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
            "All on 127.0.0.1, {cores} CPUs, Linux {}. Clients per load: {}. Each load runs {} s or {} operations in all, whichever ends first; every login on a new TCP connection.\n",
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
        "\n## SMTP logins: `connect → EHLO → AUTH → QUIT`\n\nLogins per second (latency p50 / p99).\n\n",
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
        "\n## The sandbox's cost\n\nFrom portcullis's own metrics page (`portcullis_plugin_instantiate_seconds`, `portcullis_plugin_call_seconds`), scraped before and after each load: microseconds of server time per operation spent making plugin instances and calling into them, by plugin kind. The `bench-native` path does PLAIN and the username-password check natively, so only the realm's share is left in it. With more clients than CPUs these wall times include waiting for a CPU. A call includes the host imports it makes: SCRAM's mechanism call contains its checker lookup, which also shows under checker.\n\n",
    );
    w(
        o,
        "| load | server | instances / op | instantiate µs / op (mech · checker · realm) | calls µs / op (mech · checker · realm) | total µs / op |\n|---|---|---|---|---|---|\n",
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
        let (inst, call) = (us(Phase::Instantiate), us(Phase::Call));
        w(
            o,
            &format!(
                "\nWhat the native path replaces, at 1 client: {:.1} µs per AUTH PLAIN login in the mechanism and checker plugins, {inst:.1} µs instantiating and {call:.1} µs in calls.\n",
                inst + call
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
                    "| portcullis RSS, no sessions | {:.1} MiB |\n",
                    *before as f64 / 1024.0
                ),
            );
            w(
                o,
                &format!(
                    "| portcullis RSS with {n} idle SMTP sessions | {:.1} MiB ({:.1} KiB per session) |\n",
                    *with as f64 / 1024.0,
                    with.saturating_sub(*before) as f64 / n.max(1) as f64
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
    out
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
                "{:.0} ({:.2} / {:.2} ms)",
                rate.per_second(),
                rate.percentile(0.5).as_secs_f64() * 1e3,
                rate.percentile(0.99).as_secs_f64() * 1e3
            );
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
        .map(|k| us(k, Phase::Instantiate) + us(k, Phase::Call))
        .sum();
    let _ = writeln!(
        out,
        "| {} | {} | {instances:.2} | {} | {} | {total:.1} |",
        hook.what,
        hook.server,
        parts(Phase::Instantiate),
        parts(Phase::Call)
    );
}
