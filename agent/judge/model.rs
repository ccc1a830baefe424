//! The autoencoder: an NNEF model run with tract. The only file that knows tract.
//!
//! The model takes one input `[1, 64]` of f32 (the vector of [`crate::judge::vector`]) and gives one
//! output of the same shape, its reconstruction. The score of a tick is the mean squared error
//! between the two: small for what looks like the healthy telemetry the model was trained on,
//! large for what does not. The int8 model in `models/` is built into the binary.
//!
//! A model is loaded, optimised and planned once; one spawned state is reused for every tick.

use std::sync::OnceLock;

use tract_nnef::prelude::*;

use crate::judge::anomaly::Scorer;
use crate::judge::vector::INPUT_WIDTH;

/// The int8 model shipped in `models/`, built into the binary.
pub const EMBEDDED: &[u8] = include_bytes!("../../models/vigil-ae-int8.nnef.tgz");
/// What the embedded model is called in logs and `/status`.
pub const EMBEDDED_NAME: &str = "embedded vigil-ae-int8";
/// The shape of the model's input and output.
pub const SHAPE: [usize; 2] = [1, INPUT_WIDTH];

/// Why a model cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Not an NNEF archive tract can read: truncated, corrupt, or an unsupported operator.
    #[error("not a usable NNEF model: {0}")]
    Unreadable(String),
    /// The model has more or fewer than one input and one output.
    #[error("expected one input and one output, found {inputs} and {outputs}")]
    Arity { inputs: usize, outputs: usize },
    /// An input or output is not f32 of shape [1, 64].
    #[error("the {which} is {found}, expected f32 [1, 64]")]
    Shape { which: &'static str, found: String },
    /// The model failed to run.
    #[error("the model failed to run: {0}")]
    Run(String),
}

/// A loaded model, ready to score one vector per tick.
pub struct Model {
    state: TypedSimpleState,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").finish_non_exhaustive()
    }
}

/// tract's NNEF reader, built once per process.
fn nnef() -> &'static tract_nnef::framework::Nnef {
    static NNEF: OnceLock<tract_nnef::framework::Nnef> = OnceLock::new();
    NNEF.get_or_init(tract_nnef::nnef)
}

impl Model {
    /// Reads an `.nnef.tgz` (or plain `.nnef.tar`) archive, checks that it maps f32 [1, 64] to
    /// f32 [1, 64], optimises it, and runs it once on zeros so a model that cannot run is
    /// refused here rather than on the first tick.
    pub fn load(bytes: &[u8]) -> Result<Model, ModelError> {
        let mut reader = bytes;
        let model = nnef().model_for_read(&mut reader).map_err(unreadable)?;
        let (inputs, outputs) = (model.inputs.len(), model.outputs.len());
        if inputs != 1 || outputs != 1 {
            return Err(ModelError::Arity { inputs, outputs });
        }
        check_fact("input", model.input_fact(0).map_err(unreadable)?)?;
        check_fact("output", model.output_fact(0).map_err(unreadable)?)?;
        let plan = model.into_optimized().map_err(unreadable)?.into_runnable().map_err(unreadable)?;
        let state = plan.spawn().map_err(unreadable)?;
        let mut model = Model { state };
        model.reconstruct(&[0.0; INPUT_WIDTH])?;
        Ok(model)
    }

    /// The embedded int8 model.
    pub fn embedded() -> Result<Model, ModelError> {
        Model::load(EMBEDDED)
    }

    /// The model's output for `input`.
    pub fn reconstruct(&mut self, input: &[f32; INPUT_WIDTH]) -> Result<[f32; INPUT_WIDTH], ModelError> {
        let tensor = Tensor::from_shape(&SHAPE, input).map_err(run_error)?;
        let outputs = self.state.run(tvec!(tensor.into())).map_err(run_error)?;
        let output = outputs.first().ok_or_else(|| ModelError::Run("no output".into()))?;
        let view = output.to_plain_array_view::<f32>().map_err(run_error)?;
        if view.len() != INPUT_WIDTH {
            return Err(ModelError::Run(format!("output has {} values, expected 64", view.len())));
        }
        let mut reconstruction = [0.0f32; INPUT_WIDTH];
        for (slot, value) in reconstruction.iter_mut().zip(view.iter()) {
            *slot = *value;
        }
        Ok(reconstruction)
    }

    /// The reconstruction error of `input`: the mean squared difference between the input and
    /// the model's output.
    pub fn score(&mut self, input: &[f32; INPUT_WIDTH]) -> Result<f32, ModelError> {
        let output = self.reconstruct(input)?;
        Ok(mean_squared_error(input, &output))
    }
}

impl Scorer for Model {
    type Error = ModelError;

    fn score(&mut self, input: &[f32; INPUT_WIDTH]) -> Result<f32, ModelError> {
        Model::score(self, input)
    }
}

/// The mean of the squared differences, summed in f64.
pub fn mean_squared_error(a: &[f32; INPUT_WIDTH], b: &[f32; INPUT_WIDTH]) -> f32 {
    let sum: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    (sum / INPUT_WIDTH as f64) as f32
}

fn check_fact(which: &'static str, fact: &TypedFact) -> Result<(), ModelError> {
    let shape_ok = fact.shape.as_concrete() == Some(&SHAPE[..]);
    if shape_ok && fact.datum_type == f32::datum_type() {
        return Ok(());
    }
    let dims: Vec<String> = fact.shape.iter().map(|dim| dim.to_string()).collect();
    let found = format!("{:?} [{}]", fact.datum_type, dims.join(", ")).to_lowercase();
    Err(ModelError::Shape { which, found })
}

/// tract's error with its causes, on one line.
fn one_line(error: &TractError) -> String {
    format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn unreadable(error: TractError) -> ModelError {
    ModelError::Unreadable(one_line(&error))
}

fn run_error(error: TractError) -> ModelError {
    ModelError::Run(one_line(&error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_squared_error_of_known_vectors() {
        let zeros = [0.0f32; INPUT_WIDTH];
        assert_eq!(mean_squared_error(&zeros, &zeros), 0.0);
        let mut one = zeros;
        one[5] = 8.0;
        assert_eq!(mean_squared_error(&one, &zeros), 1.0);
        assert_eq!(mean_squared_error(&[2.0; INPUT_WIDTH], &[-1.0; INPUT_WIDTH]), 9.0);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for bytes in [&b""[..], b"not a model", &EMBEDDED[..EMBEDDED.len() / 2]] {
            let error = Model::load(bytes).unwrap_err();
            assert!(matches!(error, ModelError::Unreadable(_)), "{error}");
            assert!(!error.to_string().contains('\n'), "{error}");
        }
    }

    #[test]
    fn the_embedded_model_scores_finite_values() {
        let mut model = Model::embedded().unwrap();
        let calm = [0.0f32; INPUT_WIDTH];
        let mut spike = calm;
        spike[INPUT_WIDTH - 8] = crate::judge::vector::CLIP as f32;
        let calm_score = model.score(&calm).unwrap();
        let spike_score = model.score(&spike).unwrap();
        assert!(calm_score.is_finite() && calm_score >= 0.0);
        assert!(spike_score.is_finite() && spike_score > calm_score, "{calm_score} {spike_score}");
        // The state is reused: the same input gives the same score.
        assert_eq!(model.score(&calm).unwrap(), calm_score);
    }
}
