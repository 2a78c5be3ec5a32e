//! The drift report as one self-contained HTML file: inline CSS and SVG, no script, nothing
//! fetched. A summary header, the verdict table, then one reference-vs-current histogram per
//! feature. Every name and value from the data is HTML-escaped.

use std::fmt::Write as _;

use super::{Feature, Kind, Report};

/// `&`, `<`, `>`, `"` and `'` as entities, for text and attribute values alike.
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

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2430;background:#f6f7f9}
header{background:#1f2430;color:#fff;padding:20px 32px}
header h1{margin:0 0 6px;font-size:22px}
header .files{opacity:.8;font-size:13px;word-break:break-all}
.cards{display:flex;gap:16px;padding:20px 32px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:14px 18px;min-width:150px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .v{font-size:26px;font-weight:600}
.card.bad .v{color:#c0392b}.card.ok .v{color:#1e8449}
main{padding:0 32px 32px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08);border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #eceef2;font-variant-numeric:tabular-nums}
th{background:#eef0f4;font-weight:600}
td.num{text-align:right}
.pill{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600}
.pill.drift{background:#fdecea;color:#c0392b}.pill.stable{background:#e8f6ee;color:#1e8449}.pill.skip{background:#eef0f4;color:#5d6472}
.features{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:16px;margin-top:20px}
.feature{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.feature h3{margin:0 0 4px;font-size:15px;word-break:break-all}
.feature .meta{color:#5d6472;font-size:12px;margin-bottom:6px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
svg text{font:10px system-ui,sans-serif;fill:#5d6472}
";

const REF_COLOR: &str = "#4a78c2";
const CUR_COLOR: &str = "#e67e22";

fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() < 1e-3 || x.abs() >= 1e6 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// The report as HTML.
pub fn render(report: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Drift report</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(
        h,
        "<header><h1>Data drift: {} of {} features drifted</h1>\
         <div class=\"files\">reference <b>{}</b> ({} rows) &nbsp;→&nbsp; current <b>{}</b> ({} rows)</div></header>",
        report.drifted_features,
        report.tested_features,
        escape(&report.reference.display().to_string()),
        report.reference_rows,
        escape(&report.current.display().to_string()),
        report.current_rows,
    );
    let share_class = if report.drifted_features > 0 {
        "bad"
    } else {
        "ok"
    };
    let skipped = report.features.len() - report.tested_features;
    let _ = writeln!(
        h,
        "<div class=\"cards\">\
         <div class=\"card {share_class}\"><div>drifted share</div><div class=\"v\">{:.0}%</div></div>\
         <div class=\"card\"><div>features tested</div><div class=\"v\">{}</div></div>\
         <div class=\"card {share_class}\"><div>drifted</div><div class=\"v\">{}</div></div>\
         <div class=\"card\"><div>not tested</div><div class=\"v\">{skipped}</div></div></div>",
        report.drifted_share * 100.0,
        report.tested_features,
        report.drifted_features,
    );
    h.push_str(
        "<main><table><thead><tr><th>feature</th><th>kind</th><th>verdict</th><th>decided by</th>\
         <th class=\"num\">value</th><th class=\"num\">threshold</th><th class=\"num\">KS p</th>\
         <th class=\"num\">Wasserstein</th><th class=\"num\">χ² p</th><th class=\"num\">PSI</th>\
         <th class=\"num\">JS</th><th class=\"num\">missing</th></tr></thead><tbody>\n",
    );
    for f in &report.features {
        row(&mut h, f);
    }
    h.push_str("</tbody></table>\n<div class=\"features\">\n");
    for (i, f) in report.features.iter().enumerate() {
        panel(&mut h, i, f);
    }
    h.push_str("</div></main></body></html>\n");
    h
}

fn pill(f: &Feature) -> &'static str {
    if f.reason.is_some() {
        "<span class=\"pill skip\">not tested</span>"
    } else if f.drifted {
        "<span class=\"pill drift\">drift</span>"
    } else {
        "<span class=\"pill stable\">stable</span>"
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), fmt_num)
}

fn row(h: &mut String, f: &Feature) {
    let kind = match f.kind {
        Kind::Numeric => "numeric",
        Kind::Categorical => "categorical",
    };
    let (by, value, threshold) = match (&f.verdict, &f.reason) {
        (_, Some(reason)) => (escape(reason), "–".into(), "–".into()),
        (Some(v), None) => (v.test.to_string(), fmt_num(v.value), fmt_num(v.threshold)),
        (None, None) => ("–".into(), "–".into(), "–".into()),
    };
    let t = &f.tests;
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td>{kind}</td><td>{}</td><td>{by}</td><td class=\"num\">{value}</td>\
         <td class=\"num\">{threshold}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{:.1}%</td></tr>",
        escape(&f.name),
        pill(f),
        opt(t.ks.map(|k| k.p_value)),
        opt(t.wasserstein),
        opt(t.chi2.map(|c| c.p_value)),
        opt(t.psi),
        opt(t.jensen_shannon),
        f.missing_share * 100.0,
    );
}

const W: f64 = 420.0;
const H: f64 = 150.0;
const PAD_L: f64 = 34.0;
const PAD_B: f64 = 22.0;

fn panel(h: &mut String, i: usize, f: &Feature) {
    let _ = write!(
        h,
        "<section class=\"feature\" id=\"f{i}\"><h3>{} {}</h3><div class=\"meta\">{} reference · {} current values · \
         <span class=\"legend\"><span style=\"background:{REF_COLOR}\"></span>reference\
         <span style=\"background:{CUR_COLOR}\"></span>current</span></div>",
        escape(&f.name),
        pill(f),
        f.reference_count,
        f.current_count,
    );
    let p = &f.plot;
    if p.labels.is_empty() {
        h.push_str("<p class=\"meta\">no values to draw</p></section>\n");
        return;
    }
    let k = p.labels.len();
    let top = p
        .reference
        .iter()
        .chain(&p.current)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let plot_w = W - PAD_L - 6.0;
    let plot_h = H - PAD_B - 8.0;
    let slot = plot_w / k as f64;
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"distribution of {}\">",
        escape(&f.name)
    );
    // Axes and the top share.
    let _ = write!(
        h,
        "<line x1=\"{PAD_L}\" y1=\"8\" x2=\"{PAD_L}\" y2=\"{y0}\" stroke=\"#c8ccd4\"/>\
         <line x1=\"{PAD_L}\" y1=\"{y0}\" x2=\"{xe}\" y2=\"{y0}\" stroke=\"#c8ccd4\"/>\
         <text x=\"{tx}\" y=\"14\" text-anchor=\"end\">{:.0}%</text>\
         <text x=\"{tx}\" y=\"{y0}\" text-anchor=\"end\">0</text>",
        top * 100.0,
        y0 = 8.0 + plot_h,
        xe = W - 6.0,
        tx = PAD_L - 4.0,
    );
    for b in 0..k {
        let x = PAD_L + slot * b as f64;
        for (side, (share, color)) in [(p.reference[b], REF_COLOR), (p.current[b], CUR_COLOR)]
            .into_iter()
            .enumerate()
        {
            let bh = share / top * plot_h;
            let bw = (slot / 2.0 - 0.5).max(0.5);
            let _ = write!(
                h,
                "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{bw:.2}\" height=\"{bh:.2}\" fill=\"{color}\" opacity=\"0.9\">\
                 <title>{}: {} {:.2}%</title></rect>",
                x + side as f64 * slot / 2.0 + 0.25,
                8.0 + plot_h - bh,
                escape(&p.labels[b]),
                if side == 0 { "reference" } else { "current" },
                share * 100.0,
            );
        }
    }
    // A few x labels: first, middle, last (categories: each, when they fit).
    let every = if f.kind == Kind::Categorical && k <= 12 {
        1
    } else {
        (k / 3).max(1)
    };
    for b in (0..k).step_by(every) {
        let label: String = p.labels[b].chars().take(12).collect();
        let label = match label.parse::<f64>() {
            Ok(x) if f.kind == Kind::Numeric => fmt_num(x),
            _ => label,
        };
        let _ = write!(
            h,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            PAD_L + slot * (b as f64 + 0.5),
            H - 6.0,
            escape(&label)
        );
    }
    h.push_str("</svg></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
