//! The autoencoder: the embedded model, other models from files, and what the agent makes of
//! its scores.

use std::path::Path;
use std::process::Command;

use vigil::judge::anomaly::{Calibration, Scoring};
use vigil::judge::model::{Model, ModelError};
use vigil::judge::vector::{CHANNELS, INPUT_WIDTH, WINDOW};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model").join(name)).unwrap()
}

fn fixture_path(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_input_is_8_channels_by_8_ticks_in_the_model_cards_order() {
    assert_eq!(
        CHANNELS,
        [
            "memory_ratio",
            "fds_ratio",
            "threads_ratio",
            "cpu_ratio",
            "memory_pressure",
            "accept_queue_log",
            "probe_latency_log",
            "probe_failed",
        ]
    );
    assert_eq!(WINDOW, 8);
    assert_eq!(INPUT_WIDTH, 64);
    assert_eq!(vigil::judge::model::SHAPE, [1, 64]);
    // The model card's channel table lists the same channels at the same indices.
    let card =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/README.md")).unwrap();
    for (index, channel) in CHANNELS.iter().enumerate() {
        let row = format!("| {index} | `{channel}` |");
        assert!(card.lines().any(|line| line.starts_with(&row)), "models/README.md has no row {row}");
    }
}

#[test]
fn the_embedded_model_loads_and_gives_finite_scores() {
    let mut model = Model::embedded().unwrap();
    for fill in [0.0f32, 0.5, -1.0, 6.0, -6.0] {
        let score = model.score(&[fill; INPUT_WIDTH]).unwrap();
        assert!(score.is_finite() && score >= 0.0, "{fill}: {score}");
    }
    let mut ramp = [0.0f32; INPUT_WIDTH];
    for (i, value) in ramp.iter_mut().enumerate() {
        *value = (i as f32 / 5.0).sin() * 3.0;
    }
    let reconstruction = model.reconstruct(&ramp).unwrap();
    assert!(reconstruction.iter().all(|v| v.is_finite()));
    assert_eq!(model.score(&ramp).unwrap(), vigil::judge::model::mean_squared_error(&ramp, &reconstruction));
}

#[test]
fn the_f32_model_loads_and_roughly_agrees_with_the_int8_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vigil-ae-f32.nnef.tgz");
    let mut f32_model = Model::load(&std::fs::read(path).unwrap()).unwrap();
    let mut int8_model = Model::embedded().unwrap();
    let mut input = [0.0f32; INPUT_WIDTH];
    for (i, value) in input.iter_mut().enumerate() {
        *value = ((i * 7 % 13) as f32 - 6.0) / 4.0;
    }
    let (a, b) = (f32_model.score(&input).unwrap(), int8_model.score(&input).unwrap());
    assert!(a.is_finite() && b.is_finite());
    // Quantisation moves the reconstruction, not the order of magnitude of its error.
    assert!(b > a / 4.0 && b < a * 4.0, "f32 {a}, int8 {b}");
}

#[test]
fn a_model_that_halves_its_input_scores_a_quarter_of_the_mean_square() {
    let mut model = Model::load(&fixture("half-64.nnef.tgz")).unwrap();
    let mut input = [0.0f32; INPUT_WIDTH];
    input[0] = 2.0;
    input[63] = -4.0;
    // (1² + 2²) / 64
    assert_eq!(model.score(&input).unwrap(), 5.0 / 64.0);
    assert_eq!(model.score(&[0.0; INPUT_WIDTH]).unwrap(), 0.0);
}

#[test]
fn wrong_width_and_corrupt_models_are_refused() {
    let error = Model::load(&fixture("narrow-32.nnef.tgz")).unwrap_err();
    assert_eq!(error, ModelError::Shape { which: "input", found: "f32 [1, 32]".into() });
    assert_eq!(error.to_string(), "the input is f32 [1, 32], expected f32 [1, 64]");

    let mut corrupt = fixture("half-64.nnef.tgz");
    let middle = corrupt.len() / 2;
    corrupt[middle..].iter_mut().for_each(|byte| *byte ^= 0x5a);
    assert!(matches!(Model::load(&corrupt), Err(ModelError::Unreadable(_))));
}

#[test]
fn an_unusable_model_file_exits_64_naming_vigil_model() {
    let dir = std::env::temp_dir().join(format!("vigil-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.nnef.tgz");
    std::fs::write(&garbage, b"\x1f\x8bnot really gzip").unwrap();
    let cases = [
        (fixture_path("narrow-32.nnef.tgz"), "the input is f32 [1, 32], expected f32 [1, 64]"),
        (garbage.to_string_lossy().into_owned(), "not a usable NNEF model"),
        (dir.join("missing.nnef.tgz").to_string_lossy().into_owned(), "cannot read"),
    ];
    for (path, reason) in cases {
        let output = Command::new(VIGIL)
            .env_clear()
            .env("VIGIL_LISTEN", "127.0.0.1:0")
            .env("VIGIL_MODEL", &path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(64), "{path}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("VIGIL_MODEL") && stderr.contains(&path) && stderr.contains(reason),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calm_recorded_channels_calibrate_and_a_leak_and_failing_probe_stand_out() {
    let mut pipeline = Scoring::new(Model::embedded().unwrap(), Calibration::default());
    let calm = |t: usize| {
        [
            Some(0.40 + 0.01 * ((t % 20) as f64 / 20.0)),
            Some(0.06),
            Some(0.02),
            Some(0.10 + 0.02 * ((t % 7) as f64 / 7.0)),
            Some(0.0),
            Some(0.0),
            Some((4.0 + (t % 3) as f64).ln_1p()),
            Some(0.0),
        ]
    };
    let mut readings = Vec::new();
    for t in 0..600 {
        readings.extend(pipeline.push(&calm(t)).unwrap());
    }
    let threshold = pipeline.detector().threshold().expect("calibrated after 60 + 300 scores");
    assert!(threshold.is_finite() && threshold > 0.0);
    assert!(readings.iter().all(|r| r.score.is_finite()));
    let calm_anomalous = readings.iter().filter(|r| r.anomalous).count();
    assert_eq!(calm_anomalous, 0, "threshold {threshold}");

    // Memory jumps, the probe fails and its latency soars: the kind of tick never seen calm.
    let mut flagged = false;
    for t in 600..620 {
        let mut raw = calm(t);
        raw[0] = Some(0.95);
        raw[6] = Some(2000f64.ln_1p());
        raw[7] = Some(1.0);
        let reading = pipeline.push(&raw).unwrap().unwrap();
        flagged |= reading.anomalous;
    }
    assert!(flagged, "threshold {threshold}");
}
