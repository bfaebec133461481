"""End to end: regnn train --online, generate through the stream, serve the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_CONFIG
from regnn.cli import main


def test_train_online_writes_an_online_run(online_run: Path) -> None:
    cfg = yaml.safe_load((online_run / "config.yaml").read_text())
    assert cfg["model"]["name"] == "regnn-online" and cfg["model"]["causal"] is True
    # the graph window D and the hop H, each in its own field; training windows span D + H - 1
    assert (cfg["model"]["window"], cfg["model"]["hop"], cfg["model"]["stride"]) == (10, 4, 4)
    assert (online_run / "checkpoints" / "best.ckpt").is_file()


def test_window_and_hop_need_online(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", "x", "--out", "y", "--hop", "4", "--print-config"]) == 2
    assert "add --online" in capsys.readouterr().err
    assert main(["train", "--data", "x", "--out", "y", "--online", "--window", "4", "--hop",
                 "4", "--print-config"]) == 2
    assert "must be larger than --hop" in capsys.readouterr().err


def test_generate_uses_the_stream_and_serve_matches_it(online_run: Path, synthetic_root: Path,
                                                       tmp_path: Path) -> None:
    from regnn.commands.serve import make_factory
    from regnn.data.audio import read_wav
    from regnn.data.react import ReactSplit
    from regnn.generate import generate_predictions, item_generator
    from regnn.online.client import ReactionClient
    from regnn.online.server import ReactionServer, ServerThread
    from regnn.train import load_module

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "pred"
        generate_predictions(online_run, synthetic_root, "test", out, samples=2, seed=4,
                             progress=False, limit=1)
        ds = ReactSplit(synthetic_root, "test")
        pred = np.load(out / "test" / f"{ds.items[0].speaker_path}.npy")
        assert pred.shape == (2, 750, 25)
        module = load_module(online_run)
        stream = module.stream(2, generator=item_generator(4, 0))
        face, audio = ds.speaker(0), ds.audio(0)
        streamed = np.concatenate([stream.push_features(face[i:i + 7], audio[i:i + 7])
                                   for i in range(0, 750, 7)], axis=1)
        np.testing.assert_allclose(streamed, pred, atol=1e-6)  # regnn generate == streaming

        samples, rate = read_wav(ds.audio_path(ds.items[0].speaker_path))
        samples = samples.mean(axis=1)
        per = rate // 25
        face = np.round(face, 5)  # what travels in JSON
        factory, name = make_factory(str(online_run), False)
        server = ReactionServer(factory, "127.0.0.1", 0, model_name=name)
        with ServerThread(server) as url, ReactionClient(url) as client:
            info = client.start(k=2, seed=9)
            assert (info["hop"], info["context"], info["lag"]) == (4, 10, 3)
            assert client.send(face[:3]).shape == (2, 0, 25)  # the model listens: wait for audio
            got = [client.send(face[3 + i:4 + i], samples[i * per:(i + 1) * per], rate, "f32le")
                   for i in range(40)]
        got = np.concatenate(got, axis=1)
        ref = module.stream(2, seed=9)
        ref.push(face[:3])
        want = np.concatenate([ref.push(face[3 + i:4 + i], samples[i * per:(i + 1) * per], rate)
                               for i in range(40)], axis=1)
        assert got.shape == want.shape and got.shape[1] >= 39
        np.testing.assert_allclose(got, want, atol=1e-4)
    finally:
        torch.set_num_threads(threads)


def test_serve_refuses_an_offline_run(synthetic_root: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_CONFIG.replace("epochs: 1", "epochs: 1\n  val_items: 0").replace(
        "  val_items: 2\n", ""))
    run = tmp_path / "offline"
    assert main(["train", "--data", str(synthetic_root), "--out", str(run), "--config",
                 str(cfg), "--seed", "1", "--no-progress", "--set", "train.batch_size=512"]) == 0
    capsys.readouterr()
    assert main(["serve", "--run", str(run)]) == 2
    assert "offline model" in capsys.readouterr().err


def test_open_stream_takes_a_model_a_module_or_a_run(online_run: Path) -> None:
    from regnn.online import open_stream
    from regnn.online.model import REGNNStream
    from regnn.train import load_module

    module = load_module(online_run)
    face = np.random.default_rng(0).random((30, 25)).astype(np.float32)
    audio = np.random.default_rng(1).standard_normal((30, 64)).astype(np.float32)
    outs = []
    for model in (online_run, str(online_run), module, module.online):
        stream = open_stream(model, k=2, seed=3, sigma=module.config.generate.sigma)
        assert isinstance(stream, REGNNStream) and stream.k == 2
        outs.append(stream.push_features(face, audio))
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    np.testing.assert_array_equal(outs[0], module.stream(2, seed=3).push_features(face, audio))
    with pytest.raises(Exception, match="needs an online model"):
        open_stream(torch.nn.Linear(2, 2), k=1)
