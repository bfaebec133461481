"""Stream K listener reactions from an exported online REGNN with onnxruntime and NumPy alone.

    regnn train --online --data data/ --out runs/online
    regnn export --run runs/online --out export/
    python examples/onnx_stream.py export/ --frames 250 --out reactions.npy

No torch and no regnn: everything the loop needs is in ``export/regnn_export.json`` (written by
``regnn export``): the step graph's inputs and outputs, the context window ``D`` and hop
``H``, and the noise recipe with its constants. Speaker frames arrive one at a time (a live
camera); every ``H`` frames, at speaker frame ``t``, the step runs on the last ``D`` speaker
frames (frame 0 repeated before the start) and returns listener frames ``t .. t+H-1``,
released one per completed speaker frame, so listener frame ``t`` leaves with speaker frame
``t`` (the model's ``H - 1`` frames of lag are inside it). The carried state (each reaction's
mixture component, the noise of the frames shared by consecutive windows, the last emitted
frame) goes from one step's outputs to the next step's inputs.

The speaker is given as per-frame features: ``--face`` a ``(T, face_dim)`` ``.npy`` (the 25
REACT attributes by default) and ``--audio`` a ``(T, audio_dim)`` ``.npy`` of log-mel frames
(regnn's data layer computes them); without them a synthetic speaker is used (sine-driven
attributes and random log-mel frames). Prints the per-frame cost; ``--out`` saves the
reactions ``(K, T, 25)`` float32.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


class OnnxStream:
    """The streaming loop of ``regnn.online.model.REGNNStream`` around the exported step."""

    def __init__(self, export_dir: str | Path, seed: int = 0, threads: int = 1) -> None:
        export_dir = Path(export_dir)
        self.meta = json.loads((export_dir / "regnn_export.json").read_text("utf-8"))
        if "online" not in self.meta:
            raise SystemExit(f"{export_dir}: not the export of an online run (no 'online' graph)")
        graph = self.meta["online"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(export_dir / graph["file"]), opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i["name"]: i for i in graph["inputs"]}
        self.D, self.H, self.k = graph["context"], graph["hop"], self.meta["samples"]
        self.nodes = len(self.meta["attributes"])
        s = self.meta["sampling"]
        self.mode, self.sigma = s["noise"], s["sigma"]
        self.std, self.rho = np.asarray(s["std"]), np.asarray(s["rho"])
        self.rng = np.random.default_rng(seed)
        k = self.k
        # stratified component uniforms: reaction j draws u_j on [j/K, (j+1)/K)
        self.u = ((np.arange(k) + self.rng.random(k)) / k).astype(np.float32)
        self.component = np.full(k, -1, dtype=np.int64)  # -1: choose at the first step
        self.noise_state: np.ndarray | None = None
        self.last_frame = np.zeros((k, self.nodes), dtype=np.float32)
        self._ar: np.ndarray | None = None  # last value of the AR(1) noise, (K, 25)
        self.face: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []  # listener frames computed, not yet released

    def _noise(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames of each reaction's noise ``(K, frames, 25)``."""
        w = self.rng.standard_normal((self.k, frames, self.nodes))
        if self.mode == "residual":  # AR(1) per attribute, continued across calls
            gain = np.sqrt(np.clip(1.0 - self.rho**2, 0.0, None))
            out = np.empty_like(w)
            prev = self._ar
            for t in range(frames):
                prev = w[:, t] if prev is None else self.rho * prev + gain * w[:, t]
                out[:, t] = prev
            self._ar = prev
            return (out * self.std).astype(np.float32)
        if self.mode == "gaussian":
            return (w * self.sigma).astype(np.float32)
        peak = np.abs(w).max(axis=(1, 2), keepdims=True)  # "scaled": peak <= sqrt(sigma)
        return (w * np.minimum(np.sqrt(self.sigma) / peak, 1.0)).astype(np.float32)

    def _step(self, t: int) -> np.ndarray:
        D, H = self.D, self.H
        rows = [max(i, 0) for i in range(t - D + 1, t + 1)]  # frame 0 repeated on the left
        if self.noise_state is None:
            first = self._noise(D)
            self.noise_state, new = first[:, : D - H], first[:, D - H:]
        else:
            new = self._noise(H)
        feed = {"u": self.u, "component": self.component, "noise_state": self.noise_state,
                "noise_new": new, "last_frame": self.last_frame}
        if "face" in self.inputs:
            feed["face"] = np.stack([self.face[i] for i in rows]).astype(np.float32)
        if "audio" in self.inputs:
            feed["audio"] = np.stack([self.audio[i] for i in rows]).astype(np.float32)
        frames, self.component, self.noise_state, self.last_frame = self.session.run(
            ["frames", "component_out", "noise_state_out", "last_frame_out"], feed)
        return frames  # (K, H, 25): listener frames t .. t+H-1

    def push(self, face: np.ndarray, audio: np.ndarray | None = None) -> np.ndarray:
        """Next speaker frames ``(n, face_dim)`` (and audio features ``(n, audio_dim)``) ->
        the next listener frames ``(K, n, 25)``."""
        out = []
        for j in range(face.shape[0]):
            t = len(self.face)
            self.face.append(face[j])
            if audio is not None:
                self.audio.append(audio[j])
            if t % self.H == 0:
                self.pending.extend(self._step(t).transpose(1, 0, 2))
            out.append(self.pending.pop(0))
        return np.stack(out, axis=1) if out else np.zeros((self.k, 0, self.nodes), np.float32)


def synthetic_speaker(frames: int, face_dim: int, audio_dim: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    face = 0.5 + 0.4 * np.sin(t / 11.0 + rng.uniform(0, 6, face_dim)[None])
    audio = rng.standard_normal((frames, audio_dim))
    return face.astype(np.float32), audio.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", help="folder written by regnn export for an online run")
    ap.add_argument("--face", help="speaker face features (T, face_dim) .npy")
    ap.add_argument("--audio", help="speaker log-mel features (T, audio_dim) .npy")
    ap.add_argument("--frames", type=int, default=250, help="frames of the synthetic speaker")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise (and the speaker)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--out", help="save the reactions (K, T, 25) float32 here (.npy)")
    args = ap.parse_args()

    stream = OnnxStream(args.export, args.seed, args.threads)
    shapes = {name: spec["shape"] for name, spec in stream.inputs.items()}
    face_dim = shapes["face"][-1] if "face" in shapes else 25
    audio_dim = shapes["audio"][-1] if "audio" in shapes else 0
    face, audio = synthetic_speaker(args.frames, face_dim, audio_dim, args.seed)
    if args.face:
        face = np.load(args.face).astype(np.float32)
    if args.audio:
        audio = np.load(args.audio).astype(np.float32)
    uses_audio = "audio" in stream.inputs
    chunks, start = [], time.perf_counter()
    for t in range(face.shape[0]):  # one frame at a time, like a live camera
        chunks.append(stream.push(face[t:t + 1], audio[t:t + 1] if uses_audio else None))
    wall = time.perf_counter() - start
    reactions = np.concatenate(chunks, axis=1)
    print(f"{reactions.shape[1]} frames x K = {stream.k} reactions in {wall:.2f} s: "
          f"{wall / reactions.shape[1] * 1e3:.2f} ms per frame (real time: 40 ms); "
          f"motor inverse {stream.meta['inverse']['total_iterations']} fixed iterations, "
          f"error <= {stream.meta['inverse']['tolerance']:g}")
    if args.out:
        np.save(args.out, reactions.astype(np.float32))
        print(f"reactions {reactions.shape} saved to {args.out}")


if __name__ == "__main__":
    main()
