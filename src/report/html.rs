//! The HTML report: one self-contained page, to be opened inside the air
//! gap and filed as evidence.
//!
//! Guarantees:
//! - nothing is fetched: no external font, image, style sheet or script, and
//!   a `Content-Security-Policy` (`default-src 'none'`) that lets only this
//!   page's own style and script run, each by its SHA-256, so that even a
//!   string that escaped its escaping could not load or run anything;
//! - every string from the report (file names from a hostile archive,
//!   server answers) is HTML-escaped, control characters written as `\xNN`;
//! - the verdict and counts come first, then the failing findings grouped by
//!   code with their remediation, the flow matrix as coloured grids (each
//!   cell's state in `data-state`), the images and their signers, the
//!   external hosts the release's text names, the passing findings
//!   collapsed per family, the hosts, and the inputs with their SHA-256
//!   and the version;
//! - filters by status, family and host work in the page (without the
//!   script, everything is shown); it prints on A4 with every section open.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use base64::Engine as _;
use sha2::Digest as _;

use super::human::shown;
use super::matrix::{CellState, Matrix};
use super::Report;
use crate::finding::{Finding, Status};

/// Text for HTML content or a quoted attribute value.
fn esc(s: &str) -> String {
    let s = shown(s);
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

const STYLE: &str = r#"
:root { --pass:#1b7f3b; --warn:#a15c00; --fail:#b3261e; --skip:#666; --line:#d0d0d0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px 24px; color: #1a1a1a; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.verdict { display: inline-block; font-size: 22px; font-weight: 700; padding: 6px 14px; border-radius: 6px; color: #fff; margin: 8px 0; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.counts span { display: inline-block; margin-right: 14px; font-weight: 600; }
.st { font-weight: 700; text-transform: uppercase; font-size: 12px; }
.st.pass { color: var(--pass); } .st.warn { color: var(--warn); } .st.fail { color: var(--fail); } .st.skip { color: var(--skip); }
.meta { color: #444; margin: 2px 0; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.target, td.msg { overflow-wrap: anywhere; }
.fix { margin: 2px 0 6px; padding: 6px 10px; background: #fff7e6; border-left: 4px solid var(--warn); }
#filters { position: sticky; top: 0; background: #fafafa; border: 1px solid var(--line); padding: 6px 10px; margin: 12px 0; z-index: 1; }
#filters label { margin-right: 12px; }
details { border: 1px solid var(--line); border-radius: 4px; margin: 6px 0; padding: 2px 8px; }
details > summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
.grids { display: flex; flex-wrap: wrap; gap: 10px 18px; }
.grid { width: auto; margin: 0; }
.grid caption { text-align: left; font-weight: 600; padding: 2px 0; }
.grid th, .grid td { text-align: center; min-width: 56px; font-size: 12px; }
.grid th.row { text-align: left; }
td.cell, .swatch { color: #fff; font-weight: 600; }
.s-open { background: #2e7d32; } .s-blocked { background: #5c8a99; }
.s-closed { background: #e65100; } .s-filtered { background: #b71c1c; } .s-not-blocked { background: #6a1b9a; }
.s-mixed { background: #b71c1c; } .s-ok { background: #2e7d32; }
td.none { background: #f5f5f5; color: #999; }
.legend span.swatch { display: inline-block; padding: 1px 8px; border-radius: 3px; margin-right: 4px; }
.legend li { list-style: none; margin: 2px 0; }
.legend { padding: 0; }
td.dim { opacity: .25; }
[hidden] { display: none !important; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  #filters { display: none; }
  h2 { break-after: avoid; }
  tr, .grid, .fix { break-inside: avoid; }
  details { border: none; padding: 0; }
  details > summary { list-style: none; }
  td.cell, .swatch, .verdict, .s-open, .s-blocked, .s-closed, .s-filtered, .s-not-blocked, .s-ok, .s-mixed { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .grid th, .grid td { min-width: 0; padding: 2px 3px; font-size: 8pt; }
}
"#;

const SCRIPT: &str = r#"
(function () {
  var form = document.getElementById('filters');
  function apply() {
    var want = {};
    form.querySelectorAll('input[name=status]').forEach(function (i) { want[i.value] = i.checked; });
    var family = form.querySelector('select[name=family]').value;
    var host = form.querySelector('select[name=host]').value;
    document.querySelectorAll('tr.finding').forEach(function (r) {
      r.hidden = !(want[r.dataset.status] && (!family || r.dataset.family === family) && (!host || r.dataset.host === host));
    });
    document.querySelectorAll('.group').forEach(function (g) {
      g.hidden = !g.querySelector('tr.finding:not([hidden])');
    });
    document.querySelectorAll('td.cell').forEach(function (c) {
      c.classList.toggle('dim', !!host && c.dataset.source !== host && c.dataset.destination !== host);
    });
  }
  form.addEventListener('change', apply);
  apply();
  window.addEventListener('beforeprint', function () {
    document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  });
  document.body.setAttribute('data-ready', '1');
})();
"#;

/// `'sha256-…'` of an inline element's text, for the CSP.
fn csp_hash(text: &str) -> String {
    let d = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(d)
    )
}

/// The policy the page carries: nothing may be fetched, only this page's
/// own style and script run.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    )
}

fn status_label(s: Status) -> String {
    format!("<span class=\"st {0}\">{0}</span>", s.as_str())
}

fn finding_row(report: &Report, f: &Finding, with_code: bool) -> String {
    let regraded = f
        .original_status
        .map(|o| format!(" <small>(re-graded from {})</small>", o.as_str()))
        .unwrap_or_default();
    let mut row = format!(
        "<tr class=\"finding\" data-status=\"{}\" data-family=\"{}\" data-host=\"{}\"><td>{}{regraded}</td>",
        f.status.as_str(),
        f.family(),
        esc(report.host_of(f)),
        status_label(f.status),
    );
    if with_code {
        let _ = write!(row, "<td><code>{}</code></td>", f.code.id());
    }
    let _ = write!(
        row,
        "<td>{}</td><td class=\"target mono\">{}</td><td class=\"msg\">{}</td></tr>",
        esc(report.host_of(f)),
        esc(&f.target),
        esc(&f.message)
    );
    row
}

fn matrix_section(m: &Matrix, out: &mut String) {
    if m.cells.is_empty() {
        return;
    }
    out.push_str("<section id=\"matrix\"><h2>Flow matrix</h2>");
    out.push_str("<ul class=\"legend\">");
    for (s, meaning) in CellState::ALL {
        let _ = write!(
            out,
            "<li><span class=\"swatch s-{0}\">{0}</span> {1}</li>",
            s.as_str(),
            esc(meaning)
        );
    }
    out.push_str("</ul>");
    if !m.problems.is_empty() {
        out.push_str("<h3>Not as expected</h3><ul class=\"problems\">");
        for p in &m.problems {
            let _ = write!(
                out,
                "<li>{} {}</li>",
                status_label(Status::Fail),
                esc(&p.text)
            );
        }
        out.push_str("</ul>");
    }
    let sources = m.sources();
    let dests = m.destinations();
    // Every pair of hosts: the flows as expected out of those tested.
    out.push_str("<h3>Between hosts</h3><table class=\"grid pairs\"><caption>rows: from, columns: to; flows as expected / tested</caption><tr><th></th>");
    for d in &dests {
        let _ = write!(out, "<th>{}</th>", esc(d));
    }
    out.push_str("</tr>");
    for s in &sources {
        let _ = write!(out, "<tr><th class=\"row\">{}</th>", esc(s));
        for d in &dests {
            let cells: Vec<_> = m.between(s, d).collect();
            if cells.is_empty() {
                out.push_str("<td class=\"none\" data-state=\"none\">-</td>");
                continue;
            }
            let ok = cells.iter().filter(|c| c.state.as_expected()).count();
            let state = if ok == cells.len() { "ok" } else { "mixed" };
            let _ = write!(
                out,
                "<td class=\"cell s-{state}\" data-state=\"{state}\" data-source=\"{}\" data-destination=\"{}\">{ok}/{}</td>",
                esc(s),
                esc(d),
                cells.len()
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    // One grid per protocol and port: those with a problem first, open;
    // those as expected everywhere folded.
    let mut bad = String::new();
    let mut good = String::new();
    let mut good_n = 0;
    for (proto, port) in m.services() {
        let cells: Vec<_> = m
            .cells
            .iter()
            .filter(|c| c.protocol == proto && c.port == port)
            .collect();
        let title = cells[0].service();
        let flows: Vec<&str> = {
            let mut f: Vec<&str> = cells.iter().map(|c| c.flow.as_str()).collect();
            f.sort();
            f.dedup();
            f
        };
        let srcs: Vec<&str> = sources
            .iter()
            .copied()
            .filter(|s| cells.iter().any(|c| c.source == *s))
            .collect();
        let dsts: Vec<&str> = dests
            .iter()
            .copied()
            .filter(|d| cells.iter().any(|c| c.destination == *d))
            .collect();
        let mut t = format!(
            "<table class=\"grid service\" data-protocol=\"{}\" data-port=\"{}\"><caption>{} <small>({})</small></caption><tr><th></th>",
            esc(&proto),
            port.map(|p| p.to_string()).unwrap_or_default(),
            esc(&title),
            esc(&flows.join(", "))
        );
        for d in &dsts {
            let _ = write!(t, "<th>{}</th>", esc(d));
        }
        t.push_str("</tr>");
        for s in &srcs {
            let _ = write!(t, "<tr><th class=\"row\">{}</th>", esc(s));
            for d in &dsts {
                match cells.iter().find(|c| c.source == *s && c.destination == *d) {
                    Some(c) => {
                        let _ = write!(
                            t,
                            "<td class=\"cell s-{0}\" data-state=\"{0}\" data-source=\"{1}\" data-destination=\"{2}\" data-protocol=\"{3}\" data-port=\"{4}\" title=\"{5} {1} to {2} ({6}): {0}, expected {7}\">{0}</td>",
                            c.state.as_str(),
                            esc(&c.source),
                            esc(&c.destination),
                            esc(&c.protocol),
                            c.port.map(|p| p.to_string()).unwrap_or_default(),
                            esc(&title),
                            esc(&c.address),
                            esc(&c.expect),
                        );
                    }
                    None => t.push_str("<td class=\"none\" data-state=\"none\">-</td>"),
                }
            }
            t.push_str("</tr>");
        }
        t.push_str("</table>");
        if cells.iter().all(|c| c.state.as_expected()) {
            good.push_str(&t);
            good_n += 1;
        } else {
            bad.push_str(&t);
        }
    }
    if !bad.is_empty() {
        let _ = write!(
            out,
            "<h3>Ports with a problem</h3><div class=\"grids\">{bad}</div>"
        );
    }
    if good_n > 0 {
        let _ = write!(
            out,
            "<details><summary>{good_n} ports as expected between every pair tested</summary><div class=\"grids\">{good}</div></details>"
        );
    }
    out.push_str("</section>");
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let s = report.summary();
    let c = &report.context;
    let (verdict, class) = match report.interrupted {
        Some(sig) => (
            format!("INTERRUPTED by {}: partial report", sig.name()),
            "fail",
        ),
        None if s.fail > 0 => ("NOT READY".to_string(), "fail"),
        None => ("READY".to_string(), "pass"),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>airgap-verify {}: {}</title>\n<style>{STYLE}</style></head>\n<body data-verdict=\"{class}\">\n",
        content_security_policy(),
        esc(&report.command),
        esc(&verdict)
    );
    let hosts = report.hosts();
    let _ = writeln!(
        h,
        "<header><h1>airgap-verify {}</h1><div class=\"verdict {class}\" id=\"verdict\">{}</div>\
         <p class=\"counts\" id=\"counts\"><span class=\"st fail\">{} fail</span><span class=\"st warn\">{} warn</span><span class=\"st pass\">{} pass</span><span class=\"st skip\">{} skip</span></p>\
         <p class=\"meta\">Started {} on {}, {:.1} s; {} {} (report schema {}).</p></header>",
        esc(&report.command),
        esc(&verdict),
        s.fail,
        s.warn,
        s.pass,
        s.skip,
        esc(&c.started_rfc3339()),
        esc(&c.host),
        report.duration_ms as f64 / 1000.0,
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        super::json::SCHEMA_VERSION
    );
    // Filters.
    let families = report.families();
    h.push_str("<form id=\"filters\"><strong>Show</strong> ");
    for st in [Status::Fail, Status::Warn, Status::Skip, Status::Pass] {
        let _ = write!(
            h,
            "<label><input type=\"checkbox\" name=\"status\" value=\"{0}\" checked> {0}</label>",
            st.as_str()
        );
    }
    h.push_str("<label>family <select name=\"family\"><option value=\"\">all</option>");
    for f in &families {
        let _ = write!(h, "<option>{}</option>", esc(f));
    }
    h.push_str(
        "</select></label><label>host <select name=\"host\"><option value=\"\">all</option>",
    );
    for host in &hosts {
        let _ = write!(h, "<option>{}</option>", esc(&host.name));
    }
    h.push_str("</select></label></form>\n");

    // Problems first, grouped by code, with the remediation once per code.
    let mut problems: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Fail | Status::Warn))
        .collect();
    problems.sort_by_key(|f| (std::cmp::Reverse(f.status), f.code));
    let _ = write!(
        h,
        "<section id=\"problems\"><h2>Failures and warnings ({})</h2>",
        problems.len()
    );
    if problems.is_empty() {
        h.push_str("<p>None.</p>");
    }
    let mut by_code: Vec<(crate::codes::Code, Vec<&Finding>)> = Vec::new();
    for f in problems {
        match by_code.iter_mut().find(|(c, _)| *c == f.code) {
            Some((_, v)) => v.push(f),
            None => by_code.push((f.code, vec![f])),
        }
    }
    for (code, list) in &by_code {
        let _ = write!(
            h,
            "<div class=\"group\" data-code=\"{0}\"><h3><code>{0}</code> ({1})</h3><p class=\"fix\"><strong>Fix:</strong> {2}</p><table><tr><th>status</th><th>host</th><th>target</th><th>finding</th></tr>",
            code.id(),
            list.len(),
            esc(code.info().remediation)
        );
        for f in list {
            h.push_str(&finding_row(report, f, false));
        }
        h.push_str("</table></div>");
    }
    h.push_str("</section>\n");

    let m = report.matrix();
    matrix_section(&m, &mut h);

    // Images: who signed each, its SBOM, its provenance's builder.
    let images = report.image_signatures();
    if !images.is_empty() {
        h.push_str("<section id=\"images\"><h2>Images</h2><table><tr><th>status</th><th>image file</th><th>image</th><th>signature</th><th>SBOM</th><th>provenance builder</th></tr>");
        for r in &images {
            let _ = write!(
                h,
                "<tr class=\"image\" data-image-status=\"{0}\"><td>{1}</td><td class=\"target mono\">{2}</td><td class=\"mono\">{3}</td><td class=\"signed-by\">{4}</td><td class=\"sbom\">{5}</td><td class=\"builder\">{6}</td></tr>",
                r.status.as_str(),
                status_label(r.status),
                esc(&r.target),
                esc(&r.image),
                esc(&r.signature),
                esc(&r.sbom),
                esc(&r.provenance_builder)
            );
        }
        h.push_str("</table></section>\n");
    }

    // External hosts: every host the release's text names outside the
    // perimeter, with how many references name it (all of them, not only
    // those kept as findings).
    let external = report.external_hosts();
    if !external.rows.is_empty() {
        h.push_str("<section id=\"external-hosts\"><h2>External hosts</h2><table><tr><th>host</th><th>references</th></tr>");
        for (host, n) in &external.rows {
            let _ = write!(
                h,
                "<tr class=\"external-host\"><td class=\"mono\">{}</td><td>{n}</td></tr>",
                esc(host)
            );
        }
        h.push_str("</table>");
        if external.omitted > 0 {
            let _ = write!(
                h,
                "<p>and {} references to further hosts, not listed (a scan counts its first 1,000 hosts one by one)</p>",
                external.omitted
            );
        }
        h.push_str("</section>\n");
    }

    // Passing and skipped findings, folded per family.
    h.push_str("<section id=\"passing\"><h2>Passed and skipped</h2>");
    let mut per_family: BTreeMap<usize, (&str, Vec<&Finding>)> = BTreeMap::new();
    for f in report
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Pass | Status::Skip))
    {
        let i = families.iter().position(|x| *x == f.family()).unwrap_or(0);
        per_family
            .entry(i)
            .or_insert((f.family(), Vec::new()))
            .1
            .push(f);
    }
    for (family, list) in per_family.values() {
        let pass = list.iter().filter(|f| f.status == Status::Pass).count();
        let _ = write!(
            h,
            "<details class=\"group\" data-family=\"{}\"><summary>{} — {pass} pass, {} skip</summary><table><tr><th>status</th><th>code</th><th>host</th><th>target</th><th>finding</th></tr>",
            esc(family),
            esc(family),
            list.len() - pass
        );
        for f in list {
            h.push_str(&finding_row(report, f, true));
        }
        h.push_str("</table></details>");
    }
    h.push_str("</section>\n");

    // Hosts.
    h.push_str("<section id=\"hosts\"><h2>Hosts</h2><table><tr><th>host</th><th>host name</th><th>machine id</th><th>addresses</th><th>reports</th><th>fail</th><th>warn</th><th>pass</th><th>skip</th></tr>");
    for host in &hosts {
        let s = report.summary_of(&host.name);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&host.name),
            esc(&host.hostnames.join(", ")),
            esc(host.machine_id.as_deref().unwrap_or("-")),
            esc(&host.addresses.join(", ")),
            esc(&host.commands.join(", ")),
            s.fail,
            s.warn,
            s.pass,
            s.skip
        );
    }
    h.push_str("</table></section>\n");

    // Inputs and how the run was made.
    h.push_str("<section id=\"inputs\"><h2>Inputs</h2><table><tr><th>path</th><th>kind</th><th>bytes</th><th>sha256</th></tr>");
    for i in &report.inputs {
        let _ = write!(
            h,
            "<tr><td class=\"target mono\">{}</td><td>{}</td><td>{}</td><td class=\"mono sha\">{}</td></tr>",
            esc(&i.path),
            esc(i.kind),
            i.size,
            esc(i.sha256.as_deref().unwrap_or("-"))
        );
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<p class=\"meta\">Tool: <span id=\"tool\">{} {}</span>. Command line: <code>{}</code>. Fail on: {}.</p>",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        esc(&c.arguments.join(" ")),
        if c.fail_on_warn { "warn" } else { "fail" }
    );
    if !c.severity.is_empty() {
        let list: Vec<String> = c
            .severity
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str()))
            .collect();
        let _ = write!(
            h,
            "<p class=\"meta\">Severity overrides: {}.</p>",
            esc(&list.join(", "))
        );
    }
    h.push_str("</section>\n");
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    out.write_all(h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc("<img src=x onerror='a()'>&\u{1b}"),
            "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;\\x1b"
        );
    }
}
