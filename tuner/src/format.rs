//! Output formats shared by every command: `table` (for people), `md` (for reports),
//! `csv` (for spreadsheets) and `json` (the serde form of the records themselves).

use std::fmt::Write as _;

use clap::ValueEnum;
use tabled::builder::Builder;
use tabled::settings::Style;

/// How a command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// JSON document.
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// Markdown table.
    Md,
}

/// Rows of text with a header: what table, csv and md render.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Column names.
    pub headers: Vec<String>,
    /// Cells, one vector per row.
    pub rows: Vec<Vec<String>>,
}

impl Rows {
    /// Rows with the given column names.
    pub fn new(headers: &[&str]) -> Rows {
        Rows {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Renders as `format` (which must not be JSON: JSON renders the records, not text).
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => {
                let mut out = String::new();
                for row in std::iter::once(&self.headers).chain(&self.rows) {
                    let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
                    let _ = writeln!(out, "{}", cells.join(","));
                }
                out
            }
            Format::Table | Format::Md | Format::Json => {
                // A cell must not break its table: a newline or (in Markdown) a `|` of a
                // label would.
                let md = format == Format::Md;
                let clean = |row: &Vec<String>| -> Vec<String> {
                    row.iter()
                        .map(|c| {
                            let c = c.replace(['\n', '\r', '\t'], " ");
                            if md {
                                c.replace('|', "\\|")
                            } else {
                                c
                            }
                        })
                        .collect()
                };
                let mut b = Builder::default();
                b.push_record(clean(&self.headers));
                for r in &self.rows {
                    b.push_record(clean(r));
                }
                let mut t = b.build();
                if format == Format::Md {
                    t.with(Style::markdown());
                } else {
                    t.with(Style::sharp());
                }
                format!("{t}\n")
            }
        }
    }
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// A number with 3 significant-ish digits for tables.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A roofline fraction as a percentage for people, `-` when unknown; above 100% it says the
/// figure is a probe error, not a result.
pub fn roofline(fraction: Option<f64>) -> String {
    match fraction {
        None => "-".into(),
        Some(f) if f > 1.0 => format!("{:.0}% (over its ceiling: probe error)", 100.0 * f),
        Some(f) => format!("{:.0}%", 100.0 * f),
    }
}

/// `n` and the noun that agrees with it: `count(1, "file")` is "1 file", `count(3, "file")`
/// "3 files" (regular plurals only).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Seconds with a unit that keeps 3 digits (scientific beyond 10^4 s).
pub fn secs(s: f64) -> String {
    if !s.is_finite() {
        "-".into()
    } else if s >= 1e4 {
        format!("{s:.3e} s")
    } else if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} us", s * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_text_format() {
        let mut r = Rows::new(&["a", "b"]);
        r.push(vec!["1".into(), "x,y".into()]);
        assert_eq!(r.render(Format::Csv), "a,b\n1,\"x,y\"\n");
        assert!(r.render(Format::Md).contains("| a | b"));
        assert!(r.render(Format::Table).contains("x,y"));
        assert_eq!(num(123.456), "123");
        assert_eq!(num(1.2345), "1.23");
        assert_eq!(secs(0.0015), "1.500 ms");
    }

    #[test]
    fn cells_cannot_break_their_table_and_numbers_stay_short() {
        let mut r = Rows::new(&["label"]);
        r.push(vec!["lab|box\nsecond line".into()]);
        let md = r.render(Format::Md);
        assert!(md.contains("lab\\|box second line"), "{md}");
        assert_eq!(md.trim().lines().count(), 3, "{md}");
        assert_eq!(r.render(Format::Table).trim().lines().count(), 5);
        assert!(secs(1e308).len() < 16, "{}", secs(1e308));
        assert_eq!(secs(f64::NAN), "-");
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(3, "machine"), "3 machines");
        assert_eq!(roofline(Some(0.5)), "50%");
        assert_eq!(roofline(None), "-");
        assert!(roofline(Some(1.35)).contains("probe error"));
    }
}
