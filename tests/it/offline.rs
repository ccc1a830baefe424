//! The offline commands of the built binary: `vigil vectors` and `vigil replay`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vigil::judge::vector::{CHANNELS, CLIP, INPUT_WIDTH, WINDOW};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path).to_string_lossy().into_owned()
}

/// A scratch folder removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vigil-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).env_clear().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A recording as `VIGIL_RECORD` writes it: a slow sawtooth in memory, steady fds, a probe
/// that answers, and channels that have no reading.
fn recording(ticks: usize) -> String {
    let mut text = format!("unix_ms,{}\n", CHANNELS.join(","));
    for t in 0..ticks {
        let memory = 0.40 + 0.002 * (t % 30) as f64;
        let latency = (3.0 + (t % 4) as f64).ln_1p();
        text.push_str(&format!(
            "{},{memory},0.0625,0.01,0.05,,,{latency},0\n",
            1_700_000_000_000u64 + 1000 * t as u64
        ));
    }
    text
}

#[test]
fn vectors_are_one_row_of_64_per_tick_once_the_window_is_full() {
    let scratch = Scratch::new("vectors");
    let input = scratch.write("record.csv", &recording(40));
    let output = vigil(&["vectors", &input]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<String> =
        std::iter::once("unix_ms".to_string()).chain((0..INPUT_WIDTH).map(|i| format!("v{i}"))).collect();
    assert_eq!(lines[0], header.join(","));
    assert_eq!(lines.len(), 1 + 40 - (WINDOW - 1));
    assert!(lines[1].starts_with(&format!("{},", 1_700_000_000_000u64 + 1000 * (WINDOW as u64 - 1))));
    for line in &lines[1..] {
        let values: Vec<f32> = line.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
        assert_eq!(values.len(), INPUT_WIDTH, "{line}");
        assert!(values.iter().all(|v| v.abs() <= CLIP as f32), "{line}");
        // Channels without a reading are 0 in every tick of the window.
        for t in 0..WINDOW {
            assert_eq!(values[t * CHANNELS.len() + 4], 0.0, "memory_pressure is missing");
            assert_eq!(values[t * CHANNELS.len() + 5], 0.0, "accept_queue_log is missing");
        }
    }
}

#[test]
fn vectors_refuse_bad_input_with_the_line_and_a_data_error() {
    let scratch = Scratch::new("vectors-bad");
    let mut bad_row = recording(5);
    bad_row.push_str("1700000009000,0.4,0.0625,oops,0.05,,,1.6,0\n");
    let cases = [
        (
            "header.csv",
            "unix_ms,memory\n1,2\n".to_string(),
            65,
            "line 1: expected the header unix_ms,memory_ratio",
        ),
        ("row.csv", bad_row, 65, "line 7: threads_ratio \"oops\" is not a number"),
        ("empty.csv", String::new(), 65, "the file is empty"),
    ];
    for (name, text, code, expected) in cases {
        let input = scratch.write(name, &text);
        let output = vigil(&["vectors", &input]);
        assert_eq!(output.status.code(), Some(code), "{name}");
        let message = stderr(&output);
        assert!(message.contains(expected) && message.contains(&input), "{name}: {message}");
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(stdout(&output).is_empty(), "nothing on stdout for {name}");
    }
    let output = vigil(&["vectors", &scratch.path("missing.csv")]);
    assert_eq!(output.status.code(), Some(66));
    assert!(stderr(&output).contains("cannot read"), "{}", stderr(&output));
    for args in [&["vectors"][..], &["vectors", "a.csv", "b.csv"], &["vectors", "--all"]] {
        let output = vigil(args);
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        assert!(stderr(&output).contains("vigil vectors <recording.csv>"), "{}", stderr(&output));
    }
}

/// Reads replay output: (timestamp, value, anomaly_score, label) per row, after checking the
/// header and the score range.
fn results(text: &str) -> Vec<(String, String, f64, u8)> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score,label"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            let score: f64 = fields[2].parse().unwrap();
            assert!((0.0..=1.0).contains(&score), "{line}");
            (fields[0].to_string(), fields[1].to_string(), score, fields[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn replay_of_a_nab_file_is_in_nab_results_format_with_labels_from_the_windows() {
    let scratch = Scratch::new("replay-nab");
    let input = fixture("nab/artificialWithAnomaly/art_daily_jumpsup.csv");
    let out = scratch.path("results.csv");
    let output =
        vigil(&["replay", &input, "--out", &out, "--windows", &fixture("nab/combined_windows.json")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("1440 rows"), "{}", stderr(&output));

    let data = std::fs::read_to_string(&input).unwrap();
    let rows = results(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(rows.len(), data.lines().count() - 1, "one result per data row");
    for ((timestamp, value, _, label), line) in rows.iter().zip(data.lines().skip(1)) {
        assert_eq!(format!("{timestamp},{value}"), line, "timestamp and value are copied");
        let inside = ("2014-04-10 16:15:00"..="2014-04-12 01:45:00").contains(&timestamp.as_str());
        assert_eq!(*label, u8::from(inside), "{timestamp}");
    }
    assert_eq!(rows.iter().filter(|r| r.3 == 1).count(), 403, "16:15 on the 10th to 01:45 on the 12th");
    // The probationary period (15 % of 1440 rows) calibrates: no score there.
    assert!(rows[..216].iter().all(|r| r.2 == 0.0));
    assert!(rows[216..].iter().all(|r| r.2 > 0.0));
}

#[test]
fn replay_of_a_recording_writes_to_stdout_and_labels_nothing_without_windows() {
    let scratch = Scratch::new("replay-recording");
    let input = scratch.write("record.csv", &recording(500));
    let output = vigil(&["replay", &input, "--calibration", "100"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows = results(&stdout(&output));
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[0].0, "1700000000000");
    assert_eq!(rows[0].1, "0.4");
    assert!(rows.iter().all(|r| r.3 == 0));
    // 60 settling scores and 100 calibration scores after the window fills.
    let first_scored = WINDOW - 1 + 60 + 100;
    assert!(rows[..first_scored].iter().all(|r| r.2 == 0.0));
    assert!(rows[first_scored..].iter().all(|r| r.2 > 0.0));
}

#[test]
fn replay_with_another_model_and_its_errors() {
    let scratch = Scratch::new("replay-errors");
    let input = fixture("nab/artificialWithAnomaly/art_daily_jumpsup.csv");
    let half = fixture("model/half-64.nnef.tgz");
    let output = vigil(&["replay", &input, "--model", &half]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(results(&stdout(&output)).len(), 1440);

    let windows = fixture("nab/combined_windows.json");
    let cases: [(&[&str], i32, &str); 7] = [
        (&["replay"], 64, "expected an input file"),
        (&["replay", &input, "--frob"], 64, "unknown option \"--frob\""),
        (&["replay", &input, "--out"], 64, "--out needs a value"),
        (&["replay", &input, "--key", "a/b.csv"], 64, "--key needs --windows"),
        (&["replay", &input, "--calibration=0"], 64, "--calibration \"0\""),
        (
            &["replay", &input, "--model", &fixture("model/narrow-32.nnef.tgz")],
            64,
            "the input is f32 [1, 32], expected f32 [1, 64]",
        ),
        (&["replay", &input, "--windows", &windows, "--key", "x/y.csv"], 65, "no windows for \"x/y.csv\""),
    ];
    for (args, code, expected) in cases {
        let output = vigil(args);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
        assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    }
    let output = vigil(&["replay", &input, "--out", &scratch.path("no-such-dir/out.csv")]);
    assert_eq!(output.status.code(), Some(73), "{}", stderr(&output));
}
