//! The mailbox's monitoring dashboard: figures, refused requests, a traffic
//! chart (server-rendered SVG) and the recent log. The page reloads itself
//! every [`REFRESH_SECS`] seconds with `<meta http-equiv="refresh">`, so it
//! needs no JavaScript.

use leptos::prelude::*;

use crate::document::{Shell, render_document};
use crate::{DashboardPage, RatePoint, format_bytes};

/// How often the dashboard reloads itself, in seconds.
const REFRESH_SECS: u32 = 5;

/// The chart's heading, also its accessible name.
const CHART_TITLE: &str = "SENDs and deliveries per second (last 5 minutes)";

/// The chart's coordinate system (`viewBox`) and its plot area inside it; the
/// margins leave room for the axis labels.
const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 200.0;
const PLOT_LEFT: f64 = 44.0;
const PLOT_RIGHT: f64 = 592.0;
const PLOT_TOP: f64 = 10.0;
const PLOT_BOTTOM: f64 = 174.0;

/// Renders the mailbox dashboard as a complete HTML document.
pub fn dashboard_page(page: &DashboardPage) -> String {
    let page = page.clone();
    let shell = Shell {
        title: "Secure Messenger mailbox".to_owned(),
        body_class: "dashboard",
        refresh_secs: Some(REFRESH_SECS),
        ..Shell::default()
    };
    render_document(shell, move || dashboard_body(page))
}

fn figure(label: &'static str, value: String, class: &'static str) -> impl IntoView {
    let value = if value.trim().is_empty() {
        "—".to_owned()
    } else {
        value
    };
    view! {
        <div class=class>
            <dt>{label}</dt>
            <dd>{value}</dd>
        </div>
    }
}

fn dashboard_body(page: DashboardPage) -> impl IntoView {
    let DashboardPage {
        listen,
        node_address,
        node_address_note,
        fingerprint_grouped,
        uptime,
        connections,
        logged_in,
        queued_envelopes,
        queued_bytes,
        stored_total,
        delivered_total,
        expired_total,
        refused,
        retention,
        last_retention_run,
        series,
        log_lines,
    } = page;
    let bytes = if queued_bytes < 1024 {
        format_bytes(queued_bytes)
    } else {
        format!("{} ({queued_bytes} bytes)", format_bytes(queued_bytes))
    };
    let last_run = last_retention_run.unwrap_or_else(|| "not run yet".to_owned());
    view! {
        <div class="app">
            <header class="topbar">
                <h1 class="brand">"Secure Messenger mailbox"</h1>
                <p class="refresh-note">{format!("Updates every {REFRESH_SECS} seconds")}</p>
            </header>
            <main class="dashboard-main">
                <h2 class="visually-hidden">"Status"</h2>
                <dl class="figures">
                    <div class="figure figure-wide figure-node-address">
                        <dt>"Address for nodes"</dt>
                        <dd>
                            <code id="node-address">{node_address}</code>
                            {node_address_note.map(|note| view! { <p class="figure-note">{note}</p> })}
                        </dd>
                    </div>
                    {figure("Listen address", listen, "figure figure-text figure-address")}
                    {figure(
                        "Certificate fingerprint",
                        fingerprint_grouped,
                        "figure figure-wide figure-fingerprint",
                    )}
                    {figure("Uptime", uptime, "figure")}
                    {figure("Connected nodes", connections.to_string(), "figure")}
                    {figure("Logged-in identities", logged_in.to_string(), "figure")}
                    {figure("Queued envelopes", queued_envelopes.to_string(), "figure")}
                    {figure("Queued bytes", bytes, "figure")}
                    {figure("Stored total", stored_total.to_string(), "figure")}
                    {figure("Delivered total", delivered_total.to_string(), "figure")}
                    {figure("Expired total", expired_total.to_string(), "figure")}
                    {figure("Retention period", retention, "figure figure-text")}
                    {figure("Last retention run", last_run, "figure figure-text figure-wide")}
                </dl>
                {refused_section(refused)}
                {chart_section(&series)}
                {log_section(log_lines)}
            </main>
        </div>
    }
}

fn refused_section(refused: Vec<(String, u64)>) -> impl IntoView {
    let body = if refused.is_empty() {
        view! { <p class="hint">"Nothing refused"</p> }.into_any()
    } else {
        let rows = refused
            .into_iter()
            .map(|(reason, count)| {
                view! {
                    <tr>
                        <th scope="row">
                            <code>{reason}</code>
                        </th>
                        <td class="num">{count}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <table class="refused">
                <thead>
                    <tr>
                        <th scope="col">"Reason"</th>
                        <th scope="col" class="num">
                            "Count"
                        </th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <section class="card" aria-labelledby="refused-heading">
            <h2 id="refused-heading">"Refused"</h2>
            {body}
        </section>
    }
}

/// A chart coordinate rounded to one decimal, without a trailing `.0`.
fn coord(value: f64) -> String {
    // Coordinates are finite, non-negative and within the viewBox, so this
    // cannot overflow and needs no sign handling.
    let tenths = (value * 10.0).round() as i64;
    if tenths % 10 == 0 {
        (tenths / 10).to_string()
    } else {
        format!("{}.{}", tenths / 10, (tenths % 10).abs())
    }
}

/// The `points` of a polyline through `values`, scaled so that `max` (at
/// least 1) reaches the top of the plot area; oldest on the left, newest at
/// the right edge ("now"). A single value is drawn at the right edge.
fn polyline_points(values: impl ExactSizeIterator<Item = u64>, max: u64) -> String {
    let steps = values.len().saturating_sub(1).max(1) as f64;
    let single = values.len() == 1;
    let max = max.max(1) as f64;
    values
        .enumerate()
        .map(|(i, value)| {
            let x = if single {
                PLOT_RIGHT
            } else {
                PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * i as f64 / steps
            };
            let y = PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * (value as f64 / max);
            format!("{},{}", coord(x), coord(y))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long ago the chart's left edge is, e.g. `"5 min ago"`.
fn window_label(seconds: usize) -> String {
    if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{} min ago", seconds / 60)
    } else {
        format!("{seconds} s ago")
    }
}

fn chart_section(series: &[RatePoint]) -> impl IntoView + use<> {
    let peak_sends = series.iter().map(|p| p.sends).max().unwrap_or(0);
    let peak_deliveries = series.iter().map(|p| p.deliveries).max().unwrap_or(0);
    let latest = series.last().copied().unwrap_or_default();
    // A shared scale, so the two lines can be compared; at least 1 (no
    // division by zero for an idle mailbox).
    let max = peak_sends.max(peak_deliveries).max(1);
    let label = if series.is_empty() {
        format!("{CHART_TITLE}: no traffic yet")
    } else {
        format!(
            "{CHART_TITLE}: now {} SENDs and {} deliveries per second; \
             peak {peak_sends} SENDs and {peak_deliveries} deliveries per second",
            latest.sends, latest.deliveries
        )
    };
    let aria_label = label.clone();
    let view_box = format!("0 0 {} {}", coord(CHART_WIDTH), coord(CHART_HEIGHT));
    let (left, right) = (coord(PLOT_LEFT), coord(PLOT_RIGHT));
    let (top, bottom) = (coord(PLOT_TOP), coord(PLOT_BOTTOM));
    let label_x = coord(PLOT_LEFT - 6.0);
    let x_label_y = coord(PLOT_BOTTOM + 18.0);
    let lines = (!series.is_empty()).then(|| {
        let sends = polyline_points(series.iter().map(|p| p.sends), max);
        let deliveries = polyline_points(series.iter().map(|p| p.deliveries), max);
        view! {
            <polyline
                class="chart-line chart-sends"
                points=sends
                fill="none"
                stroke="#1a5fc8"
                stroke-width="2"
                stroke-linejoin="round"
            ></polyline>
            <polyline
                class="chart-line chart-deliveries"
                points=deliveries
                fill="none"
                stroke="#1a7f37"
                stroke-width="2"
                stroke-linejoin="round"
                stroke-dasharray="6 3"
            ></polyline>
        }
    });
    let empty_text = series.is_empty().then(|| {
        let x = coord((PLOT_LEFT + PLOT_RIGHT) / 2.0);
        let y = coord((PLOT_TOP + PLOT_BOTTOM) / 2.0);
        view! {
            <text class="chart-empty" x=x y=y text-anchor="middle">
                "no traffic yet"
            </text>
        }
    });
    let window = (!series.is_empty()).then(|| window_label(series.len()));
    view! {
        <section class="card chart" aria-labelledby="chart-heading">
            <h2 id="chart-heading">{CHART_TITLE}</h2>
            <svg
                class="chart-svg"
                viewBox=view_box
                role="img"
                aria-label=aria_label
            >
                <title>{label}</title>
                <line
                    class="chart-grid"
                    x1=left.clone()
                    y1=top.clone()
                    x2=right.clone()
                    y2=top.clone()
                    stroke="#d5dbe1"
                    stroke-dasharray="3 3"
                ></line>
                <line
                    class="chart-axis"
                    x1=left.clone()
                    y1=top.clone()
                    x2=left.clone()
                    y2=bottom.clone()
                    stroke="#59636e"
                ></line>
                <line
                    class="chart-axis"
                    x1=left
                    y1=bottom.clone()
                    x2=right.clone()
                    y2=bottom.clone()
                    stroke="#59636e"
                ></line>
                <text class="chart-label chart-max" x=label_x.clone() y=top text-anchor="end" dominant-baseline="middle">
                    {max}
                </text>
                <text class="chart-label" x=label_x y=bottom text-anchor="end" dominant-baseline="middle">
                    "0"
                </text>
                {window
                    .map(|window| {
                        let left_edge = coord(PLOT_LEFT);
                        view! {
                            <text class="chart-label" x=left_edge y=x_label_y.clone() text-anchor="start">
                                {window}
                            </text>
                            <text class="chart-label" x=right y=x_label_y text-anchor="end">
                                "now"
                            </text>
                        }
                    })}
                {lines}
                {empty_text}
            </svg>
            <ul class="legend">
                <li>
                    <span class="swatch swatch-sends" aria-hidden="true"></span>
                    {format!("SENDs: now {}, peak {peak_sends}", latest.sends)}
                </li>
                <li>
                    <span class="swatch swatch-deliveries" aria-hidden="true"></span>
                    {format!("Deliveries: now {}, peak {peak_deliveries}", latest.deliveries)}
                </li>
            </ul>
        </section>
    }
}

fn log_section(lines: Vec<String>) -> impl IntoView {
    let body = if lines.is_empty() {
        view! { <p class="hint">"No log lines yet"</p> }.into_any()
    } else {
        let items = lines
            .into_iter()
            .map(|line| view! { <li>{line}</li> })
            .collect_view();
        // column-reverse keeps the box scrolled to the newest (last) line; the
        // single inner list keeps the reading order oldest first.
        view! {
            <div class="log-scroller" tabindex="0" role="region" aria-label="Recent log lines">
                <ol class="log">{items}</ol>
            </div>
        }
        .into_any()
    };
    view! {
        <section class="card" aria-labelledby="log-heading">
            <h2 id="log-heading">"Recent log"</h2>
            {body}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DashboardPage {
        DashboardPage {
            listen: "0.0.0.0:4433".to_owned(),
            node_address: "0.0.0.0:4433#ab12cd34ef56".to_owned(),
            node_address_note: Some("Put this host's name in place of 0.0.0.0.".to_owned()),
            fingerprint_grouped: "ab12 cd34 ef56".to_owned(),
            uptime: "3 h 12 min".to_owned(),
            connections: 7,
            logged_in: 11,
            queued_envelopes: 42,
            queued_bytes: 1536,
            stored_total: 1001,
            delivered_total: 959,
            expired_total: 13,
            refused: vec![("quota".to_owned(), 3), ("rate_limited".to_owned(), 1)],
            retention: "7 days".to_owned(),
            last_retention_run: Some("2026-11-25 21:40:00 UTC (3 expired)".to_owned()),
            series: (0..300)
                .map(|i| RatePoint {
                    sends: i % 7,
                    deliveries: i % 5,
                })
                .collect(),
            log_lines: vec!["mailbox started".to_owned(), "node connected".to_owned()],
        }
    }

    fn series(values: &[(u64, u64)]) -> Vec<RatePoint> {
        values
            .iter()
            .map(|&(sends, deliveries)| RatePoint { sends, deliveries })
            .collect()
    }

    /// The parsed `points` of every `<polyline>` in `html`.
    fn polylines(html: &str) -> Vec<Vec<(f64, f64)>> {
        html.match_indices("<polyline")
            .map(|(at, _)| {
                let tag = &html[at..at + html[at..].find('>').expect("tag end")];
                let start = tag.find(r#"points=""#).expect("points") + r#"points=""#.len();
                let value = &tag[start..start + tag[start..].find('"').expect("quote")];
                value
                    .split_whitespace()
                    .map(|pair| {
                        let (x, y) = pair.split_once(',').expect("x,y");
                        (x.parse().expect("numeric x"), y.parse().expect("numeric y"))
                    })
                    .collect()
            })
            .collect()
    }

    fn svg(html: &str) -> &str {
        let start = html.find("<svg").expect("an svg");
        let end = html.find("</svg>").expect("svg end") + "</svg>".len();
        &html[start..end]
    }

    fn assert_self_contained(html: &str) {
        assert!(!html.contains("style="), "inline style in {html}");
        assert!(!html.contains("<style"), "style element in {html}");
        assert!(
            !html.to_ascii_lowercase().contains("<script"),
            "script in {html}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "external URL in {html}"
        );
        let svg = svg(html);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn dashboard_shows_its_figures() {
        let html = dashboard_page(&sample());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
        assert!(html.contains("Secure Messenger mailbox"));
        for (label, value) in [
            ("Listen address", "0.0.0.0:4433"),
            ("Certificate fingerprint", "ab12 cd34 ef56"),
            ("Uptime", "3 h 12 min"),
            ("Connected nodes", "7"),
            ("Logged-in identities", "11"),
            ("Queued envelopes", "42"),
            ("Queued bytes", "1.5 KiB (1536 bytes)"),
            ("Stored total", "1001"),
            ("Delivered total", "959"),
            ("Expired total", "13"),
            ("Retention period", "7 days"),
            ("Last retention run", "2026-11-25 21:40:00 UTC (3 expired)"),
        ] {
            assert!(
                html.contains(&format!("<dt>{label}</dt><dd>{value}</dd>")),
                "{label}: {value} in {html}"
            );
        }
        assert_self_contained(&html);
    }

    #[test]
    fn dashboard_shows_the_address_nodes_paste_with_its_note() {
        let html = dashboard_page(&sample());
        assert!(
            html.contains(
                r#"<dt>Address for nodes</dt><dd><code id="node-address">0.0.0.0:4433#ab12cd34ef56</code><p class="figure-note">Put this host's name in place of 0.0.0.0.</p></dd>"#
            ),
            "{html}"
        );
        let html = dashboard_page(&DashboardPage {
            node_address: "127.0.0.1:4433#ab12".to_owned(),
            ..DashboardPage::default()
        });
        assert!(
            html.contains(r#"<code id="node-address">127.0.0.1:4433#ab12</code>"#),
            "{html}"
        );
        assert!(!html.contains("figure-note"), "{html}");
    }

    #[test]
    fn dashboard_refreshes_itself_every_five_seconds() {
        let html = dashboard_page(&sample());
        let head = &html[..html.find("</head>").expect("head")];
        assert!(
            head.contains(r#"<meta http-equiv="refresh" content="5">"#),
            "{head}"
        );
        assert_eq!(html.matches("http-equiv").count(), 1);
    }

    #[test]
    fn dashboard_escapes_and_fills_blanks() {
        let html = dashboard_page(&DashboardPage {
            listen: "<script>alert(1)</script>".to_owned(),
            ..DashboardPage::default()
        });
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<dt>Uptime</dt><dd>—</dd>"), "{html}");
        assert!(html.contains("<dt>Queued bytes</dt><dd>0 bytes</dd>"));
        assert!(html.contains("<dt>Retention period</dt><dd>—</dd>"));
        assert!(
            html.contains("<dt>Last retention run</dt><dd>not run yet</dd>"),
            "{html}"
        );
        assert_self_contained(&html);
    }

    #[test]
    fn refused_requests_are_a_table_by_reason() {
        let html = dashboard_page(&sample());
        let start = html.find(r#"id="refused-heading""#).expect("section");
        let section = &html[start..start + html[start..].find("</section>").expect("end")];
        assert!(section.contains(">Refused</h2>"), "{section}");
        assert!(section.contains("<table"), "{section}");
        assert!(section.contains(r#"<th scope="col">Reason</th>"#));
        assert!(section.contains("Count</th>"));
        assert!(
            section.contains(r#"<code>quota</code></th><td class="num">3</td>"#),
            "{section}"
        );
        assert!(section.contains(r#"<code>rate_limited</code></th><td class="num">1</td>"#));
        assert!(section.find("quota") < section.find("rate_limited"));
        assert!(!section.contains("Nothing refused"));

        let html = dashboard_page(&DashboardPage {
            refused: vec![("<b>odd</b>".to_owned(), 2)],
            ..DashboardPage::default()
        });
        assert!(html.contains("&lt;b&gt;odd&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn nothing_refused_without_a_table() {
        let html = dashboard_page(&DashboardPage::default());
        assert!(html.contains(">Refused</h2>"));
        assert!(html.contains("Nothing refused"), "{html}");
        assert!(!html.contains("<table"), "{html}");
    }

    #[test]
    fn chart_draws_two_polylines_through_the_series() {
        let page = sample();
        let html = dashboard_page(&page);
        assert!(html.contains("SENDs and deliveries per second (last 5 minutes)"));
        let svg = svg(&html);
        assert!(svg.contains(r#"viewBox="0 0 600 200""#), "{svg}");
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-label="SENDs and deliveries per second"#));
        assert!(svg.contains("<title>SENDs and deliveries per second"));
        assert!(svg.contains(r#"class="chart-axis""#));
        assert!(!svg.contains("no traffic yet"));
        let lines = polylines(svg);
        assert_eq!(lines.len(), 2, "{svg}");
        for line in &lines {
            assert_eq!(line.len(), page.series.len());
            // Oldest on the left, newest on the right, all inside the plot.
            assert_eq!(line.first().map(|p| p.0), Some(PLOT_LEFT));
            assert_eq!(line.last().map(|p| p.0), Some(PLOT_RIGHT));
            assert!(line.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(
                line.iter()
                    .all(|&(_, y)| (PLOT_TOP..=PLOT_BOTTOM).contains(&y))
            );
        }
        // Both lines share one scale: the peak (6 SENDs) reaches the top, the
        // deliveries' peak (4) stays below it.
        let top = |line: &[(f64, f64)]| line.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert_eq!(top(&lines[0]), PLOT_TOP);
        assert!(top(&lines[1]) > PLOT_TOP);
        assert!(
            svg.contains(r#"class="chart-label chart-max">6</text>"#),
            "{svg}"
        );
        assert!(html.contains("chart-sends") && html.contains("chart-deliveries"));
        // Short coordinates: at most one decimal.
        assert!(svg.contains(r#"points="44,174 45.8,146.7 "#), "{svg}");
        // The legend, with the latest and peak rates.
        assert!(html.contains("SENDs: now 5, peak 6"), "{html}");
        assert!(html.contains("Deliveries: now 4, peak 4"));
        assert_self_contained(&html);
    }

    #[test]
    fn chart_of_an_empty_series_says_no_traffic_yet() {
        let html = dashboard_page(&DashboardPage::default());
        let svg = svg(&html);
        assert!(svg.contains(r#"viewBox="0 0 600 200""#));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<title>"));
        assert!(svg.contains(">no traffic yet</text>"), "{svg}");
        assert!(svg.contains(r#"class="chart-axis""#));
        assert!(polylines(svg).is_empty());
        assert!(
            svg.contains(r#"class="chart-label chart-max">1</text>"#),
            "{svg}"
        );
        assert_self_contained(&html);
    }

    #[test]
    fn chart_of_an_idle_mailbox_is_flat_and_finite() {
        let page = DashboardPage {
            series: vec![RatePoint::default(); 300],
            ..DashboardPage::default()
        };
        let html = dashboard_page(&page);
        let lines = polylines(svg(&html));
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line.len(), 300);
            assert!(line.iter().all(|&(x, y)| x.is_finite() && y == PLOT_BOTTOM));
        }
        assert!(!html.contains("no traffic yet"));
        assert_self_contained(&html);
    }

    #[test]
    fn chart_handles_one_point_and_huge_values() {
        let html = dashboard_page(&DashboardPage {
            series: series(&[(3, 0)]),
            ..DashboardPage::default()
        });
        let lines = polylines(svg(&html));
        assert_eq!(
            lines,
            vec![
                vec![(PLOT_RIGHT, PLOT_TOP)],
                vec![(PLOT_RIGHT, PLOT_BOTTOM)]
            ]
        );
        assert_self_contained(&html);

        let html = dashboard_page(&DashboardPage {
            series: series(&[(u64::MAX, 0), (0, u64::MAX / 2), (1, 1)]),
            ..DashboardPage::default()
        });
        let lines = polylines(svg(&html));
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().flatten().all(|&(x, y)| {
            (PLOT_LEFT..=PLOT_RIGHT).contains(&x) && (PLOT_TOP..=PLOT_BOTTOM).contains(&y)
        }));
        assert_self_contained(&html);
    }

    #[test]
    fn coordinates_have_at_most_one_decimal() {
        assert_eq!(coord(44.0), "44");
        assert_eq!(coord(45.83), "45.8");
        assert_eq!(coord(146.666), "146.7");
        assert_eq!(coord(0.04), "0");
        assert_eq!(coord(592.0), "592");
        assert_eq!(window_label(300), "5 min ago");
        assert_eq!(window_label(90), "90 s ago");
        assert_eq!(window_label(1), "1 s ago");
    }

    #[test]
    fn log_lines_are_listed_in_order_and_escaped() {
        let mut page = sample();
        page.log_lines = vec![
            "first line".to_owned(),
            "<script>alert(1)</script> & more".to_owned(),
            "last line".to_owned(),
        ];
        let html = dashboard_page(&page);
        assert!(html.contains(">Recent log</h2>"));
        assert!(
            html.contains("<li>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</li>"),
            "{html}"
        );
        let first = html.find("first line").expect("first");
        let last = html.find("last line").expect("last");
        assert!(first < last);
        assert!(!html.contains("No log lines yet"));
        assert_self_contained(&html);
    }

    #[test]
    fn no_log_lines_yet() {
        let html = dashboard_page(&DashboardPage::default());
        assert!(html.contains(">Recent log</h2>"));
        assert!(html.contains("No log lines yet"), "{html}");
        assert!(!html.contains(r#"class="log""#));
    }
}
