"""The autoencoder in numpy: dense layers, ReLU hidden activations, linear output; training
with Adam on the mean squared reconstruction error; per-tensor symmetric int8 quantisation and
a numpy simulation of the int8 arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYERS = (64, 32, 8, 32, 64)


@dataclass
class Net:
    weights: list  # [out, in] f32
    biases: list  # [out] f32

    @staticmethod
    def init(rng: np.random.Generator, layers=LAYERS) -> "Net":
        weights, biases = [], []
        for a, b in zip(layers, layers[1:]):
            weights.append((rng.standard_normal((b, a)) * np.sqrt(2.0 / a)).astype(np.float64))
            biases.append(np.zeros(b))
        return Net(weights, biases)

    def forward(self, x: np.ndarray, keep: bool = False, dtype=np.float64):
        """x [n, 64] -> reconstruction [n, 64]; with keep, also every layer's output."""
        h = np.asarray(x, dtype)
        acts = [h]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T.astype(dtype) + b.astype(dtype)
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
            acts.append(h)
        return (h, acts) if keep else h

    def as_f32(self) -> "Net":
        return Net([w.astype(np.float32) for w in self.weights], [b.astype(np.float32) for b in self.biases])


def score(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The anomaly score the agent computes: mean squared error per vector."""
    x = np.asarray(x, np.float64)
    return np.mean((np.asarray(y, np.float64) - x) ** 2, axis=-1)


def train(net: Net, x: np.ndarray, rng: np.random.Generator, epochs: int, batch: int = 256,
          lr: float = 2e-3, weight_decay: float = 1e-5, log=None) -> list:
    """Adam on the mean squared error, minibatches in a seeded order. Returns the per-epoch loss."""
    net.weights = [w.astype(np.float32) for w in net.weights]
    net.biases = [b.astype(np.float32) for b in net.biases]
    x = np.asarray(x, np.float32)
    params = net.weights + net.biases
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    losses = []
    n_layers = len(net.weights)
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        rate = np.float32(lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))  # cosine decay
        for start in range(0, len(x), batch):
            xb = x[order[start:start + batch]]
            y, acts = net.forward(xb, keep=True, dtype=np.float32)
            diff = y - xb
            total += float(np.sum(diff.astype(np.float64) ** 2))
            g = np.float32(2.0 / diff.size) * diff
            grads_w, grads_b = [None] * n_layers, [None] * n_layers
            for i in range(n_layers - 1, -1, -1):
                grads_w[i] = g.T @ acts[i] + weight_decay * net.weights[i]
                grads_b[i] = g.sum(axis=0)
                if i > 0:
                    g = (g @ net.weights[i]) * (acts[i] > 0)
            step += 1
            for j, (p, gr) in enumerate(zip(params, grads_w + grads_b)):
                m[j] *= b1
                m[j] += (1 - b1) * gr
                v[j] *= b2
                v[j] += (1 - b2) * gr * gr
                p -= (rate / (1 - b1 ** step)) * m[j] / (np.sqrt(v[j] / (1 - b2 ** step)) + eps)
        losses.append(total / x.size)
        if log:
            log(f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.5f}")
    return losses


@dataclass
class Quantised:
    weights: list  # int8 [out, in]
    biases: list  # int32 [out] = round(b / (s_in * s_w))
    weight_scales: list  # one per layer
    act_scales: list  # input, then each layer's output


ACTIVATION_PERCENTILE = 99.999


def quantise(net: Net, calibration: np.ndarray, input_range: float,
             percentile: float = ACTIVATION_PERCENTILE) -> Quantised:
    """Per-tensor symmetric int8: weight scale max|w|/127; the input scale input_range/127 (the
    input is clipped to that range); each layer's output scale: the `percentile` of |output|
    over the calibration vectors / 127 (larger values saturate); biases as i32 in units of
    s_in * s_w."""
    _, acts = net.forward(calibration, keep=True)
    act_scales = [input_range / 127.0] + [float(np.percentile(np.abs(a), percentile)) / 127.0 for a in acts[1:]]
    weights, biases, weight_scales = [], [], []
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        sw = float(np.max(np.abs(w))) / 127.0
        weight_scales.append(sw)
        weights.append(np.clip(np.round(w / sw), -127, 127).astype(np.int8))
        biases.append(np.round(b / (act_scales[i] * sw)).astype(np.int32))
    act_scales = [float(np.float32(s)) for s in act_scales]
    weight_scales = [float(np.float32(s)) for s in weight_scales]
    return Quantised(weights, biases, weight_scales, act_scales)


def int8_forward(q: Quantised, x: np.ndarray) -> np.ndarray:
    """What the int8 graph computes, in numpy (rounding half away from zero, saturation)."""
    def requant(v, scale):
        return np.clip(np.sign(v) * np.floor(np.abs(v) / scale + 0.5), -128, 127)

    h = requant(np.asarray(x, np.float64), q.act_scales[0])
    n = len(q.weights)
    for i in range(n):
        acc = h @ q.weights[i].astype(np.float64).T + q.biases[i]
        h = requant(acc * (q.act_scales[i] * q.weight_scales[i]), q.act_scales[i + 1])
        if i < n - 1:
            h = np.maximum(h, 0)
    return h * q.act_scales[n]
