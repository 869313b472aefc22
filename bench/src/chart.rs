//! `apply.png`: horizontal bars of the median wall time of every apply-like case and tool.

use std::path::Path;

use anyhow::anyhow;
use plotters::{
    coord::ranged1d::SegmentValue,
    prelude::*,
    style::{FontStyle, register_font},
};

use crate::results::{Sample, spread};

/// Bar colours, one per tool in order of first appearance.
const PALETTE: [RGBColor; 6] = [
    RGBColor(120, 120, 120),
    RGBColor(230, 126, 34),
    RGBColor(41, 128, 185),
    RGBColor(39, 174, 96),
    RGBColor(142, 68, 173),
    RGBColor(192, 57, 43),
];

struct Bar {
    label: String,
    tool: usize,
    seconds: f64,
}

fn bars(samples: &[Sample]) -> (Vec<Bar>, Vec<String>) {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut tools: Vec<String> = Vec::new();
    for s in samples
        .iter()
        .filter(|s| matches!(s.scenario.as_str(), "apply" | "grouped" | "tls"))
    {
        let key = (format!("{}: {}", s.scenario, s.case.row()), s.tool.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
        if !tools.contains(&s.tool) {
            tools.push(s.tool.clone());
        }
    }
    let mut out = Vec::new();
    for (label, tool) in keys {
        let walls = samples
            .iter()
            .filter(|s| {
                s.ok && s.tool == tool && format!("{}: {}", s.scenario, s.case.row()) == label
            })
            .filter_map(|s| s.wall_ms);
        if let Some(sp) = spread(walls) {
            out.push(Bar {
                label: format!("{label} · {tool}"),
                tool: tools.iter().position(|t| *t == tool).unwrap_or(0),
                seconds: sp.median / 1000.0,
            });
        }
    }
    (out, tools)
}

/// Draws the chart; false (and no file) when there is nothing to draw.
pub(crate) fn apply_chart(samples: &[Sample], path: &Path) -> anyhow::Result<bool> {
    let (bars, tools) = bars(samples);
    if bars.is_empty() {
        return Ok(false);
    }
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("cannot load the embedded font"))?;
    let n = bars.len() as i32;
    // A discrete i32 range includes its end: 0..n-1 holds n segments (0..1 for a single bar).
    let top = (n - 1).max(1);
    let height = 110 + 24 * bars.len() as u32;
    let max = bars
        .iter()
        .map(|b| b.seconds)
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.18;
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Wall time to migrate the fleet (median, seconds; shorter is better)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(420)
        .build_cartesian_2d(0.0..max, (0..top).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .y_labels(bars.len())
        .y_label_style(("sans-serif", 13))
        .x_label_style(("sans-serif", 13))
        .x_desc("seconds")
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                // Index 0 is at the bottom: list the bars top-down.
                labels
                    .get((n - 1 - *i) as usize)
                    .cloned()
                    .unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .draw()?;
    for (t, tool) in tools.iter().enumerate() {
        let color = PALETTE[t % PALETTE.len()];
        let mine: Vec<(i32, f64)> = bars
            .iter()
            .enumerate()
            .filter(|(_, b)| b.tool == t)
            .map(|(i, b)| (n - 1 - i as i32, b.seconds))
            .collect();
        chart
            .draw_series(mine.iter().map(|&(y, v)| {
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(y)),
                        (v, SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                );
                r.set_margin(3, 3, 0, 0);
                r
            }))?
            .label(tool.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart.draw_series(mine.iter().map(|&(y, v)| {
            Text::new(
                format!(" {v:.2}"),
                (v, SegmentValue::CenterOf(y)),
                ("sans-serif", 12).into_font(),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(true)
}
