//! The two kinds of plot the report draws, as SVG text: lines (a measure against a load or a
//! size, one line per series, with an optional target line) and bars (one figure per scenario).

use plotters::prelude::*;

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    /// A horizontal line at this height, with its legend.
    pub target: Option<(f64, &'a str)>,
    /// x drawn on a log10 scale (catalog sizes 1k, 10k, 100k).
    pub log_x: bool,
}

const SIZE: (u32, u32) = (760, 420);
const FONT: &str = "sans-serif";

fn color(i: usize) -> RGBAColor {
    // Colour-blind-safe first (Okabe–Ito), then plotters' palette.
    const OKABE_ITO: [(u8, u8, u8); 7] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (230, 159, 0),
        (86, 180, 233),
        (0, 0, 0),
    ];
    match OKABE_ITO.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b).to_rgba(),
        None => Palette99::pick(i).to_rgba(),
    }
}

/// `(lo, hi)` padded so the points are not drawn on the frame; `lo` stays at 0 for measures
/// that start there.
fn span(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1e-9);
    (if from_zero { lo } else { lo - pad }, hi + pad)
}

/// The chart as an SVG document.
pub fn lines(chart: &Lines) -> anyhow::Result<String> {
    let x_of = |x: f64| if chart.log_x { x.max(1e-9).log10() } else { x };
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = span(points().map(|p| x_of(p.0)), !chart.log_x);
    let target = chart.target.map(|(y, _)| y);
    let (_, y1) = span(points().map(|p| p.1).chain(target), true);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(chart.title, (FONT, 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0.0..y1)?;
        let log_label = |v: &f64| thousands(10f64.powf(*v));
        let linear_label = |v: &f64| thousands(*v);
        c.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_label_formatter(if chart.log_x {
                &log_label
            } else {
                &linear_label
            })
            .y_label_formatter(&|v| thousands(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, s) in chart.series.iter().enumerate() {
            let style = color(i).stroke_width(2);
            let line: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x_of(x), y)).collect();
            c.draw_series(LineSeries::new(line.iter().copied(), style))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            c.draw_series(line.iter().map(|&p| Circle::new(p, 3, color(i).filled())))?;
        }
        if let Some((y, name)) = chart.target {
            let style = BLACK.mix(0.45).stroke_width(1);
            c.draw_series(LineSeries::new([(x0, y), (x1, y)], style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Bars, one per `(name, value)`, each labelled with its name and value.
pub fn bars(title: &str, y_label: &str, bars: &[(String, f64)]) -> anyhow::Result<String> {
    let (_, y1) = span(bars.iter().map(|b| b.1 * 1.12), true);
    let n = bars.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, (FONT, 18))
            .margin(14)
            .x_label_area_size(12)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..n, 0.0..y1)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_desc(y_label)
            .y_label_formatter(&|v| thousands(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (name, value)) in bars.iter().enumerate() {
            let left = i as f64 + 0.15;
            c.draw_series([Rectangle::new(
                [(left, 0.0), (left + 0.7, *value)],
                color(i).filled(),
            )])?;
            let label = format!("{name}: {}", thousands(*value));
            c.draw_series([Text::new(
                label,
                (left, value + y1 * 0.02),
                (FONT, 13).into_font(),
            )])?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// `12,345` for large figures, two significant decimals for small ones.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        return if v < 0.0 { format!("-{out}") } else { out };
    }
    if v.abs() >= 10.0 {
        return format!("{v:.1}");
    }
    format!("{v:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_for_reading() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(100.0), "100");
        assert_eq!(thousands(12.345), "12.3");
        assert_eq!(thousands(1.2345), "1.23");
        assert_eq!(thousands(-4321.0), "-4,321");
        assert_eq!(thousands(f64::NAN), "–");
    }

    #[test]
    fn a_line_chart_is_an_svg_with_every_series_and_the_target() {
        let series = [
            Series {
                name: "one process".into(),
                points: vec![(100.0, 5.0), (200.0, 9.0), (300.0, 80.0)],
            },
            Series {
                name: "fleet".into(),
                points: vec![(100.0, 12.0), (200.0, 150.0)],
            },
        ];
        let svg = lines(&Lines {
            title: "p99 against offered load",
            x_label: "journeys/s",
            y_label: "p99 (ms)",
            series: &series,
            target: Some((100.0, "p99 target")),
            log_x: false,
        })
        .expect("drawn");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "one process",
            "fleet",
            "p99 target",
            "p99 against offered load",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Three points and two points: five markers.
        assert_eq!(svg.matches("<circle").count(), 5);
    }

    #[test]
    fn a_log_axis_labels_sizes_as_they_are() {
        let series = [Series {
            name: "sqlite".into(),
            points: vec![(1000.0, 3.0), (10000.0, 5.0), (100000.0, 9.0)],
        }];
        let svg = lines(&Lines {
            title: "search",
            x_label: "products",
            y_label: "p99 (ms)",
            series: &series,
            target: None,
            log_x: true,
        })
        .expect("drawn");
        assert!(svg.contains("10,000"), "log axis labels");
    }

    #[test]
    fn bars_carry_their_names_and_values() {
        let svg = bars(
            "req/s",
            "requests a second",
            &[("nginx".into(), 80000.0), ("flotilla".into(), 23000.0)],
        )
        .expect("drawn");
        assert!(svg.contains("nginx: 80,000"));
        assert!(svg.contains("flotilla: 23,000"));
        assert!(svg.matches("<rect").count() >= 2);
    }

    #[test]
    fn empty_input_still_draws() {
        assert!(bars("none", "x", &[]).is_ok());
        assert!(
            lines(&Lines {
                title: "none",
                x_label: "x",
                y_label: "y",
                series: &[],
                target: None,
                log_x: false,
            })
            .is_ok()
        );
    }
}
