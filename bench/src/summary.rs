//! `chat-bench summary`: turns the `JSON` lines of several runs into one
//! markdown table, each figure beside its target from issue 6, so the
//! targets live in one place and `scripts/bench.sh` needs no JSON tools.

use serde_json::Value;

/// A goal for one figure.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    Below(f64),
    AtMost(f64),
    Zero,
    /// Equal to another figure of the same run (e.g. reached = clients).
    Equals(&'static str),
    /// Shown, no target.
    None,
}

/// (figure key, label, unit, goal) per scenario; the scenario is matched by
/// name and, for connections, transport.
fn rows(scenario: &str, transport: &str) -> Vec<(&'static str, &'static str, Goal)> {
    use Goal::*;
    let load = |extra: Vec<(&'static str, &'static str, Goal)>| {
        let mut v = extra;
        v.extend([
            ("duplicates", "duplicates", Zero),
            ("disconnected", "clients dropped", Zero),
            ("server_cpu_pct", "server CPU, % of a core", None),
            (
                "server_cpu_ns_per_delivery",
                "server CPU per delivery, ns",
                None,
            ),
            ("bench_cpu_pct", "chat-bench CPU, % of a core", None),
        ]);
        v
    };
    match (scenario, transport) {
        ("fanout", _) => load(vec![
            ("deliveries_per_s", "deliveries/s", AtLeast(8_000_000.0)),
            ("lost", "deliveries lost", Zero),
            ("p50_ms", "p50 latency, ms (window-bound)", None),
            ("p99_ms", "p99 latency, ms (window-bound)", None),
            ("p999_ms", "p99.9 latency, ms (window-bound)", None),
        ]),
        ("latency", _) => load(vec![
            ("messages_per_s", "messages/s sent", None),
            ("p50_ms", "p50 latency, ms", None),
            ("p99_ms", "p99 latency, ms", Below(1.0)),
            ("p999_ms", "p99.9 latency, ms", Below(3.0)),
            ("lost", "deliveries lost", Zero),
        ]),
        ("bigroom", _) => load(vec![
            ("deliveries_per_s", "deliveries/s", None),
            ("p50_ms", "p50 latency, ms", None),
            ("p99_ms", "p99 latency, ms", Below(3.0)),
            ("lost", "deliveries lost", Zero),
        ]),
        ("pairs", _) => load(vec![
            ("deliveries_per_s", "private messages/s delivered", None),
            ("p50_ms", "p50 latency, ms (window-bound)", None),
            ("p99_ms", "p99 latency, ms (window-bound)", None),
            ("lost", "messages lost", Zero),
        ]),
        ("file", _) => vec![
            (
                "upload_mb_s",
                "file upload into the spool, MB/s",
                AtLeast(300.0),
            ),
            (
                "download_mb_s",
                "file download out of the spool, MB/s",
                AtLeast(300.0),
            ),
            (
                "upload_pm_p99_ms",
                "p99 private message during the upload, ms",
                Below(10.0),
            ),
            (
                "download_pm_p99_ms",
                "p99 private message during the download, ms",
                Below(10.0),
            ),
        ],
        ("connections", transport) => vec![
            ("clients_logged_in", "clients logged in", Equals("clients")),
            ("connect_s", "s to connect and log in all", Below(2.0)),
            (
                "rss_per_conn_kib",
                "server RSS per idle connection, KiB",
                AtMost(if transport == "tls" { 48.0 } else { 8.0 }),
            ),
            (
                "reached",
                "clients the final message reached",
                Equals("clients"),
            ),
            ("reach_all_ms", "ms until the last one had it", None),
            ("disconnected", "clients dropped", Zero),
            (
                "server_cpu_connect_pct",
                "server CPU while connecting, %",
                None,
            ),
            (
                "server_cpu_us_per_login",
                "server CPU per connect+login, µs",
                None,
            ),
            ("bench_cpu_pct", "chat-bench CPU, % of a core", None),
        ],
        _ => Vec::new(),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() >= 10_000.0 => group(x as i64),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// 8474576 → "8,474,576".
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn target_text(goal: Goal, run: &Value) -> String {
    match goal {
        Goal::AtLeast(x) => format!("≥ {}", show(&Value::from(x as i64))),
        Goal::Below(x) => format!("< {x}"),
        Goal::AtMost(x) => format!("≤ {x}"),
        Goal::Zero => "0".into(),
        Goal::Equals(key) => format!("= {}", show(&run[key])),
        Goal::None => String::new(),
    }
}

fn met(goal: Goal, value: &Value, run: &Value) -> &'static str {
    let Some(x) = number(value) else {
        return if matches!(goal, Goal::None) { "" } else { "?" };
    };
    let ok = match goal {
        Goal::AtLeast(t) => x >= t,
        Goal::Below(t) => x < t,
        Goal::AtMost(t) => x <= t,
        Goal::Zero => x == 0.0,
        Goal::Equals(key) => number(&run[key]) == Some(x),
        Goal::None => return "",
    };
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

/// The median of the numbers among `values` (the lower middle one of an even
/// count), or `Null` when there are none.
fn median(values: &[&Value]) -> Value {
    let mut xs: Vec<f64> = values.iter().filter_map(|v| number(v)).collect();
    if xs.is_empty() {
        return Value::Null;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs[(xs.len() - 1) / 2];
    // Keep integers integral, so that they are shown as such.
    values
        .iter()
        .find(|v| number(v) == Some(m))
        .map_or(Value::from(m), |v| (*v).clone())
}

/// The largest of the numbers among `values`, or `Null` when there are none.
fn worst(values: &[&Value]) -> Value {
    values
        .iter()
        .filter(|v| number(v).is_some())
        .max_by(|a, b| {
            number(a)
                .unwrap_or(0.0)
                .total_cmp(&number(b).unwrap_or(0.0))
        })
        .map_or(Value::Null, |v| (*v).clone())
}

/// "min–max" of the numbers among `values`, when there are several.
fn spread(values: &[&Value]) -> String {
    let xs: Vec<f64> = values.iter().filter_map(|v| number(v)).collect();
    if xs.len() < 2 {
        return String::new();
    }
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let at = |x: f64| {
        values
            .iter()
            .find(|v| number(v) == Some(x))
            .map_or_else(|| x.to_string(), |v| show(v))
    };
    format!("{}–{}", at(lo), at(hi))
}

/// The markdown table for the runs given as `JSON {…}` (or bare JSON)
/// lines. Runs of the same scenario are taken together: each figure is
/// their median (judged against the target), with the range beside it;
/// counts that must be zero (losses, duplicates) are their worst run.
pub fn render(text: &str) -> anyhow::Result<String> {
    let groups = groups(text)?;
    let mut out = String::from(
        "| scenario | figure | measured (median) | range | target | met |\n|---|---|---:|---:|---|---|\n",
    );
    for (name, runs) in &groups {
        let first = &runs[0];
        let scenario = first["scenario"].as_str().unwrap_or("?");
        let transport = first["transport"].as_str().unwrap_or("plaintext");
        // The medians of every figure, for goals that refer to another one.
        let medians: serde_json::Map<String, Value> = first
            .as_object()
            .map(|o| {
                o.keys()
                    .map(|k| (k.clone(), median(&column(runs, k))))
                    .collect()
            })
            .unwrap_or_default();
        let medians = Value::Object(medians);
        for (key, label, goal) in rows(scenario, transport) {
            let values = column(runs, key);
            // A loss in any run is a loss: counts that must be zero are
            // shown at their worst, not their median.
            let value = match goal {
                Goal::Zero => worst(&values),
                _ => median(&values),
            };
            out.push_str(&format!(
                "| {name} | {label} | {} | {} | {} | {} |\n",
                show(&value),
                spread(&values),
                target_text(goal, &medians),
                met(goal, &value, &medians)
            ));
        }
        for problem in problems(runs) {
            out.push_str(&format!(
                "| {name} | first problem seen | {problem} | | | |\n"
            ));
        }
    }
    Ok(out)
}

/// Runs grouped by scenario name (connections by transport), in the order
/// first seen.
fn groups(text: &str) -> anyhow::Result<Vec<(String, Vec<Value>)>> {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let json = line.strip_prefix("JSON ").unwrap_or(line);
        if !json.starts_with('{') {
            continue;
        }
        let run: Value = serde_json::from_str(json)?;
        let scenario = run["scenario"].as_str().unwrap_or("?");
        let transport = run["transport"].as_str().unwrap_or("plaintext");
        let mut name = match scenario {
            "connections" => format!("connections ({transport})"),
            other => other.to_string(),
        };
        if let Some(share) = number(&run["websocket_share"]).filter(|&s| s > 0.0) {
            name.push_str(&format!(", {} % WebSocket", (share * 100.0).round()));
        }
        if let Some(nodes) = number(&run["nodes"]).filter(|&n| n > 1.0) {
            name.push_str(&format!(", {nodes} nodes"));
        }
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, runs)) => runs.push(run),
            None => groups.push((name, vec![run])),
        }
    }
    Ok(groups)
}

/// A goal of issue 18, beside Redis.
#[derive(Clone, Copy)]
enum Versus {
    /// ours ÷ Redis at least this.
    RatioAtLeast(f64),
    /// ours ÷ Redis at most this.
    RatioAtMost(f64),
    /// Our figure (not the ratio) below this.
    OursBelow(f64),
    /// A count that must be zero on both sides: shown at its worst run.
    Zero,
    None,
}

/// (figure key, label, goal) compared with Redis, per scenario.
fn versus_rows(scenario: &str) -> Vec<(&'static str, &'static str, Versus)> {
    use Versus::*;
    let cpu = (
        "server_cpu_ns_per_delivery",
        "server CPU per delivery, ns",
        None,
    );
    match scenario {
        "fanout" => vec![
            ("deliveries_per_s", "deliveries/s", RatioAtLeast(1.1)),
            (
                "server_cpu_ns_per_delivery",
                "server CPU per delivery, ns",
                RatioAtMost(0.9),
            ),
            ("server_cpu_pct", "server CPU, % of a core", None),
            ("bench_cpu_pct", "chat-bench CPU, % of a core", None),
            ("p50_ms", "p50 latency, ms (window-bound)", None),
            ("p99_ms", "p99 latency, ms (window-bound)", None),
            ("lost", "deliveries lost", Zero),
        ],
        "latency" => vec![
            ("p50_ms", "p50 latency, ms", RatioAtMost(1.2)),
            ("p99_ms", "p99 latency, ms", RatioAtMost(1.2)),
            ("p999_ms", "p99.9 latency, ms", OursBelow(3.0)),
            cpu,
            ("bench_cpu_pct", "chat-bench CPU, % of a core", None),
            ("lost", "deliveries lost", Zero),
        ],
        "bigroom" => vec![
            ("p50_ms", "p50 latency, ms", None),
            ("p99_ms", "p99 latency, ms", RatioAtMost(1.0)),
            ("p999_ms", "p99.9 latency, ms", None),
            cpu,
            ("bench_cpu_pct", "chat-bench CPU, % of a core", None),
            ("lost", "deliveries lost", Zero),
        ],
        "pairs" => vec![
            ("deliveries_per_s", "private messages/s delivered", None),
            ("p99_ms", "p99 latency, ms (window-bound)", None),
            cpu,
            ("bench_cpu_pct", "chat-bench CPU, % of a core", None),
            ("lost", "messages lost", Zero),
        ],
        "connections" => vec![
            ("connect_s", "s to connect and log in all", RatioAtMost(1.0)),
            (
                "rss_per_conn_kib",
                "server RSS per idle connection, KiB",
                RatioAtMost(0.5),
            ),
            (
                "server_cpu_us_per_login",
                "server CPU per connect+login, µs",
                None,
            ),
            ("reach_all_ms", "ms until the last one had it", None),
            ("reached", "clients the final message reached", None),
        ],
        _ => Vec::new(),
    }
}

/// A ratio to two decimals (three below 0.1).
fn show_ratio(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}")
    } else {
        format!("{x:.2}")
    }
}

/// The median of the per-run ratios `other[k] ÷ base[k]` (the script
/// interleaves the two sides' runs, so a pair shares the machine's mood),
/// pairs without both figures or with a zero base left out; `Null` when
/// none is left.
fn ratio_of_pairs(base: &[&Value], other: &[&Value]) -> Value {
    let ratios: Vec<Value> = base
        .iter()
        .zip(other)
        .filter_map(|(b, o)| {
            let (b, o) = (number(b)?, number(o)?);
            (b != 0.0).then(|| Value::from(o / b))
        })
        .collect();
    median(&ratios.iter().collect::<Vec<_>>())
}

/// Figure `key` of every run.
fn column<'a>(runs: &'a [Value], key: &str) -> Vec<&'a Value> {
    runs.iter().map(|r| &r[key]).collect()
}

/// The `problem` of every run that saw one, escaped for a table cell.
fn problems(runs: &[Value]) -> impl Iterator<Item = String> + '_ {
    runs.iter()
        .filter_map(|run| run["problem"].as_str())
        .map(|problem| problem.replace('|', "\\|"))
}

/// One scenario's rows of a table that sets two sides' runs of it beside
/// each other (`base`, then `other`): for every figure each side's median
/// and range, and the median of the per-run ratios other ÷ base; counts
/// that must be zero at their worst run and without a ratio. Then a row
/// when the two sides ran a different number of times (`sides` names
/// them), and the other side's problems.
fn paired_rows(
    out: &mut String,
    name: &str,
    base: &[Value],
    other: &[Value],
    figures: &[(&str, &str, bool)],
    sides: &str,
) {
    for &(key, label, zero) in figures {
        let (a, b) = (column(base, key), column(other, key));
        let pick = if zero { worst } else { median };
        let ratio = if zero {
            "–".to_string()
        } else {
            number(&ratio_of_pairs(&a, &b)).map_or_else(|| "–".into(), show_ratio)
        };
        out.push_str(&format!(
            "| {name} | {label} | {} | {} | {} | {} | {ratio} |\n",
            show(&pick(&a)),
            spread(&a),
            show(&pick(&b)),
            spread(&b),
        ));
    }
    if base.len() != other.len() {
        out.push_str(&format!(
            "| {name} | runs ({sides}) | {} | | {} | | unpaired |\n",
            base.len(),
            other.len()
        ));
    }
    for problem in problems(other) {
        out.push_str(&format!(
            "| {name} | first problem seen | | | {problem} | | |\n"
        ));
    }
}

/// The markdown table of our runs beside Redis's: for every figure the
/// median of each side and the median of the per-run ratios (our run k ÷
/// Redis run k of the same scenario: the script interleaves them, so a
/// pair shares the machine's mood), judged against issue 18's targets.
pub fn compare(ours: &str, redis: &str) -> anyhow::Result<String> {
    let ours = groups(ours)?;
    let redis = groups(redis)?;
    let mut out = String::from(
        "| scenario | figure | ours (median) | Redis (median) | ours ÷ Redis (median) | target | met |\n|---|---|---:|---:|---:|---|---|\n",
    );
    for (name, our_runs) in &ours {
        let Some((_, their_runs)) = redis.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let scenario = our_runs[0]["scenario"].as_str().unwrap_or("?");
        for (key, label, goal) in versus_rows(scenario) {
            let (mine, theirs) = (column(our_runs, key), column(their_runs, key));
            let (a, b) = match goal {
                Versus::Zero => (worst(&mine), worst(&theirs)),
                _ => (median(&mine), median(&theirs)),
            };
            let ratio = match goal {
                Versus::Zero => Value::Null,
                _ => ratio_of_pairs(&theirs, &mine),
            };
            let ratio_text = number(&ratio).map_or_else(|| "–".into(), show_ratio);
            let (target, met) = match goal {
                Versus::RatioAtLeast(t) => (format!("≥ {t:?}×"), number(&ratio).map(|r| r >= t)),
                Versus::RatioAtMost(t) => (format!("≤ {t:?}×"), number(&ratio).map(|r| r <= t)),
                Versus::OursBelow(t) => (format!("ours < {t}"), number(&a).map(|x| x < t)),
                Versus::Zero => (
                    "0".into(),
                    number(&a)
                        .zip(number(&b))
                        .map(|(x, y)| x == 0.0 && y == 0.0),
                ),
                Versus::None => (String::new(), Option::None),
            };
            let met = match (goal, met) {
                (Versus::None, _) => "",
                (_, Some(true)) => "yes",
                (_, Some(false)) => "**no**",
                (_, Option::None) => "?",
            };
            out.push_str(&format!(
                "| {name} | {label} | {} | {} | {ratio_text} | {target} | {met} |\n",
                show(&a),
                show(&b),
            ));
        }
        if our_runs.len() != their_runs.len() {
            out.push_str(&format!(
                "| {name} | runs (ours, Redis) | {} | {} | | | unpaired |\n",
                our_runs.len(),
                their_runs.len()
            ));
        }
        for problem in problems(their_runs) {
            out.push_str(&format!(
                "| {name} | first problem seen (Redis) | {problem} | | | | |\n"
            ));
        }
    }
    Ok(out)
}

/// (figure key, label, must be zero) compared between transports.
fn transport_rows(scenario: &str) -> Vec<(&'static str, &'static str, bool)> {
    let mut rows = match scenario {
        "fanout" => vec![
            ("deliveries_per_s", "deliveries/s", false),
            (
                "server_cpu_ns_per_delivery",
                "server CPU per delivery, ns",
                false,
            ),
            ("server_cpu_pct", "server CPU, % of a core", false),
            ("bench_cpu_pct", "chat-bench CPU, % of a core", false),
            ("p50_ms", "p50 latency, ms (window-bound)", false),
            ("p99_ms", "p99 latency, ms (window-bound)", false),
        ],
        "latency" | "bigroom" => vec![
            ("messages_per_s", "messages/s sent", false),
            ("p50_ms", "p50 latency, ms", false),
            ("p99_ms", "p99 latency, ms", false),
            ("p999_ms", "p99.9 latency, ms", false),
            (
                "server_cpu_ns_per_delivery",
                "server CPU per delivery, ns",
                false,
            ),
            ("server_cpu_pct", "server CPU, % of a core", false),
            ("bench_cpu_pct", "chat-bench CPU, % of a core", false),
        ],
        _ => Vec::new(),
    };
    rows.extend(MUST_BE_ZERO);
    rows
}

/// The counts a paired table ends with, each of which must be zero.
const MUST_BE_ZERO: [(&str, &str, bool); 4] = [
    ("lost", "deliveries lost", true),
    ("duplicates", "duplicates", true),
    ("gaps", "gaps", true),
    ("disconnected", "clients dropped", true),
];

/// The markdown table of the runs with some clients on WebSocket (`WS`)
/// beside the plain runs of the same scenario and transport (`PLAIN`):
/// each side's median and range, and the median of the per-round ratios
/// (WebSocket run k ÷ plain run k: the script interleaves them). Counts
/// that must be zero are shown at their worst run.
pub fn transports(plain: &str, ws: &str) -> anyhow::Result<String> {
    let plain = groups(plain)?;
    let ws = groups(ws)?;
    let mut out = String::from(
        "| scenario | figure | all TCP (median) | range | with WebSocket (median) | range | WebSocket ÷ TCP (median) |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for (name, ws_runs) in &ws {
        let first = &ws_runs[0];
        let same = |run: &Value| {
            run["scenario"] == first["scenario"] && run["transport"] == first["transport"]
        };
        let Some((_, plain_runs)) = plain.iter().find(|(_, runs)| same(&runs[0])) else {
            continue;
        };
        let share = show(&first["clients_websocket"]);
        let clients = show(&first["clients"]);
        let senders = show(&first["senders_websocket"]);
        let all_senders = show(&first["senders"]);
        out.push_str(&format!(
            "| {name} | clients over WebSocket | 0 | | {share} of {clients} ({senders} of {all_senders} senders) | | |\n"
        ));
        let scenario = first["scenario"].as_str().unwrap_or("?");
        paired_rows(
            &mut out,
            name,
            plain_runs,
            ws_runs,
            &transport_rows(scenario),
            "TCP, WebSocket",
        );
    }
    Ok(out)
}

/// (figure key, label, must be zero) compared between one server and a
/// cluster.
fn cluster_rows(scenario: &str) -> Vec<(&'static str, &'static str, bool)> {
    let mut rows = match scenario {
        "fanout" => vec![
            (
                "messages_per_s",
                "messages/s (through PostgreSQL in a cluster)",
                false,
            ),
            ("deliveries_per_s", "deliveries/s", false),
            ("ack_p50_ms", "p50 ack latency, ms (window-bound)", false),
            ("ack_p99_ms", "p99 ack latency, ms (window-bound)", false),
            ("p50_ms", "p50 latency, ms (window-bound)", false),
            ("p99_ms", "p99 latency, ms (window-bound)", false),
            ("cross_p50_ms", "p50 cross-node latency, ms", false),
            ("cross_p99_ms", "p99 cross-node latency, ms", false),
        ],
        "latency" => vec![
            (
                "messages_per_s",
                "messages/s (through PostgreSQL in a cluster)",
                false,
            ),
            ("ack_p50_ms", "p50 ack latency, ms", false),
            ("ack_p99_ms", "p99 ack latency, ms", false),
            ("p50_ms", "p50 latency, ms", false),
            ("p99_ms", "p99 latency, ms", false),
            ("p999_ms", "p99.9 latency, ms", false),
            ("cross_p50_ms", "p50 cross-node latency, ms", false),
            ("cross_p99_ms", "p99 cross-node latency, ms", false),
        ],
        _ => Vec::new(),
    };
    rows.extend([
        ("cross_node_deliveries", "cross-node deliveries", false),
        (
            "server_cpu_pct",
            "server CPU (all nodes), % of a core",
            false,
        ),
        (
            "server_cpu_ns_per_delivery",
            "server CPU per delivery, ns",
            false,
        ),
        ("db_cpu_pct", "PostgreSQL CPU, % of a core", false),
        (
            "db_cpu_us_per_message",
            "PostgreSQL CPU per message, µs",
            false,
        ),
        ("bench_cpu_pct", "chat-bench CPU, % of a core", false),
    ]);
    rows.extend(MUST_BE_ZERO);
    rows
}

/// The markdown table of a cluster's runs (`CLUSTER`) beside one server's
/// runs of the same scenarios (`SINGLE`), run k beside run k (the script
/// interleaves them): medians, ranges, cluster ÷ single (the median of the
/// per-round ratios); counts that must be zero at their worst run.
pub fn cluster(single: &str, cluster: &str) -> anyhow::Result<String> {
    let single = groups(single)?;
    let cluster = groups(cluster)?;
    let mut out = String::from(
        "| scenario | figure | one server (median) | range | cluster (median) | range | cluster ÷ one (median) |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for (name, cluster_runs) in &cluster {
        let first = &cluster_runs[0];
        let same = |run: &Value| {
            run["scenario"] == first["scenario"]
                && run["transport"] == first["transport"]
                && number(&run["websocket_share"]).unwrap_or(0.0) == 0.0
        };
        let Some((_, single_runs)) = single.iter().find(|(_, runs)| same(&runs[0])) else {
            continue;
        };
        let scenario = first["scenario"].as_str().unwrap_or("?");
        paired_rows(
            &mut out,
            name,
            single_runs,
            cluster_runs,
            &cluster_rows(scenario),
            "one, cluster",
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_beside_targets() {
        let text = concat!(
            "noise before\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","deliveries_per_s":8474576.0,"lost":0,"p50_ms":7.5,"p99_ms":17.3,"p999_ms":21.0,"duplicates":0,"disconnected":0,"server_cpu_pct":110.0,"bench_cpu_pct":80.0,"problem":null}"#,
            "\n",
            r#"{"scenario":"connections","transport":"tls","clients":10000,"clients_logged_in":9000,"connect_s":3.5,"rss_per_conn_kib":40.0,"reached":9000,"reach_all_ms":60.0,"disconnected":0,"server_cpu_connect_pct":null,"bench_cpu_pct":10.0,"problem":"a | b"}"#,
            "\n"
        );
        let table = render(text).unwrap();
        assert!(
            table.contains("| fanout | deliveries/s | 8,474,576 |  | ≥ 8,000,000 | yes |"),
            "{table}"
        );
        assert!(table.contains("| fanout | deliveries lost | 0 |  | 0 | yes |"));
        assert!(table
            .contains("| connections (tls) | clients logged in | 9000 |  | = 10,000 | **no** |"));
        assert!(table.contains(
            "| connections (tls) | s to connect and log in all | 3.5 |  | < 2 | **no** |"
        ));
        assert!(table.contains("server RSS per idle connection, KiB | 40.0 |  | ≤ 48 | yes |"));
        assert!(
            table.contains("| connections (tls) | server CPU while connecting, % | – |  |  |  |")
        );
        assert!(table.contains("a \\| b"));
    }

    #[test]
    fn several_runs_give_the_median_and_the_range() {
        let text = concat!(
            r#"{"scenario":"latency","transport":"plaintext","p99_ms":1.4,"p999_ms":2.0,"lost":0}"#,
            "\n",
            r#"{"scenario":"latency","transport":"plaintext","p99_ms":0.9,"p999_ms":9.0,"lost":0}"#,
            "\n",
            r#"{"scenario":"latency","transport":"plaintext","p99_ms":0.8,"p999_ms":2.5,"lost":3}"#,
            "\n",
        );
        let table = render(text).unwrap();
        assert!(
            table.contains("| latency | p99 latency, ms | 0.9 | 0.8–1.4 | < 1 | yes |"),
            "{table}"
        );
        assert!(table.contains("| latency | p99.9 latency, ms | 2.5 | 2.0–9.0 | < 3 | yes |"));
        assert!(
            table.contains("| latency | deliveries lost | 3 | 0–3 | 0 | **no** |"),
            "a loss in any run shows: {table}"
        );
        assert_eq!(
            table.matches("| latency | p99 latency").count(),
            1,
            "one row per figure"
        );
    }

    #[test]
    fn websocket_runs_beside_tcp_runs() {
        let plain = concat!(
            r#"JSON {"scenario":"fanout","transport":"plaintext","clients":100,"senders":10,"deliveries_per_s":8000000,"server_cpu_ns_per_delivery":100.0,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","clients":100,"senders":10,"deliveries_per_s":6000000,"server_cpu_ns_per_delivery":120.0,"lost":0}"#,
            "\n",
        );
        let ws = concat!(
            r#"JSON {"scenario":"fanout","transport":"plaintext","websocket_share":0.5,"clients_websocket":50,"senders_websocket":5,"clients":100,"senders":10,"deliveries_per_s":6000000,"server_cpu_ns_per_delivery":150.0,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","websocket_share":0.5,"clients_websocket":50,"senders_websocket":5,"clients":100,"senders":10,"deliveries_per_s":5400000,"server_cpu_ns_per_delivery":132.0,"lost":4}"#,
            "\n",
        );
        let table = transports(plain, ws).unwrap();
        // Ratios per round: 0.75 and 0.9 → the lower middle, 0.75.
        assert!(
            table.contains("| fanout, 50 % WebSocket | deliveries/s | 6,000,000 | 6,000,000–8,000,000 | 5,400,000 | 5,400,000–6,000,000 | 0.75 |"),
            "{table}"
        );
        // 1.5 and 1.1 → 1.1.
        assert!(
            table.contains("| server CPU per delivery, ns | 100.0 | 100.0–120.0 | 132.0 | 132.0–150.0 | 1.10 |"),
            "{table}"
        );
        assert!(
            table.contains("| fanout, 50 % WebSocket | deliveries lost | 0 | 0–0 | 4 | 0–4 | – |"),
            "{table}"
        );
        assert!(table.contains("| clients over WebSocket | 0 | | 50 of 100 (5 of 10 senders) |"));
        // The plain runs' own table keeps them apart from the WebSocket ones.
        let both = render(&format!("{plain}{ws}")).unwrap();
        assert!(
            both.contains("| fanout | deliveries/s | 6,000,000 |"),
            "{both}"
        );
        assert!(both.contains("| fanout, 50 % WebSocket | deliveries/s | 5,400,000 |"));
    }

    #[test]
    fn ours_beside_redis_pairs_runs_in_order() {
        let ours = concat!(
            r#"JSON {"scenario":"fanout","transport":"plaintext","server":"chat-server","deliveries_per_s":9000000,"server_cpu_ns_per_delivery":100.0,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","server":"chat-server","deliveries_per_s":6000000,"server_cpu_ns_per_delivery":140.0,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","server":"chat-server","deliveries_per_s":8000000,"server_cpu_ns_per_delivery":110.0,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"latency","transport":"plaintext","p50_ms":0.5,"p99_ms":1.0,"p999_ms":4.0,"lost":0}"#,
            "\n",
        );
        let redis = concat!(
            r#"JSON {"scenario":"fanout","transport":"plaintext","server":"redis","deliveries_per_s":8000000,"server_cpu_ns_per_delivery":125.0,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","server":"redis","deliveries_per_s":5000000,"server_cpu_ns_per_delivery":200.0,"lost":2}"#,
            "\n",
            r#"JSON {"scenario":"fanout","transport":"plaintext","server":"redis","deliveries_per_s":8000000,"server_cpu_ns_per_delivery":100.0,"lost":0}"#,
            "\n",
        );
        let table = compare(ours, redis).unwrap();
        // Ratios per run: 1.125, 1.2, 1.0 → median 1.125 (not 8M ÷ 8M).
        assert!(
            table.contains(
                "| fanout | deliveries/s | 8,000,000 | 8,000,000 | 1.12 | ≥ 1.1× | yes |"
            ),
            "{table}"
        );
        // 0.8, 0.7, 1.1 → 0.8.
        assert!(
            table.contains(
                "| fanout | server CPU per delivery, ns | 110.0 | 125.0 | 0.80 | ≤ 0.9× | yes |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| fanout | deliveries lost | 0 | 2 | – | 0 | **no** |"),
            "{table}"
        );
        // No Redis runs of latency: no rows.
        assert!(!table.contains("| latency |"), "{table}");
    }

    /// Redis's TLS runs pair with our TLS runs only, not the plaintext ones.
    #[test]
    fn tls_connections_beside_redis_tls() {
        let ours = concat!(
            r#"JSON {"scenario":"connections","transport":"plaintext","connect_s":0.9,"rss_per_conn_kib":2.9}"#,
            "\n",
            r#"JSON {"scenario":"connections","transport":"tls","connect_s":3.0,"rss_per_conn_kib":12.0}"#,
            "\n",
            r#"JSON {"scenario":"connections","transport":"tls","connect_s":2.0,"rss_per_conn_kib":11.0}"#,
            "\n",
        );
        let redis = concat!(
            r#"JSON {"scenario":"connections","transport":"tls","server":"redis","connect_s":2.0,"rss_per_conn_kib":40.0}"#,
            "\n",
            r#"JSON {"scenario":"connections","transport":"tls","server":"redis","connect_s":4.0,"rss_per_conn_kib":50.0}"#,
            "\n",
        );
        let table = compare(ours, redis).unwrap();
        assert!(!table.contains("| connections (plaintext) |"), "{table}");
        // 3.0 ÷ 2.0 and 2.0 ÷ 4.0: the lower middle of 0.5, 1.5.
        assert!(
            table.contains(
                "| connections (tls) | s to connect and log in all | 2.0 | 2.0 | 0.50 | ≤ 1.0× | yes |"
            ),
            "{table}"
        );
        // 12 ÷ 40 = 0.3, 11 ÷ 50 = 0.22.
        assert!(
            table.contains("| connections (tls) | server RSS per idle connection, KiB | 11.0 | 40.0 | 0.22 | ≤ 0.5× | yes |"),
            "{table}"
        );
    }

    #[test]
    fn cluster_runs_beside_one_server() {
        let single = concat!(
            r#"JSON {"scenario":"latency","transport":"plaintext","messages_per_s":1000,"ack_p50_ms":0.5,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"latency","transport":"plaintext","messages_per_s":1000,"ack_p50_ms":0.4,"lost":0}"#,
            "\n",
            r#"JSON {"scenario":"latency","transport":"plaintext","websocket_share":0.5,"ack_p50_ms":9.0}"#,
            "\n",
        );
        let nodes = concat!(
            r#"JSON {"scenario":"latency","transport":"plaintext","nodes":3,"messages_per_s":1000,"ack_p50_ms":7.0,"cross_node_deliveries":666000,"lost":0,"problem":"n2 | slow"}"#,
            "\n",
            r#"JSON {"scenario":"latency","transport":"plaintext","nodes":3,"messages_per_s":1000,"ack_p50_ms":6.0,"cross_node_deliveries":666000,"lost":2}"#,
            "\n",
            r#"JSON {"scenario":"latency","transport":"plaintext","nodes":3,"messages_per_s":990,"ack_p50_ms":8.0,"lost":0}"#,
            "\n",
        );
        let table = cluster(single, nodes).unwrap();
        // Run k beside run k, the WebSocket run left out: 14 and 15 → 14.
        assert!(
            table.contains(
                "| latency, 3 nodes | p50 ack latency, ms | 0.4 | 0.4–0.5 | 7.0 | 6.0–8.0 | 14.00 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| latency, 3 nodes | cross-node deliveries | – |  | 666,000 | 666,000–666,000 | – |"),
            "{table}"
        );
        assert!(
            table.contains("| latency, 3 nodes | deliveries lost | 0 | 0–0 | 2 | 0–2 | – |"),
            "{table}"
        );
        assert!(
            table.contains("| latency, 3 nodes | runs (one, cluster) | 2 | | 3 | | unpaired |"),
            "{table}"
        );
        assert!(
            table.contains("| latency, 3 nodes | first problem seen | | | n2 \\| slow | | |"),
            "{table}"
        );
    }
}
