"""Image FID (regnn.metrics.fid): pytorch-fid's Inception layout, loading, features, the
Fréchet distance, and ``regnn evaluate --fid-weights``.

The real weight file cannot be downloaded here, so the network is a randomly initialised
one saved to a temporary file. Reference values marked "pytorch-fid" were produced once by
pytorch-fid 0.3.0's ``inception.py`` (InceptionV3 wrapper and FIDInception* blocks) on
torchvision 0.29.1's ``Inception3``, both run from their source files with the same
weights (torchvision cannot be installed beside our torch, so this cannot run here).
Inception forward passes are slow on CPU: the tests use few, small images and the cheap
64-d block where the feature size does not matter.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regnn.cli import main
from regnn.data.react import ReactSplit
from regnn.errors import ConfigError, DataError, RegnnError
from regnn.evaluate import evaluate_predictions
from regnn.fid import (
    FID_WEIGHTS_NAME,
    FIDInception3,
    FIDSettings,
    InceptionFeatures,
    calculate_frechet_distance,
    fid_from_features,
    fid_of_folders,
    fid_of_reactions,
    frame_indices,
    image_files,
    inception_features,
    load_inception,
    random_inception,
)
from regnn.render.face import FaceRenderer

# sha256 of "key:shape" lines of the state dict of pytorch-fid's fid_inception_v3() network
# (torchvision 0.29.1 Inception3 + pytorch-fid 0.3.0 FID blocks), in state-dict order
REFERENCE_LAYOUT_SHA256 = "b45715ac497e250fa7f72d1ef3ee440168ea622a4180b55a5c8dabd2d9d5258b"
REFERENCE_CHILDREN = [
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool",
    "dropout", "fc",
]


@pytest.fixture(scope="module")
def net0() -> FIDInception3:
    """random_inception(0), shared (building one costs about a second)."""
    return random_inception(0)


@pytest.fixture(scope="module")
def weights(net0: FIDInception3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fid") / FID_WEIGHTS_NAME
    torch.save(net0.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """12 rendered faces (96 px) of random but valid attribute frames."""
    rng = np.random.default_rng(3)
    attrs = rng.random((12, 25)).astype(np.float32)
    attrs[:, 15:17] = attrs[:, 15:17] * 2 - 1
    attrs[:, 17:] /= attrs[:, 17:].sum(1, keepdims=True)
    renderer = FaceRenderer(size=96, supersample=1)
    return np.stack([renderer.render(a) for a in attrs])


def _pattern() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    img = torch.stack([torch.sin(6 * xx) * 0.5 + 0.5, yy, (xx * yy) ** 0.5])
    return torch.stack([img, img.flip(-1)])


# ---------------------------------------------------------------------------- the network
def test_module_tree_and_state_dict_match_pytorch_fid() -> None:
    net = FIDInception3()
    assert [name for name, _ in net.named_children()] == REFERENCE_CHILDREN
    state = net.state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert hashlib.sha256(lines.encode()).hexdigest() == REFERENCE_LAYOUT_SHA256
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert net.AuxLogits is None


def test_features_match_pytorch_fid_reference_values() -> None:
    """Golden values of pytorch-fid's InceptionV3([block]) with random_inception(5)'s weights
    on two 96 px pattern images (resize to 299, [-1, 1], FID blocks)."""
    net = random_inception(5)
    plain_net = FIDInception3(fid=False)
    plain_net.load_state_dict(net.state_dict())
    x = _pattern()
    with torch.inference_mode():
        f2048 = InceptionFeatures(net, dims=2048)(x).double().numpy()
        f768 = InceptionFeatures(net, dims=768)(x).double().numpy()
        plain = InceptionFeatures(plain_net.eval(), dims=768)(x[:1]).double().numpy()
    np.testing.assert_allclose(f2048[0, :6], [0.070023, 0.166495, 0.00304, 0.081071, 0.41741,
                                              0.095409], atol=2e-5)
    np.testing.assert_allclose(f2048[1, :6], [0.013463, 0.30407, 0.000951, 0.092214, 0.452216,
                                              0.06643], atol=2e-5)
    np.testing.assert_allclose(f2048.mean(1), [0.274713942, 0.275807994], rtol=1e-5)
    np.testing.assert_allclose(f2048.max(1), [2.72004485, 2.77381277], rtol=1e-5)
    np.testing.assert_allclose(f768[0, :6], [0.414434, 0.0, 0.216193, 0.00015, 0.043791,
                                             0.883465], atol=2e-5)
    np.testing.assert_allclose(f768.mean(1), [0.25242016, 0.25229928], rtol=1e-5)
    # the FID blocks' pooling really differs from torchvision's plain blocks
    assert np.abs(plain[0] - f768[0]).max() > 1e-2


# ---------------------------------------------------------------------------- loading
def test_strict_round_trip_and_accepted_layouts(net0: FIDInception3, weights: Path,
                                               tmp_path: Path) -> None:
    loaded = load_inception(weights)
    assert loaded.kind == "pytorch-fid" and loaded.is_fid_network
    assert loaded.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    reference = net0.state_dict()
    got = loaded.net.state_dict()
    assert all(torch.equal(got[k], reference[k]) for k in reference)
    # strict loading of the file itself, as pytorch-fid does
    FIDInception3().load_state_dict(torch.load(weights, weights_only=True), strict=True)
    # older files have no num_batches_tracked; a Lightning/DataParallel-style wrapping
    state = {k: v for k, v in reference.items() if not k.endswith("num_batches_tracked")}
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    again = load_inception(wrapped).net.state_dict()
    assert all(torch.equal(again[k], reference[k]) for k in state)
    # pytorch-fid's InceptionV3 wrapper (blocks.<i>.<j>.*, no classifier): mapped by position
    order = [["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"],
             ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
             ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
              "Mixed_6d", "Mixed_6e"], ["Mixed_7a", "Mixed_7b", "Mixed_7c"]]
    where = {name: f"blocks.{i}.{j}" for i, names in enumerate(order)
             for j, name in enumerate(names)}
    blocks = {f"{where[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v
              for k, v in reference.items() if not k.startswith("fc.")}
    torch.save(blocks, tmp_path / "wrapper.pth")
    from_wrapper = load_inception(tmp_path / "wrapper.pth")
    assert from_wrapper.kind == "pytorch-fid-wrapper" and from_wrapper.is_fid_network
    assert all(torch.equal(from_wrapper.net.state_dict()[k], v)
               for k, v in reference.items() if not k.startswith("fc."))
    # torchvision's ImageNet layout: AuxLogits, 1000 classes -> plain blocks, flagged
    tv = FIDInception3(num_classes=1000, fid=False).state_dict()
    tv.update({"AuxLogits.conv0.conv.weight": torch.zeros(128, 768, 1, 1),
               "AuxLogits.fc.weight": torch.zeros(1000, 768)})
    torch.save(tv, tmp_path / "tv.pth")
    tv_loaded = load_inception(tmp_path / "tv.pth")
    assert tv_loaded.kind == "torchvision-imagenet" and not tv_loaded.is_fid_network
    assert not tv_loaded.net.fid


def test_wrong_files_give_clear_errors(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.pth: Inception weights file does not exist"):
        load_inception(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match=r"garbage\.pth: cannot read Inception weights"):
        load_inception(garbage)
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), other)
    with pytest.raises(DataError) as exc:
        load_inception(other)
    msg = str(exc.value)
    assert str(other) in msg and "expected keys missing (first: Conv2d_1a_3x3.conv.weight" in msg
    assert "unexpected keys (first: weight, bias)" in msg
    state = torch.load(weights, weights_only=True)
    state["Mixed_6b.branch7x7_1.conv.weight"] = torch.zeros(3, 3)
    del state["Mixed_5b.branch1x1.bn.running_var"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(DataError, match=r"1 expected keys missing \(first: "
                       r"Mixed_5b\.branch1x1\.bn\.running_var\).*1 keys of the wrong shape "
                       r"\(first: Mixed_6b\.branch7x7_1\.conv\.weight \(3, 3\) \(expected "
                       r"\(128, 768, 1, 1\)\)"):
        load_inception(bad)


# ---------------------------------------------------------------------------- features
def test_feature_shape_batching_and_determinism(net0: FIDInception3, faces: np.ndarray
                                                ) -> None:
    full = inception_features(InceptionFeatures(net0), faces[:2], batch_size=2)
    assert full.shape == (2, 2048) and full.dtype == np.float64 and np.isfinite(full).all()
    assert not np.allclose(full[0], full[1])
    model = InceptionFeatures(net0, dims=64)
    a = inception_features(model, faces[:3], batch_size=2)
    assert a.shape == (3, 64)
    b = inception_features(model, iter(list(faces[:3])), batch_size=3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # batch size does not matter
    np.testing.assert_array_equal(a, inception_features(model, faces[:3], batch_size=2))
    # the same seed builds the same network
    assert all(torch.equal(v, net0.state_dict()[k])
               for k, v in random_inception(0).state_dict().items())
    with pytest.raises(ConfigError, match="batch size"):
        inception_features(model, faces[:1], batch_size=0)


def test_fid_is_zero_for_a_set_and_grows_with_perturbation(net0: FIDInception3,
                                                           faces: np.ndarray) -> None:
    model = InceptionFeatures(net0, dims=192)
    rng = np.random.default_rng(0)

    def noisy(sigma: float) -> np.ndarray:
        x = faces.astype(np.float64) + rng.normal(0, sigma, faces.shape)
        return np.clip(np.round(x), 0, 255).astype(np.uint8)

    blurred = np.stack([np.asarray(Image.fromarray(f).resize((24, 24), Image.BILINEAR)
                                   .resize((96, 96), Image.BILINEAR)) for f in faces])
    real = inception_features(model, faces)
    fids = {name: fid_from_features(real, inception_features(model, imgs))
            for name, imgs in (("small noise", noisy(4.0)), ("large noise", noisy(40.0)),
                               ("blur", blurred))}
    self_fid = fid_from_features(real, real)
    assert abs(self_fid) < 1e-6 * np.trace(np.cov(real, rowvar=False))
    assert 0 < fids["small noise"] < fids["large noise"]
    assert fids["blur"] > 10 * abs(self_fid) and fids["blur"] > fids["small noise"]


# ---------------------------------------------------------------------------- distance
def test_frechet_distance_closed_forms() -> None:
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert calculate_frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                                      np.array([[9.0]])) == pytest.approx(4.0 + 1.0)
    # diagonal: the sum over coordinates
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expect = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert calculate_frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == \
        pytest.approx(expect)
    # proportional full covariances S2 = c S1: (1 - sqrt(c))^2 tr(S1)
    a = np.random.default_rng(1).standard_normal((5, 5))
    s1 = a @ a.T + np.eye(5)
    assert calculate_frechet_distance(np.zeros(5), s1, np.zeros(5), 4.0 * s1) == \
        pytest.approx(np.trace(s1), rel=1e-9)
    with pytest.raises(ValueError, match="different lengths"):
        calculate_frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2))


def test_frechet_distance_eps_retry_and_imaginary_refusal() -> None:
    nilpotent = np.array([[0.0, 1.0], [0.0, 0.0]])  # sqrtm of it is not finite
    with pytest.warns(RuntimeWarning, match="adding 1e-06 to diagonal"):
        value = calculate_frechet_distance(np.zeros(2), nilpotent, np.zeros(2), np.eye(2))
    assert np.isfinite(value)
    with pytest.raises(RegnnError, match="imaginary component"):
        calculate_frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------------------- pipelines
def test_folders_match_in_memory_features(weights: Path, faces: np.ndarray,
                                          tmp_path: Path) -> None:
    for name, imgs in (("real", faces[:6]), ("fake", faces[6:])):
        (tmp_path / name).mkdir()
        for i, img in enumerate(imgs):
            Image.fromarray(img).save(tmp_path / name / f"{i:02d}.png")
    (tmp_path / "real" / "notes.txt").write_text("not an image")
    assert len(image_files(tmp_path / "real")) == 6
    model = InceptionFeatures(load_inception(weights).net, dims=64)
    res = fid_of_folders(tmp_path / "real", tmp_path / "fake", model=model)
    expect = fid_from_features(inception_features(model, faces[:6]),
                               inception_features(model, faces[6:]))
    assert res["real_images"] == 6 and res["fake_images"] == 6 and res["dims"] == 64
    assert res["FID"] == pytest.approx(expect, rel=1e-9)
    (tmp_path / "one").mkdir()
    Image.fromarray(faces[0]).save(tmp_path / "one" / "a.jpg")
    with pytest.raises(DataError, match="at least 2 images, found 1"):
        image_files(tmp_path / "one")


def test_fid_of_reactions_renders_and_scores(net0: FIDInception3, synthetic_root: Path
                                            ) -> None:
    ds = ReactSplit(synthetic_root, "test", audio=False)
    listeners = ds.listeners()[:4]
    model = InceptionFeatures(net0, dims=64)
    settings = FIDSettings(weights="unused.pth", frames=2, size=96, dims=64)
    same = fid_of_reactions(np.stack([listeners, listeners], axis=1), listeners, settings,
                            model=model)
    assert same["real_images"] == 8 and same["fake_images"] == 16 and same["samples"] == 2
    assert same["frames"] == [0, 749]
    assert abs(same["FID"]) < 1e-4  # rounding of sqrtm on singular covariances
    other = ds.listeners()[4:8]  # other listeners' reactions: a different set of faces
    diff = fid_of_reactions(other[:, None], listeners, settings, model=model)
    again = fid_of_reactions(other[:, None], listeners, settings, model=model)
    assert diff["FID"] > 100 * max(abs(same["FID"]), 1e-6)
    assert diff["FID"] == again["FID"]  # deterministic
    np.testing.assert_array_equal(frame_indices(750, 10),
                                  [0, 83, 166, 250, 333, 416, 499, 583, 666, 749])
    np.testing.assert_array_equal(frame_indices(5, 10), np.arange(5))


# ---------------------------------------------------------------------------- the command
def test_evaluate_with_fid_weights(synthetic_root: Path, gt_pred: Path, weights: Path,
                                   tmp_path: Path, capsys) -> None:
    out = tmp_path / "scores.json"
    dump = tmp_path / "frames"
    assert main(["evaluate", "--data", str(synthetic_root), "--pred", str(gt_pred),
                 "--out", str(out), "--no-progress", "--workers", "1",
                 "--fid-weights", str(weights), "--fid-frames", "1", "--fid-samples", "1",
                 "--fid-dims", "64", "--fid-size", "96", "--fid-dump", str(dump)]) == 0
    printed = capsys.readouterr().out
    assert "FRRea_FID" in printed and "comparable only with" in printed
    res = json.loads(out.read_text())
    plain = evaluate_predictions(synthetic_root, "test", gt_pred, write=False, progress=False,
                                 workers=1)
    # the other scores are unchanged (up to float rounding of parallel sums)
    assert {k: v for k, v in res["scores"].items() if k != "FRRea_FID"} == \
        pytest.approx(plain["scores"], rel=1e-12, abs=1e-12, nan_ok=True)
    assert "fid" not in plain and "FRRea_FID" not in plain["scores"]
    n = res["items"]
    # gt predictions are the real reactions: the rendered sets are identical
    assert abs(res["scores"]["FRRea_FID"]) < 1e-4
    assert res["higher_is_better"]["FRRea_FID"] is False
    info = res["fid"]
    assert info["real_images"] == n and info["fake_images"] == n
    assert info["frames_per_reaction"] == 1 and info["samples_per_item"] == 1
    assert info["weights_kind"] == "pytorch-fid" and info["dims"] == 64
    assert info["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "same" in info["note"] and res["timing"]["FRRea_FID_s"] > 0
    assert len(list((dump / "real").glob("*.png"))) == n
    assert len(list((dump / "fake").glob("*.png"))) == n
    # the dumped frames are a folder pair: the same FID from them
    assert main(["evaluate", "--fid-weights", str(weights), "--fid-real", str(dump / "real"),
                 "--fid-fake", str(dump / "fake"), "--fid-dims", "64", "--no-progress",
                 "--out", str(tmp_path / "folders.json")]) == 0
    folders = json.loads((tmp_path / "folders.json").read_text())
    assert set(folders["scores"]) == {"FRRea_FID"}
    assert folders["scores"]["FRRea_FID"] == pytest.approx(res["scores"]["FRRea_FID"],
                                                           abs=1e-9)
    assert folders["fid"]["source"] == "folders"


def test_evaluate_refuses_bad_fid_options_before_work(synthetic_root: Path, gt_pred: Path,
                                                      tmp_path: Path, capsys) -> None:
    out = tmp_path / "scores.json"
    base = ["evaluate", "--data", str(synthetic_root), "--pred", str(gt_pred), "--out",
            str(out), "--no-progress"]
    assert main(base + ["--fid-weights", str(tmp_path / "nope.pth")]) == 2
    assert "nope.pth: Inception weights file does not exist" in capsys.readouterr().err
    assert not out.exists()  # refused before any scoring
    assert main(base + ["--fid-real", str(tmp_path)]) == 2
    assert "--fid-real need --fid-weights" in capsys.readouterr().err
    assert main(base + ["--fid-weights", str(tmp_path / "w.pth"), "--fid-frames", "0"]) == 2
    assert "--fid-frames must be >= 1" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(synthetic_root), "--no-progress"]) == 2
    assert "--pred required" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_help_mentions_fid(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--fid-weights" in text and "--fid-real" in text and "--fid-batch-size" in text
    assert "only comparable" in text and "same renderer" in text
