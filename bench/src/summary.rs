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

/// The markdown table for the runs given as `JSON {…}` (or bare JSON) lines.
pub fn render(text: &str) -> anyhow::Result<String> {
    let mut out =
        String::from("| scenario | figure | measured | target | met |\n|---|---|---:|---|---|\n");
    for line in text.lines() {
        let line = line.trim();
        let json = line.strip_prefix("JSON ").unwrap_or(line);
        if !json.starts_with('{') {
            continue;
        }
        let run: Value = serde_json::from_str(json)?;
        let scenario = run["scenario"].as_str().unwrap_or("?");
        let transport = run["transport"].as_str().unwrap_or("plaintext");
        let name = match scenario {
            "connections" => format!("connections ({transport})"),
            other => other.to_string(),
        };
        for (key, label, goal) in rows(scenario, transport) {
            let value = &run[key];
            out.push_str(&format!(
                "| {name} | {label} | {} | {} | {} |\n",
                show(value),
                target_text(goal, &run),
                met(goal, value, &run)
            ));
        }
        if let Some(problem) = run["problem"].as_str() {
            let problem = problem.replace('|', "\\|");
            out.push_str(&format!(
                "| {name} | first problem seen | {problem} | | |\n"
            ));
        }
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
            table.contains("| fanout | deliveries/s | 8,474,576 | ≥ 8,000,000 | yes |"),
            "{table}"
        );
        assert!(table.contains("| fanout | deliveries lost | 0 | 0 | yes |"));
        assert!(
            table.contains("| connections (tls) | clients logged in | 9000 | = 10,000 | **no** |")
        );
        assert!(table
            .contains("| connections (tls) | s to connect and log in all | 3.5 | < 2 | **no** |"));
        assert!(table.contains("server RSS per idle connection, KiB | 40.0 | ≤ 48 | yes |"));
        assert!(table.contains("| connections (tls) | server CPU while connecting, % | – |  |  |"));
        assert!(table.contains("a \\| b"));
    }
}
