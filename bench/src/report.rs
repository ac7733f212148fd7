//! The result of one run: a table for people, then one line `JSON {…}` for
//! scripts, built from the same rows in the same order.

use serde_json::Value;

pub struct Report {
    rows: Vec<(String, Value, &'static str)>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        let mut report = Report { rows: Vec::new() };
        report.add("scenario", scenario, "");
        report
    }

    /// Adds a figure; `unit` is shown in the table only (the key says it for
    /// scripts: `_ms`, `_s`, `_pct`, `_bytes`).
    pub fn add(&mut self, key: &str, value: impl Into<Value>, unit: &'static str) {
        self.rows.push((key.to_string(), value.into(), unit));
    }

    /// A float rounded to `decimals`, as JSON.
    pub fn add_f(&mut self, key: &str, value: f64, decimals: i32, unit: &'static str) {
        let scale = 10f64.powi(decimals);
        let rounded = (value * scale).round() / scale;
        self.add(key, rounded, unit);
    }

    /// The human table.
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|(k, ..)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value, unit) in &self.rows {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key:<width$}  {shown} {unit}\n"));
        }
        out
    }

    /// `JSON {…}` on one line, keys in the table's order.
    pub fn json_line(&self) -> String {
        let fields: Vec<String> = self
            .rows
            .iter()
            .map(|(k, v, _)| format!("{}:{v}", Value::from(k.as_str())))
            .collect();
        format!("JSON {{{}}}", fields.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_keeps_order_and_parses() {
        let mut r = Report::new("fanout");
        r.add("clients", 100, "");
        r.add_f("p99_ms", 0.123_456, 3, "ms");
        r.add("problem", Value::Null, "");
        let line = r.json_line();
        assert!(line.starts_with(r#"JSON {"scenario":"fanout","clients":100,"p99_ms":0.123"#));
        let v: Value = serde_json::from_str(line.strip_prefix("JSON ").unwrap()).unwrap();
        assert_eq!(v["p99_ms"], 0.123);
        assert!(r.table().contains("p99_ms"));
    }
}
