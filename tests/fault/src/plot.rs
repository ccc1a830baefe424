//! The PNG timeline of one scenario under one profile: a column per arm, four panels per
//! column — memory working set against the limit, vigil's predicted time to exhaustion, the
//! health state, and client errors per second — with the fault, crashes and HAProxy's DOWN
//! marked as vertical lines.
//!
//! Drawn with plotters' bitmap backend only. Text uses a built-in 5×7 pixel font, so nothing
//! depends on system fonts or font libraries.

use std::path::Path;

use plotters::prelude::*;
use serde_json::Value;

/// One row of `samples.csv`, as far as the plot needs it.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub t: f64,
    pub slot: u32,
    pub memory: Option<f64>,
    pub limit: f64,
    pub state: String,
    pub eta: Option<f64>,
}

/// One arm's files, parsed.
#[derive(Debug, Default)]
pub struct ArmData {
    pub title: String,
    pub samples: Vec<Row>,
    /// (t, slot, kind).
    pub events: Vec<(f64, u32, String)>,
    /// (t, ok).
    pub requests: Vec<(f64, bool)>,
    pub targets: Vec<u32>,
    pub duration: f64,
}

impl ArmData {
    /// Reads `samples.csv`, `events.jsonl`, `requests.csv` and `summary.json` of an arm folder.
    pub fn read(dir: &Path, title: &str) -> ArmData {
        let text = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let mut data = ArmData { title: title.to_owned(), ..ArmData::default() };
        for line in text("samples.csv").lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 9 {
                continue;
            }
            let num = |s: &str| s.parse::<f64>().ok();
            let (Some(t), Ok(slot)) = (num(f[0]), f[1].parse::<u32>()) else { continue };
            data.samples.push(Row {
                t,
                slot,
                memory: num(f[2]),
                limit: num(f[3]).unwrap_or(0.0),
                state: f[4].to_owned(),
                eta: num(f[7]),
            });
        }
        for line in text("events.jsonl").lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else { continue };
            let (Some(t), Some(slot), Some(kind)) =
                (event["t_rel"].as_f64(), event["slot"].as_u64(), event["kind"].as_str())
            else {
                continue;
            };
            data.events.push((t, slot as u32, kind.to_owned()));
        }
        for line in text("requests.csv").lines().skip(1) {
            let mut f = line.split(',');
            let (Some(t), Some(_), Some(status)) = (f.next(), f.next(), f.next()) else { continue };
            let (Ok(t), Ok(status)) = (t.parse::<f64>(), status.parse::<u16>()) else { continue };
            data.requests.push((t, (200..300).contains(&status)));
        }
        if let Ok(summary) = serde_json::from_str::<Value>(&text("summary.json")) {
            data.targets = summary["target_slots"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_u64().map(|s| s as u32)).collect())
                .unwrap_or_default();
        }
        data.duration = data.requests.last().map_or(1.0, |r| r.0).max(1.0);
        data
    }
}

const SLOT_COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];
const GREY: RGBColor = RGBColor(170, 170, 170);
const DARK: RGBColor = RGBColor(0, 0, 0);
const FAULT: RGBColor = RGBColor(230, 0, 230);
const CRASH: RGBColor = RGBColor(200, 0, 0);
const DOWN: RGBColor = RGBColor(0, 0, 200);
/// ETAs are drawn up to this many seconds.
const ETA_CAP: f64 = 300.0;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws the scenario's timeline into `path`; `arms` are the columns, left to right.
pub fn draw(path: &Path, heading: &str, arms: &[ArmData]) -> Result<(), String> {
    if arms.is_empty() {
        return Err("nothing to plot".into());
    }
    let width = 600 * arms.len() as u32 + 20;
    let root = BitMapBackend::new(path, (width, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    text(&root, 10, 8, heading, &DARK);
    text(&root, 10, 28, "MAGENTA: FAULT. RED: CRASH. BLUE: HAPROXY DOWN. COLOURED: FAULT TARGETS", &GREY);
    let body = root.margin(50, 10, 10, 10);
    let columns = body.split_evenly((1, arms.len()));
    for (column, arm) in columns.iter().zip(arms) {
        draw_arm(column, arm).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_arm(area: &Area, arm: &ArmData) -> Result<(), Box<dyn std::error::Error>> {
    text(area, 4, 0, &arm.title, &DARK);
    let panels = area.margin(20, 0, 4, 4).split_evenly((4, 1));
    let x_max = arm.duration.ceil();
    let slots: Vec<u32> = {
        let mut s: Vec<u32> = arm.samples.iter().map(|s| s.slot).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let colour = |slot: u32| -> RGBColor {
        if arm.targets.contains(&slot) { SLOT_COLOURS[(slot as usize) % SLOT_COLOURS.len()] } else { GREY }
    };
    let width = |slot: u32| if arm.targets.contains(&slot) { 2 } else { 1 };

    // 1. Memory against the limit, MiB.
    let limit = arm.samples.iter().map(|s| s.limit).fold(0.0, f64::max) / 1048576.0;
    let y_max = (limit * 1.1).max(1.0);
    let mut chart = panel(&panels[0], x_max, 0.0, y_max)?;
    for slot in &slots {
        let points: Vec<(f64, f64)> = arm
            .samples
            .iter()
            .filter(|s| s.slot == *slot)
            .filter_map(|s| s.memory.map(|m| (s.t, m / 1048576.0)))
            .collect();
        chart.draw_series(LineSeries::new(points, colour(*slot).stroke_width(width(*slot))))?;
    }
    chart.draw_series(LineSeries::new([(0.0, limit), (x_max, limit)], CRASH.stroke_width(1)))?;
    markers(&mut chart, arm, y_max)?;
    text(&panels[0], 8, 4, &format!("MEMORY MIB (LIMIT {limit:.0})"), &DARK);

    // 2. Predicted time to exhaustion (vigil only), seconds, capped.
    let mut chart = panel(&panels[1], x_max, 0.0, ETA_CAP)?;
    let mut any_eta = false;
    for slot in &slots {
        let points: Vec<(f64, f64)> = arm
            .samples
            .iter()
            .filter(|s| s.slot == *slot)
            .filter_map(|s| s.eta.map(|eta| (s.t, eta.min(ETA_CAP))))
            .collect();
        any_eta |= !points.is_empty();
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 2, colour(*slot).filled())))?;
    }
    markers(&mut chart, arm, ETA_CAP)?;
    let label = if any_eta { "VIGIL ETA S (0-300)" } else { "VIGIL ETA: NONE" };
    text(&panels[1], 8, 4, label, &DARK);

    // 3. Health: one strip per slot, green healthy, yellow degraded, red draining or red port.
    let rows = slots.len().max(1) as f64;
    let mut chart = panel(&panels[2], x_max, 0.0, rows)?;
    for (row, slot) in slots.iter().enumerate() {
        let y0 = row as f64 + 0.15;
        let y1 = row as f64 + 0.85;
        let mine: Vec<&Row> = arm.samples.iter().filter(|s| s.slot == *slot).collect();
        for pair in mine.windows(2) {
            let fill = match pair[0].state.as_str() {
                "healthy" => RGBColor(90, 190, 90),
                "degraded" => RGBColor(240, 200, 40),
                "draining" => RGBColor(220, 40, 40),
                _ => RGBColor(200, 220, 200),
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(pair[0].t, y0), (pair[1].t, y1)],
                fill.filled(),
            )))?;
        }
        // The health port's red spells (every arm), as a black bar under the strip.
        let mut red_since: Option<f64> = None;
        for (t, _, kind) in arm.events.iter().filter(|e| e.1 == *slot) {
            match kind.as_str() {
                "health_red" => red_since = red_since.or(Some(*t)),
                "health_green" | "task_stopped" => {
                    if let Some(from) = red_since.take() {
                        chart.draw_series(std::iter::once(Rectangle::new(
                            [(from, y0 - 0.1), (*t, y0)],
                            BLACK.filled(),
                        )))?;
                    }
                }
                _ => {}
            }
        }
        if let Some(from) = red_since {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(from, y0 - 0.1), (x_max, y0)],
                BLACK.filled(),
            )))?;
        }
    }
    markers(&mut chart, arm, rows)?;
    text(&panels[2], 8, 4, "STATE; BLACK: HEALTH RED", &DARK);

    // 4. Client errors per second (red) and requests per second (grey).
    let seconds = x_max as usize + 1;
    let mut sent = vec![0u32; seconds];
    let mut failed = vec![0u32; seconds];
    for (t, ok) in &arm.requests {
        let i = (t.max(0.0) as usize).min(seconds - 1);
        sent[i] += 1;
        if !ok {
            failed[i] += 1;
        }
    }
    let y_max = f64::from(sent.iter().copied().max().unwrap_or(1).max(1)) * 1.1;
    let mut chart = panel(&panels[3], x_max, 0.0, y_max)?;
    chart.draw_series(LineSeries::new(
        sent.iter().enumerate().map(|(i, n)| (i as f64, f64::from(*n))),
        GREY,
    ))?;
    chart.draw_series(
        failed
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| Rectangle::new([(i as f64, 0.0), (i as f64 + 1.0, f64::from(*n))], CRASH.filled())),
    )?;
    markers(&mut chart, arm, y_max)?;
    let errors: u32 = failed.iter().sum();
    let peak = failed.iter().copied().max().unwrap_or(0);
    text(&panels[3], 8, 4, &format!("ERRORS/S: {errors} ALL, PEAK {peak}"), &DARK);
    let (_, h) = panels[3].dim_in_pixel();
    text(&panels[3], 8, h as i32 - 12, &format!("0-{x_max:.0} S, GRID 10 S"), &GREY);
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn panel<'a, 'b>(
    area: &'a Area<'b>,
    x_max: f64,
    y_min: f64,
    y_max: f64,
) -> Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart =
        ChartBuilder::on(area).margin(4).margin_top(18).build_cartesian_2d(0.0..x_max, y_min..y_max)?;
    chart
        .configure_mesh()
        .x_labels((x_max / 10.0).ceil() as usize + 1)
        .y_labels(5)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    // Grid every 10 s.
    let mut x = 10.0;
    while x < x_max {
        chart.draw_series(LineSeries::new([(x, y_min), (x, y_max)], RGBColor(235, 235, 235)))?;
        x += 10.0;
    }
    Ok(chart)
}

fn markers(chart: &mut Chart, arm: &ArmData, y_max: f64) -> Result<(), Box<dyn std::error::Error>> {
    for (t, slot, kind) in &arm.events {
        let colour = match kind.as_str() {
            "fault_injected" => FAULT,
            "app_exit" if arm.targets.contains(slot) || arm.targets.is_empty() => CRASH,
            "haproxy_down" => DOWN,
            _ => continue,
        };
        chart.draw_series(LineSeries::new([(*t, 0.0), (*t, y_max)], colour.stroke_width(1)))?;
    }
    Ok(())
}

/// Draws `line` at pixel (x, y) of `area` with the built-in font, two pixels per font pixel.
fn text(area: &Area, x: i32, y: i32, line: &str, colour: &RGBColor) {
    const SCALE: i32 = 2;
    let mut pen = x;
    for c in line.chars() {
        let rows = glyph(c.to_ascii_uppercase());
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..5 {
                if bits & (0b10000 >> col) != 0 {
                    let px = pen + col * SCALE;
                    let py = y + r as i32 * SCALE;
                    let _ = area
                        .draw(&Rectangle::new([(px, py), (px + SCALE - 1, py + SCALE - 1)], colour.filled()));
                }
            }
        }
        pen += 6 * SCALE;
    }
}

/// The 5×7 glyph of `c` (rows top to bottom, bit 4 leftmost); unknown characters are blank.
pub fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '>' => [8, 4, 2, 1, 2, 4, 8],
        '<' => [2, 4, 8, 16, 8, 4, 2],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '*' => [0, 4, 21, 14, 21, 4, 0],
        _ => [0; 7],
    }
}

/// Draws `<run>/<scenario>/<scenario>-<profile>.png` for every profile found in the scenario's
/// folder (arm folders are named `<profile>-<arm>`); returns the files written.
pub fn draw_scenario(scenario_dir: &Path, scenario: &str) -> Vec<std::path::PathBuf> {
    let mut written = Vec::new();
    for profile in ["fast", "alb"] {
        let arms: Vec<ArmData> = ["baseline", "threshold", "vigil"]
            .iter()
            .filter_map(|arm| {
                let dir = scenario_dir.join(format!("{profile}-{arm}"));
                dir.join("requests.csv").is_file().then(|| ArmData::read(&dir, &format!("{profile} / {arm}")))
            })
            .collect();
        if arms.is_empty() {
            continue;
        }
        let path = scenario_dir.join(format!("{scenario}-{profile}.png"));
        match draw(&path, &format!("{scenario} ({profile} health checks)"), &arms) {
            Ok(()) => written.push(path),
            Err(e) => eprintln!("vigil-fault: cannot draw {}: {e}", path.display()),
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_of_the_labels_has_a_glyph() {
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:/%()=,+><_*".chars() {
            assert_ne!(glyph(c), [0; 7], "{c}");
        }
        assert_eq!(glyph(' '), [0; 7]);
    }

    #[test]
    fn a_timeline_is_drawn_from_arm_files() {
        let dir = std::env::temp_dir().join(format!("vgf-plot-test-{}", std::process::id()));
        let arm = dir.join("fast-vigil");
        std::fs::create_dir_all(&arm).unwrap();
        std::fs::write(
            arm.join("samples.csv"),
            "t_rel_s,slot,memory_bytes,limit_bytes,state,health,eta_memory_s,eta_any_s,reasons\n\
             0.0,1,10485760,134217728,healthy,200,,,\n1.0,1,20971520,134217728,draining,503,20.0,20.0,memory_exhaustion\n",
        )
        .unwrap();
        std::fs::write(arm.join("events.jsonl"), "{\"t_rel\":0.5,\"slot\":1,\"kind\":\"fault_injected\"}\n")
            .unwrap();
        std::fs::write(arm.join("requests.csv"), "t_rel_s,latency_ms,status\n0.1,1.0,200\n1.2,1.0,503\n")
            .unwrap();
        std::fs::write(arm.join("summary.json"), "{\"target_slots\":[1]}").unwrap();
        let written = draw_scenario(&dir, "leak");
        assert_eq!(written.len(), 1);
        let bytes = std::fs::read(&written[0]).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
