//! The autoencoder's cost: one inference with the int8 and the f32 model, loading each, and
//! one tick of the agent's path (normalise the channels, score, calibrate or compare).
//!
//! `cargo bench --bench model`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil::judge::anomaly::{Calibration, Scoring};
use vigil::judge::model::{EMBEDDED, Model};
use vigil::judge::vector::{INPUT_WIDTH, Raw, Vectoriser};

const F32_MODEL: &[u8] = include_bytes!("../models/vigil-ae-f32.nnef.tgz");

/// One tick of plausible channels: a slow sawtooth in memory, steady fds and threads, some CPU,
/// a probe that answers in a few milliseconds.
fn raw(t: usize) -> Raw {
    [
        Some(0.40 + 0.002 * (t % 30) as f64),
        Some(0.06),
        Some(0.02),
        Some(0.10 + 0.01 * (t % 7) as f64),
        Some(0.0),
        Some(0.0),
        Some((3.0 + (t % 4) as f64).ln_1p()),
        Some(0.0),
    ]
}

/// A model input after some minutes of history.
fn input() -> [f32; INPUT_WIDTH] {
    let mut vectoriser = Vectoriser::default();
    let mut last = [0.0; INPUT_WIDTH];
    for t in 0..400 {
        if let Some(vector) = vectoriser.push(&raw(t)) {
            last = vector;
        }
    }
    last
}

fn inference(c: &mut Criterion) {
    let input = input();
    let mut group = c.benchmark_group("inference");
    for (name, bytes) in [("int8", EMBEDDED), ("f32", F32_MODEL)] {
        let mut model = Model::load(bytes).unwrap();
        group.bench_function(name, |b| b.iter(|| model.score(black_box(&input)).unwrap()));
    }
    group.finish();
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    for (name, bytes) in [("int8", EMBEDDED), ("f32", F32_MODEL)] {
        group.bench_function(name, |b| b.iter(|| Model::load(black_box(bytes)).unwrap()));
    }
    group.finish();
}

fn tick(c: &mut Criterion) {
    let mut pipeline = Scoring::new(Model::embedded().unwrap(), Calibration::default());
    let mut t = 0;
    c.bench_function("tick/vector_score_detect_int8", |b| {
        b.iter(|| {
            t += 1;
            pipeline.push(black_box(&raw(t))).unwrap()
        })
    });
}

criterion_group!(benches, inference, load, tick);
criterion_main!(benches);
