//! The board's HTML pages, the same for the server and the static report: pure functions
//! from the [`view`] to a document.
//!
//! Everything a submitter wrote (labels, CPU and GPU names, kernel ids, configs, ids) goes
//! through [`escape`], in text and in attribute values alike. Pages carry no script, and a
//! Content-Security-Policy that forbids any, so that even text that slipped through could
//! not run.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ktune_core::cache::CacheLevel;
use ktune_core::result::Gpu;
use ktune_core::PerThreads;

use crate::plot::{roofline_svg, roofs, ComputeRoof, MemoryRoof, Point};
use crate::view::{self, Entry, RankKey, Row};

/// Where links point: the live server (`/rank/SLUG`, `/machine/ID`,
/// `/machine/ID/roofline.svg`, `/`) or a static site (relative files: `index.html`,
/// `rank/SLUG.html`, `machine/ID.html`, `machine/ID.svg`, with `../` prefixes from pages in
/// subfolders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Absolute paths of the HTTP server.
    Server,
    /// Relative file names of the static report.
    Static,
}

/// The text with `&`, `<`, `>`, `"` and `'` replaced by entities: safe in HTML text and in
/// quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The leaderboard: what the board is, its counts, every problem with its best result
/// (linking to the problem's ranking) and every machine's newest submission (linking to
/// its page).
pub fn index(site: Site, entries: &[Entry]) -> String {
    let links = Links::new(site, 0);
    let keys = view::keys(entries);
    let machines = view::machines(entries);
    let results: usize = entries.iter().map(|e| e.db.results.len()).sum();
    let mut b = String::new();
    b.push_str("<h1>ktune leaderboard</h1>\n");
    b.push_str(
        "<p>Tuned kernel results submitted from many machines. Each problem (family, element \
         type, shape) ranks its results twice: by throughput, and by the fraction of the \
         roofline that its own machine's probe measured, which compares machines of any \
         size. A fraction above 100% means the probe underestimated the machine.</p>\n",
    );
    let _ = writeln!(
        b,
        "<p id=\"counts\">{}, {}, {}, {}.</p>",
        plural(keys.len(), "problem"),
        plural(machines.len(), "machine"),
        plural(entries.len(), "submission"),
        plural(results, "result")
    );

    b.push_str("<h2>Problems</h2>\n");
    if keys.is_empty() {
        b.push_str("<p>No results yet.</p>\n");
    }
    b.push_str("<ul id=\"problems\">\n");
    for key in &keys {
        let rows = view::rank(entries, key);
        let _ = write!(
            b,
            "<li><a href=\"{}\">{}</a>",
            links.rank(key),
            escape(&key.title())
        );
        if let Some(best) = rows.first() {
            let _ = write!(
                b,
                ": best {} GFLOP/s on <a href=\"{}\">{}</a>",
                fmt_num(best.gflops),
                links.machine(&best.machine_id),
                escape(display_label(&best.label, &best.machine_id))
            );
            if let Some(f) = best.fraction {
                let _ = write!(b, ", {} of its roofline", fmt_fraction(f));
            }
        }
        let _ = writeln!(b, " ({})</li>", plural(rows.len(), "result"));
    }
    b.push_str("</ul>\n");

    b.push_str("<h2>Machines</h2>\n");
    if machines.is_empty() {
        b.push_str("<p>No machines yet.</p>\n");
    }
    b.push_str("<ul id=\"machines\">\n");
    for e in &machines {
        let hw = &e.db.machine.hardware;
        let _ = write!(
            b,
            "<li><a href=\"{}\">{}</a>: {}",
            links.machine(&hw.id),
            escape(display_label(&e.db.machine.label, &hw.id)),
            escape(&hw.cpu_model)
        );
        if let Some(g) = &hw.accelerator {
            let _ = write!(b, ", {}", escape(&g.name));
        }
        let _ = writeln!(
            b,
            "; {}, received {}</li>",
            plural(e.db.results.len(), "result"),
            fmt_date(e.received)
        );
    }
    b.push_str("</ul>\n");
    page(&links, "ktune leaderboard", &b)
}

/// The ranking of one problem: a table by throughput (`id="by-throughput"`, fastest
/// first) and one by fraction of each machine's own roofline (`id="by-fraction"`).
pub fn ranking(site: Site, key: &RankKey, rows: &[Row]) -> String {
    let links = Links::new(site, 1);
    let mut by_gflops = rows.to_vec();
    // Stable: rows that tie keep the order they came in (view::rank breaks ties).
    by_gflops.sort_by(|a, b| b.gflops.total_cmp(&a.gflops));
    let by_fraction = view::rank_by_fraction(rows);
    let title = key.title();

    let mut b = String::new();
    let _ = writeln!(b, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        b,
        "<p>{} of {} on every machine, backend and thread budget.</p>",
        plural(rows.len(), "result"),
        escape(&title)
    );
    b.push_str("<h2>By throughput</h2>\n");
    rows_table(&mut b, &links, "by-throughput", &by_gflops);
    b.push_str("<h2>By fraction of the machine's own roofline</h2>\n");
    rows_table(&mut b, &links, "by-fraction", &by_fraction);
    page(&links, &title, &b)
}

/// A machine's page, from its (newest) submission: its hardware facts, the ceilings its
/// probe measured, its results (each linking to the problem's ranking) and its roofline
/// chart when it has one.
pub fn machine(site: Site, e: &Entry) -> String {
    let links = Links::new(site, 1);
    let m = &e.db.machine;
    let hw = &m.hardware;
    let name = display_label(&m.label, &hw.id);

    let mut b = String::new();
    let _ = writeln!(b, "<h1>{}</h1>", escape(name));
    b.push_str("<h2>Hardware</h2>\n<table id=\"facts\">\n");
    let mut fact = |k: &str, v: &str| {
        let _ = writeln!(b, "<tr><th>{}</th><td>{}</td></tr>", k, escape(v));
    };
    fact("Machine id", &hw.id);
    fact("Label", &m.label);
    fact("CPU vendor", &hw.cpu_vendor);
    fact("CPU model", &hw.cpu_model);
    fact("Cores", &hw.cores.to_string());
    fact("Threads", &hw.threads.to_string());
    fact("Features", &hw.features.join(", "));
    fact("L1d", &fmt_cache(&hw.caches.l1d));
    fact("L2", &fmt_cache(&hw.caches.l2));
    fact(
        "L3",
        &hw.caches.l3.as_ref().map_or("none".into(), fmt_cache),
    );
    fact(
        "Memory",
        &hw.memory_bytes.map_or("unknown".into(), fmt_bytes),
    );
    fact("OS", &hw.os);
    fact(
        "Accelerator",
        &hw.accelerator.as_ref().map_or("none".into(), fmt_gpu),
    );
    if !m.gpus.is_empty() {
        let gpus: Vec<String> = m.gpus.iter().map(fmt_gpu).collect();
        fact("GPUs", &gpus.join("; "));
    }
    fact("Submission", &e.id);
    fact("Received", &fmt_date(e.received));
    b.push_str("</table>\n");

    b.push_str("<h2>Measured ceilings</h2>\n");
    match &m.peaks {
        None => b.push_str("<p id=\"ceilings\">not probed</p>\n"),
        Some(p) => {
            let tables = [
                ("fma", "GFLOP/s", &p.fma_gflops),
                ("int8", "GOP/s", &p.int8_gops),
                ("", "GOP/s", &p.other_gops),
                ("bandwidth", "GB/s", &p.bandwidth_gbs),
            ];
            let threads: BTreeSet<usize> = tables
                .iter()
                .flat_map(|(_, _, t)| t.values().flat_map(|per| per.keys().copied()))
                .collect();
            b.push_str("<table id=\"ceilings\">\n<tr><th>ceiling</th><th>unit</th>");
            for t in &threads {
                let _ = write!(b, "<th>{}</th>", plural(*t, "thread"));
            }
            b.push_str("</tr>\n");
            for (kind, unit, table) in tables {
                for (name, per) in table {
                    let name = format!("{kind} {name}");
                    let _ = write!(b, "<tr><td>{}</td><td>{unit}</td>", escape(name.trim()));
                    for t in &threads {
                        let v = per.get(t).map_or(String::new(), |v| fmt_num(*v));
                        let _ = write!(b, "<td class=\"num\">{v}</td>");
                    }
                    b.push_str("</tr>\n");
                }
            }
            b.push_str("</table>\n");
            let _ = writeln!(b, "<p>Probed {}.</p>", fmt_date(p.probed_at));
        }
    }

    b.push_str("<h2>Results</h2>\n<table id=\"results\">\n<tr><th>problem</th>");
    b.push_str(
        "<th>backend</th><th>threads</th><th>kernel</th><th>config</th><th>GFLOP/s</th>\
         <th>GB/s</th><th>fraction</th><th>ceiling</th></tr>\n",
    );
    for r in &e.db.results {
        let key = RankKey::of(r);
        let row = view::row(e, r);
        let _ = write!(
            b,
            "<tr class=\"row\"><td class=\"problem\"><a href=\"{}\">{}</a></td>",
            links.rank(&key),
            escape(&key.title())
        );
        measured_cells(&mut b, &row);
        b.push_str("</tr>\n");
    }
    b.push_str("</table>\n");

    if has_chart(e) {
        let _ = writeln!(
            b,
            "<h2>Roofline</h2>\n<p><img id=\"roofline\" src=\"{}\" alt=\"roofline of {}\"></p>",
            links.svg(&hw.id),
            escape(name)
        );
    }
    page(&links, name, &b)
}

/// The roofline chart of a machine: the roofs its peaks give at its largest probed thread
/// count, with its results of that thread budget as points (intensity = GFLOP/s / GB/s;
/// results with no traffic or non-finite values are left out; those above their ceiling
/// are marked). `None` without peaks or without roofs.
pub fn machine_svg(e: &Entry) -> anyhow::Result<Option<String>> {
    let Some((threads, memory, compute)) = chart_roofs(e) else {
        return Ok(None);
    };
    let points: Vec<Point> =
        e.db.results
            .iter()
            .filter(|r| r.threads == threads)
            .filter(|r| r.gbs.is_finite() && r.gbs > 0.0 && r.gflops.is_finite() && r.gflops > 0.0)
            .map(|r| Point {
                label: format!("{} {}", r.kernel, r.shape),
                intensity: r.gflops / r.gbs,
                gflops: r.gflops,
                over: r.over_ceiling || r.roofline_fraction.is_some_and(|f| f > 1.0),
            })
            .filter(|p| p.intensity.is_finite() && p.intensity > 0.0)
            .collect();
    let hw = &e.db.machine.hardware;
    let title = format!(
        "{} ({}): roofline at {}",
        display_label(&e.db.machine.label, &hw.id),
        hw.id,
        plural(threads, "thread")
    );
    roofline_svg(&title, &memory, &compute, &points).map(Some)
}

/// Whether [`machine_svg`] draws a chart for `e` (it has peaks that give roofs), so that
/// pages link to one only where there is one.
pub fn has_chart(e: &Entry) -> bool {
    chart_roofs(e).is_some()
}

/// A page saying that `what` is not on the board.
pub fn not_found(site: Site, what: &str) -> String {
    let links = Links::new(site, 0);
    let body = format!(
        "<h1>Not found</h1>\n<p>{} is not on the board.</p>\n<p><a href=\"{}\">Back to the leaderboard</a></p>\n",
        escape(what),
        links.index()
    );
    page(&links, "Not found", &body)
}

/// The largest probed thread count of `e`'s peaks and the usable roofs there.
fn chart_roofs(e: &Entry) -> Option<(usize, Vec<MemoryRoof>, Vec<ComputeRoof>)> {
    let peaks = e.db.machine.peaks.as_ref()?;
    let tables: [&std::collections::BTreeMap<String, PerThreads>; 4] = [
        &peaks.fma_gflops,
        &peaks.int8_gops,
        &peaks.other_gops,
        &peaks.bandwidth_gbs,
    ];
    let threads = tables
        .iter()
        .flat_map(|t| t.values().flat_map(|per| per.keys().copied()))
        .max()?;
    let probe = view::peaks_probe(e)?;
    let (mut memory, mut compute) = roofs(&probe, threads);
    // A roof the chart cannot draw on log axes is left out rather than failing the chart.
    let usable = |v: f64| v.is_finite() && v > 0.0;
    memory.retain(|r| usable(r.gbs));
    compute.retain(|r| usable(r.gflops));
    (!memory.is_empty() || !compute.is_empty()).then_some((threads, memory, compute))
}

/// The links of one page: `depth` is how many folders below the site's root it lies (for
/// relative links of the static site). Every link is escaped, ready for an attribute.
struct Links {
    site: Site,
    up: &'static str,
}

impl Links {
    fn new(site: Site, depth: usize) -> Links {
        let up = if depth > 0 { "../" } else { "" };
        Links { site, up }
    }

    fn index(&self) -> String {
        match self.site {
            Site::Server => "/".into(),
            Site::Static => format!("{}index.html", self.up),
        }
    }

    fn rank(&self, key: &RankKey) -> String {
        let slug = segment(&key.slug());
        match self.site {
            Site::Server => format!("/rank/{slug}"),
            Site::Static => format!("{}rank/{slug}.html", self.up),
        }
    }

    fn machine(&self, id: &str) -> String {
        let id = segment(id);
        match self.site {
            Site::Server => format!("/machine/{id}"),
            Site::Static => format!("{}machine/{id}.html", self.up),
        }
    }

    fn svg(&self, id: &str) -> String {
        let id = segment(id);
        match self.site {
            Site::Server => format!("/machine/{id}/roofline.svg"),
            Site::Static => format!("{}machine/{id}.svg", self.up),
        }
    }
}

/// A URL path segment: anything but letters, digits and `-._~,` percent-encoded (so no
/// `/`, `?` or `#` can change where it points), then escaped for an attribute.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b',') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    escape(&out)
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}\
header{margin-bottom:1em}table{border-collapse:collapse;margin:0.5em 0}\
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.num,td.gflops,td.gbs,td.fraction,td.threads,td.rank{text-align:right}\
td.config{font-family:monospace;font-size:90%;word-break:break-all;max-width:16em}.over{color:#b00;font-weight:bold}\
img{max-width:100%}";

/// The whole document around `body`.
fn page(links: &Links, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><a href=\"{}\">ktune leaderboard</a></header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title),
        links.index()
    )
}

/// A ranking table: one `<tr class="row">` per row.
fn rows_table(b: &mut String, links: &Links, id: &str, rows: &[Row]) {
    let _ = writeln!(b, "<table id=\"{id}\">");
    b.push_str(
        "<tr><th>#</th><th>machine</th><th>CPU</th><th>GPU</th><th>backend</th>\
         <th>threads</th><th>kernel</th><th>config</th><th>GFLOP/s</th><th>GB/s</th>\
         <th>fraction</th><th>ceiling</th></tr>\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            b,
            "<tr class=\"row\"><td class=\"rank\">{}</td><td class=\"machine\"><a href=\"{}\">{}</a></td>\
             <td class=\"cpu\">{}</td><td class=\"gpu\">{}</td>",
            i + 1,
            links.machine(&r.machine_id),
            escape(display_label(&r.label, &r.machine_id)),
            escape(&r.cpu),
            escape(r.gpu.as_deref().unwrap_or(""))
        );
        measured_cells(b, r);
        b.push_str("</tr>\n");
    }
    b.push_str("</table>\n");
    if rows.is_empty() {
        b.push_str("<p>No results.</p>\n");
    }
}

/// The cells from the backend to the ceiling.
fn measured_cells(b: &mut String, r: &Row) {
    let _ = write!(
        b,
        "<td class=\"backend\">{}</td><td class=\"threads\">{}</td><td class=\"kernel\">{}</td>\
         <td class=\"config\">{}</td><td class=\"gflops\">{}</td><td class=\"gbs\">{}</td>",
        escape(&r.backend),
        r.threads,
        escape(&r.kernel),
        escape(&r.config),
        fmt_num(r.gflops),
        fmt_num(r.gbs)
    );
    match r.fraction {
        Some(f) if f > 1.0 => {
            let _ = write!(
                b,
                "<td class=\"fraction over\" title=\"above its own roofline: the probe \
                 underestimated this machine\">{} (probe error)</td>",
                fmt_fraction(f)
            );
        }
        Some(f) => {
            let _ = write!(b, "<td class=\"fraction\">{}</td>", fmt_fraction(f));
        }
        None => b.push_str("<td class=\"fraction\"></td>"),
    }
    let _ = write!(b, "<td class=\"ceiling\">{}</td>", escape(&r.ceiling));
}

/// The label, or the id when the label is empty.
fn display_label<'a>(label: &'a str, id: &'a str) -> &'a str {
    if label.trim().is_empty() {
        id
    } else {
        label
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// A value to three significant digits, whole numbers from 100 up: `1234`, `123`, `12.3`,
/// `1.23`, `0.123`.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 100.0 {
        return format!("{v:.0}");
    }
    if v.abs() < 1e-3 {
        return format!("{v:.2e}");
    }
    let digits = |a: f64| a.abs().log10().floor() as i32;
    // Rounded first, so that 99.96 reads 100 rather than 100.0.
    let scale = 10f64.powi(digits(v) - 2);
    let rounded = (v / scale).round() * scale;
    let decimals = (2 - digits(rounded)).clamp(0, 5) as usize;
    format!("{rounded:.decimals$}")
}

/// A fraction as a whole percentage: `87%`.
fn fmt_fraction(f: f64) -> String {
    if f.is_finite() {
        format!("{:.0}%", f * 100.0)
    } else {
        "n/a".into()
    }
}

fn fmt_bytes(b: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else if b >= MIB {
        format!("{} MiB", trim_zeros(fmt_num(b as f64 / MIB as f64)))
    } else if b >= KIB {
        format!("{} KiB", trim_zeros(fmt_num(b as f64 / KIB as f64)))
    } else {
        format!("{b} B")
    }
}

/// `48.0` as `48`, `1.50` as `1.5`.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn fmt_cache(c: &CacheLevel) -> String {
    format!(
        "{}, {}-way, {} B lines, shared by {}",
        fmt_bytes(c.size as u64),
        c.ways,
        c.line,
        plural(c.shared_by, "thread")
    )
}

fn fmt_gpu(g: &Gpu) -> String {
    let mut parts = vec![g.name.clone()];
    parts.extend(g.kind.clone());
    parts.extend(g.api.clone());
    parts.extend(g.memory_bytes.map(fmt_bytes));
    parts.extend(g.driver.as_ref().map(|d| format!("driver {d}")));
    parts.extend(
        g.compute_capability
            .as_ref()
            .map(|c| format!("compute capability {c}")),
    );
    if g.software {
        parts.push("software implementation".into());
    }
    parts.join(", ")
}

/// Seconds since the Unix epoch as a UTC date, `2026-11-22` (`unknown` for 0).
fn fmt_date(secs: u64) -> String {
    if secs == 0 {
        return "unknown".into();
    }
    // Days to a civil date (H. Hinnant's algorithm), in i64 so no input can overflow.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::entries_from_dir;
    use std::path::Path;

    fn shipped() -> Vec<Entry> {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../results/db"));
        let entries = entries_from_dir(dir).unwrap();
        assert!(!entries.is_empty(), "no shipped databases in {dir:?}");
        entries
    }

    const LABEL: &str = "<script>alert(\"x\")</script> & 'q'";
    const CPU: &str = "\"><img src=x onerror=alert(1)>";

    /// A shipped database under a hostile label and CPU model (another machine, so that
    /// it has its own page), received after the shipped one.
    fn hostile(base: &Entry) -> Entry {
        let mut db = base.db.clone();
        db.machine.label = LABEL.into();
        db.machine.hardware.cpu_model = CPU.into();
        db.machine.hardware.id = db.machine.hardware.compute_id();
        for r in &mut db.results {
            r.gflops *= 0.5;
        }
        Entry {
            id: crate::report::submission_id(&db),
            received: base.received + 1,
            db,
        }
    }

    /// The text between `<` and `>`: the tags of a page.
    pub(crate) fn tags(page: &str) -> impl Iterator<Item = &str> {
        page.split('<')
            .skip(1)
            .map(|s| s.split_once('>').map_or(s, |(tag, _)| tag))
    }

    /// No tag of `page` is a script, or carries an event handler or an injected image.
    pub(crate) fn assert_no_live_markup(page: &str) {
        for tag in tags(page) {
            let t = tag.to_ascii_lowercase();
            assert!(!t.starts_with("script"), "script tag <{tag}> in\n{page}");
            assert!(!t.contains("onerror"), "handler in <{tag}> in\n{page}");
            assert!(!t.contains("src=x"), "injected image <{tag}> in\n{page}");
        }
        assert!(!page.contains("<script") && !page.contains("<img src=x"));
    }

    fn all_pages(entries: &[Entry]) -> Vec<String> {
        let mut pages = Vec::new();
        for site in [Site::Server, Site::Static] {
            pages.push(index(site, entries));
            for key in view::keys(entries) {
                pages.push(ranking(site, &key, &view::rank(entries, &key)));
            }
            for e in entries {
                pages.push(machine(site, e));
            }
            pages.push(not_found(site, CPU));
        }
        pages
    }

    #[test]
    fn escapes_everything_a_submitter_wrote() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let mut entries = shipped();
        entries.push(hostile(&entries[0]));
        let mut label_seen = false;
        for p in all_pages(&entries) {
            assert_no_live_markup(&p);
            assert!(p.contains("Content-Security-Policy"));
            assert!(p.contains("<meta charset=\"utf-8\">"));
            label_seen |=
                p.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;");
        }
        assert!(label_seen, "the escaped label is on no page");
        let e = entries.last().unwrap();
        let page = machine(Site::Server, e);
        assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        let svg = machine_svg(e).unwrap().unwrap();
        assert!(!svg.contains("<script") && !svg.contains("<img"));
    }

    fn gflops_column(page: &str, table: &str) -> Vec<f64> {
        let start = page.find(&format!("<table id=\"{table}\">")).unwrap();
        let end = start + page[start..].find("</table>").unwrap();
        page[start..end]
            .split("<td class=\"gflops\">")
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].parse().unwrap())
            .collect()
    }

    #[test]
    fn ranking_orders_rows_by_throughput_and_by_fraction() {
        let mut entries = shipped();
        entries.push(hostile(&entries[0]));
        for key in view::keys(&entries) {
            let mut rows = view::rank(&entries, &key);
            assert!(rows.len() >= 2);
            rows.reverse();
            let page = ranking(Site::Server, &key, &rows);
            let g = gflops_column(&page, "by-throughput");
            assert_eq!(g.len(), rows.len());
            assert!(g.windows(2).all(|w| w[0] >= w[1]), "{g:?}");
            assert_eq!(gflops_column(&page, "by-fraction").len(), rows.len());
            assert_eq!(page.matches("<tr class=\"row\">").count(), 2 * rows.len());
            assert_eq!(
                page.matches("<td class=\"machine\"><a href=\"/machine/")
                    .count(),
                2 * rows.len()
            );
        }
    }

    #[test]
    fn marks_fractions_over_one_as_probe_errors() {
        let mut entries = shipped();
        entries[0].db.results[0].roofline_fraction = Some(1.35);
        let key = RankKey::of(&entries[0].db.results[0]);
        let page = ranking(Site::Static, &key, &view::rank(&entries, &key));
        assert!(page.contains("135% (probe error)"));
        assert!(page.contains("href=\"../machine/"));
        assert!(machine_svg(&entries[0]).unwrap().is_some());
    }

    #[test]
    fn index_lists_problems_and_machines() {
        let entries = shipped();
        let page = index(Site::Server, &entries);
        assert!(page.contains("<ul id=\"problems\">") && page.contains("<ul id=\"machines\">"));
        for key in view::keys(&entries) {
            assert!(page.contains(&format!("href=\"/rank/{}\"", key.slug())));
        }
        for e in view::machines(&entries) {
            assert!(page.contains(&format!("href=\"/machine/{}\"", e.db.machine.hardware.id)));
        }
        let page = index(Site::Static, &[]);
        assert!(page.contains("No results yet"));
    }

    #[test]
    fn machine_page_and_chart() {
        let entries = shipped();
        let e = entries
            .iter()
            .find(|e| e.db.machine.peaks.is_some())
            .expect("a shipped machine with peaks");
        let page = machine(Site::Server, e);
        let svg_link = format!("/machine/{}/roofline.svg", e.db.machine.hardware.id);
        assert!(page.contains(&svg_link));
        assert!(page.contains("<table id=\"ceilings\">"));
        let svg = machine_svg(e).unwrap().unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));

        let mut bare = e.clone();
        bare.db.machine.peaks = None;
        assert!(machine_svg(&bare).unwrap().is_none());
        let page = machine(Site::Static, &bare);
        assert!(page.contains("not probed") && !page.contains("<img"));
    }

    #[test]
    fn formats_numbers() {
        let shown: Vec<String> = [1234.4, 123.4, 12.34, 1.234, 0.1234, 99.96, 0.0]
            .map(fmt_num)
            .to_vec();
        assert_eq!(shown, ["1234", "123", "12.3", "1.23", "0.123", "100", "0"]);
        assert_eq!(fmt_num(f64::NAN), "n/a");
        assert_eq!(fmt_fraction(0.8712), "87%");
        assert_eq!(fmt_bytes(48 << 10), "48 KiB");
        assert_eq!(fmt_bytes(3 << 19), "1.5 MiB");
        assert_eq!(fmt_date(1_795_315_458), "2026-11-22");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }
}
