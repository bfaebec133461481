"""Synthetic REACT: a dataset in the exact REACT on-disk layout, with a known one-to-many truth.

Generative process (documented with measured figures in ``docs/synthetic-data.md``)
-----------------------------------------------------------------------------------
*Latent behaviour.* Every person in every clip has a smooth latent behaviour ``u(t)`` in
R^L (L = 6) at 25 fps: Gaussian noise low-passed by a Gaussian kernel (sigma = 10 frames)
and standardised. All 25 attributes are one fixed map of ``u`` shared by everybody::

    AUs         = sigmoid(2 (W_au u + b_au))            in [0, 1]
    valence/ar. = tanh(0.8 W_va u)                      in [-1, 1]
    expressions = softmax(1.5 (W_ex u + b_ex))          in [0, 1], sum 1

so attributes are smooth and respect their ranges by construction.

*Speakers with similar behaviour.* There are C behaviour clusters (default 4), each a
prototype latent trajectory ``proto_c(t)``. The first person of a dyad clip (the "speaker"
of the split row) behaves as ``u_A = 0.9 proto_c + 0.35 n_A + 0.2 trait_A`` (``n_A`` the
clip's own smooth noise, ``trait_A`` a per-person constant). Speakers of one cluster therefore
behave alike; speakers of different clusters do not.

*Several appropriate reaction styles.* There are S listener styles (default 3), a person
trait of the second person (constant across that session's clips): style s has a mixing
matrix ``M_s`` (s = 0: 0.9 I, "mirroring"; others: scaled random rotations), an offset
``o_s`` and a reaction lag ``l_s`` (8, 12, 16 frames). The listener reacts to the speaker's
behaviour: ``u_B(t) = M_s u_A(t - l_s) + o_s + 0.2 trait_B + 0.25 n_B``. For the same
speaker behaviour, different styles give clearly different reactions (one-to-many), while
reactions of the same style agree; all depend on the speaker's time course (synchrony).

*Voice.* Each person's WAV is synthesised from their own latent: speech energy
``sigmoid(2.5 (u_0 + 0.3))`` gates a harmonic source whose pitch is ``140 + 40 tanh(u_1)`` Hz
and whose brightness is ``sigmoid(u_2)``, plus faint noise, so the audio carries the same
behaviour signal as the face.

*Appropriateness.* Item k's real listener reaction is appropriate for speaker j when the two
speakers belong to the same behaviour group: forward items (first person speaking) are
grouped by cluster c; mirrored items (second person speaking, whose behaviour is a style-s
reaction to a cluster-c speaker) by the pair (c, s). This defines every
``neighbour_emotion_<split>.npy`` and the all-clips ``Approprirate_facial_reaction.npy``
(with ``data_indices.csv``), exactly as the REACT release encodes them; the true group of
every item is saved in ``synthetic_truth.json``.

*Layout.* Sessions of 4 clips each are split 60/20/20 by session (no session in two splits).
Most sessions are NoXI-like (``NoXI/003_2016-03-04_Paris/{Expert,Novice}_video/<clip>``);
up to three are RECOLA-like (``RECOLA/group-1/{P25,P26}/<clip>``). Every CSV has the 25-name
header and 751 rows; WAVs are 16 kHz mono int16.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.data import layout
from regnn.data.regimes import (
    DEFAULT_REGIME,
    get_regime,
)
from regnn.data.synthetic_files import (
    _stable_hash,
    _write_csv,
    _write_frames,
    _write_wav,
)
from regnn.data.synthetic_model import (  # noqa: F401 - re-exported
    LATENT_DIM,
    EpisodeGenerator,
    Generator,
    SynthConfig,
    make_generator,
)
from regnn.utils.io import save_npy, write_json, write_text

RECOLA_PERSONS = (("P25", "P26"), ("P41", "P42"), ("P45", "P46"))
CITIES = ("Paris", "Augsburg", "Nottingham")


@dataclass
class Person:
    path: str
    latent: np.ndarray  # (frames, L)
    voice_latent: np.ndarray | None = None  # what the voice shows; None: the face's latent


@dataclass
class Clip:
    site: str
    session: str
    clip: int
    split: str
    cluster: int
    style: int
    a: Person = field(repr=False)
    b: Person = field(repr=False)
    info: dict = field(default_factory=dict, repr=False)  # regime truth (cut points, gains)


# --------------------------------------------------------------------------- the dataset
def _sessions(cfg: SynthConfig) -> list[tuple[str, str, tuple[str, str], str]]:
    """(site, session name, (person A, person B), split) per session, split by session."""
    n_sessions = math.ceil(cfg.dyads / cfg.clips_per_session)
    n_val = max(1, round(n_sessions * cfg.split_fractions[1]))
    n_test = max(1, round(n_sessions * cfg.split_fractions[2]))
    n_train = n_sessions - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{cfg.dyads} dyads make {n_sessions} sessions; need at least 3 "
                         f"(one per split): use --dyads >= {2 * cfg.clips_per_session + 1}")
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    out = []
    recola = 0
    for s in range(n_sessions):
        if s % 7 == 3 and recola < len(RECOLA_PERSONS):
            out.append(("RECOLA", f"group-{recola + 1}", RECOLA_PERSONS[recola], splits[s]))
            recola += 1
        else:
            name = f"{s + 1:03d}_2016-03-{s % 28 + 1:02d}_{CITIES[s % len(CITIES)]}"
            out.append(("NoXI", name, ("Expert_video", "Novice_video"), splits[s]))
    return out


def build_clips(cfg: SynthConfig, gen: Generator) -> list[Clip]:
    sessions = _sessions(cfg)
    rng = np.random.default_rng([cfg.seed, 2])
    clips: list[Clip] = []
    per_split_counter: dict[str, int] = {}
    style_counter: dict[str, int] = {}
    remaining = cfg.dyads
    for site, session, (pa, pb), split in sessions:
        # balanced styles per split: the second person's style is a trait of the session
        style = style_counter.get(split, 0) % cfg.styles
        style_counter[split] = style_counter.get(split, 0) + 1
        trait_a = rng.normal(size=LATENT_DIM)
        trait_b = rng.normal(size=LATENT_DIM)
        for k in range(1, cfg.clips_per_session + 1):
            if remaining == 0:
                break
            remaining -= 1
            i = per_split_counter.get(split, 0)
            per_split_counter[split] = i + 1
            cluster = (i + style) % cfg.clusters  # every cluster meets every style
            crng = np.random.default_rng([cfg.seed, 3, len(clips)])
            if isinstance(gen, EpisodeGenerator):
                clips.append(_episode_clip(gen, crng, (site, session, k, split), (pa, pb),
                                           cluster, style, trait_a, trait_b))
                continue
            u_a = gen.speaker_latent(crng, cluster, trait_a)
            u_b = gen.reaction_latent(crng, u_a, style, trait_b)
            clips.append(Clip(site, session, k, split, cluster, style,
                              Person(f"{site}/{session}/{pa}/{k}", u_a),
                              Person(f"{site}/{session}/{pb}/{k}", u_b)))
    return clips


def _episode_clip(gen: EpisodeGenerator, crng: np.random.Generator,
                  where: tuple[str, str, int, str], persons: tuple[str, str], context: int,
                  style: int, trait_a: np.ndarray, trait_b: np.ndarray) -> Clip:
    site, session, k, split = where
    lo, hi = gen.regime.listener_gain
    # the listener's own gain is a trait of the session's second person
    gain = float(np.random.default_rng([gen.cfg.seed, 12, _stable_hash(session)])
                 .uniform(lo, hi)) if hi > lo else lo
    face, voice, cuts = gen.speaker(crng, context, trait_a)
    u_b = gen.reaction_latent(crng, voice, style, trait_b, gain)  # reacts to what it perceives
    return Clip(site, session, k, split, context, style,
                Person(f"{site}/{session}/{persons[0]}/{k}", face, voice),
                Person(f"{site}/{session}/{persons[1]}/{k}", u_b),
                {"cuts": cuts, "gain": round(gain, 4)})


def group_ids(clips: list[Clip], cfg: SynthConfig) -> np.ndarray:
    """True behaviour group of each mirrored item (forward items first, then mirrored)."""
    fwd = [c.cluster for c in clips]
    mir = [cfg.clusters + c.cluster * cfg.styles + c.style for c in clips]
    return np.asarray(fwd + mir)


def write_synthetic(out_dir: str | Path, dyads: int = 80, seed: int = 0, *, video: bool = False,
                    threedmm: bool = False, progress: bool = False, styles: int | None = None,
                    clusters: int | None = None, regime: str = DEFAULT_REGIME,
                    config: SynthConfig | None = None) -> dict:
    """Write a synthetic REACT-layout dataset to ``out_dir`` and return its summary.

    ``regime`` is one of :func:`regime_names`; ``styles`` and ``clusters`` default to the
    regime's. Every file is written atomically; ``synthetic.json`` (parameters and summary)
    is written last, so its presence marks a complete dataset.
    """
    if config is None:
        r = get_regime(regime)
        config = SynthConfig(dyads=dyads, seed=seed, video=video, threedmm=threedmm,
                             styles=r.styles if styles is None else styles,
                             clusters=r.clusters if clusters is None else clusters,
                             regime=regime)
    cfg = config
    get_regime(cfg.regime)
    if cfg.dyads < 1:
        raise ValueError("--dyads must be at least 1")
    if cfg.styles < 1 or cfg.clusters < 1:
        raise ValueError(f"--styles and --clusters must be at least 1, got {cfg.styles} and "
                         f"{cfg.clusters}")
    if cfg.sample_rate % schema.FPS:
        raise ValueError(f"sample rate must be a multiple of {schema.FPS} Hz")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = make_generator(cfg)
    clips = build_clips(cfg, gen)
    header = ",".join(schema.ATTRIBUTE_NAMES)

    persons = [(c.split, p) for c in clips for p in (c.a, c.b)]
    iterator = persons
    if progress:
        from tqdm import tqdm

        iterator = tqdm(persons, desc="synth: persons", unit="person")
    for split, person in iterator:
        prng = np.random.default_rng([cfg.seed, 4, _stable_hash(person.path)])
        attrs = gen.attributes(person.latent)
        _write_csv(out / split / layout.EMOTION_DIR / f"{person.path}.csv", header, attrs)
        voiced = person.latent if person.voice_latent is None else person.voice_latent
        _write_wav(out / split / layout.AUDIO_DIR / f"{person.path}.wav",
                   gen.voice(prng, voiced), cfg.sample_rate)
        if cfg.threedmm:
            coeffs = attrs @ gen.to_3dmm + 0.01 * prng.normal(size=(len(attrs), 58))
            save_npy(out / split / layout.THREEDMM_DIR / f"{person.path}.npy",
                     coeffs.astype(np.float32))
        if cfg.video:
            _write_frames(out / split / layout.VIDEO_DIR / person.path, attrs, cfg.video_size)

    groups_all = group_ids(clips, cfg)
    truth: dict[str, list[int]] = {}
    split_stats: dict[str, dict] = {}
    for split in layout.SPLITS:
        sc = [c for c in clips if c.split == split]
        rows = [",speaker_path,listener_path"] + [
            f"{i},{c.a.path},{c.b.path}" for i, c in enumerate(sc)]
        write_text(out / f"{split}.csv", "\n".join(rows) + "\n")
        g = group_ids(sc, cfg)
        m = (g[:, None] == g[None, :]).astype(np.float64)
        save_npy(layout.matrix_file(out, split), m)
        truth[split] = g.tolist()
        per = m.sum(1)
        split_stats[split] = {"rows": len(sc), "items": 2 * len(sc),
                              "appropriate_mean": float(per.mean()) if len(per) else 0.0,
                              "appropriate_min": int(per.min()) if len(per) else 0,
                              "appropriate_max": int(per.max()) if len(per) else 0}
    # all-clips matrix in data_indices order (= clip order), as the challenge ships it
    m_all = (groups_all[:, None] == groups_all[None, :]).astype(np.float64)
    save_npy(out / layout.ALL_MATRIX_FILE, m_all)
    write_text(out / layout.DATA_INDICES_FILE, "site,chat_index,clip_index\n" + "".join(
        f"{c.site},{c.session},{c.clip}\n" for c in clips))
    truth_doc: dict = {
        "note": "true behaviour group of each mirrored item (speaker_paths then listener_paths)",
        "groups": truth,
        "clusters": {s: [c.cluster for c in clips if c.split == s] for s in layout.SPLITS},
        "styles": {s: [c.style for c in clips if c.split == s] for s in layout.SPLITS},
    }
    if isinstance(gen, EpisodeGenerator):  # the aligned truth file stays as it always was
        r = gen.regime
        truth_doc.update({
            "regime": r.name,
            "stresses": r.stresses,
            "recoverable_from": r.recoverable_from,
            "clusters_are": "contexts: the episode script each first person plays",
            "scripts": [list(sc) for sc in gen.scripts],
            "cuts": {s: [c.info["cuts"] for c in clips if c.split == s] for s in layout.SPLITS},
            "listener_gains": {s: [c.info["gain"] for c in clips if c.split == s]
                               for s in layout.SPLITS},
            "face_shows_episodes": r.face_shows_episodes,
        })
    write_json(out / "synthetic_truth.json", truth_doc)
    summary = {
        "root": str(out),
        "dyads": len(clips),
        "seed": cfg.seed,
        "splits": split_stats,
        "clusters": cfg.clusters,
        "styles": cfg.styles,
        "regime": cfg.regime,
        "one_to_many": one_to_many_figure(gen),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "synthetic.json", {"config": asdict(cfg), "summary": summary})
    return summary


# --------------------------------------------------------------------------- measured truth
def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over columns of Lin's concordance correlation (population moments), as REACT."""
    mx, my = x.mean(0), y.mean(0)
    vx, vy = x.var(0), y.var(0)
    cov = ((x - mx) * (y - my)).mean(0)
    return float(np.mean(2 * cov / (vx + vy + (mx - my) ** 2 + 1e-8)))


def one_to_many_figure(gen: Generator, speakers: int = 24, repeats: int = 3) -> dict:
    """CCC between reactions to the *same* speaker clip: same style vs different styles.

    For each probe speaker, ``repeats`` listeners of every style react (fresh traits and
    noise). High same-style CCC with low cross-style CCC means several clearly different
    reactions are appropriate for one speaker behaviour. Also reported: CCC of a reaction
    with a same-style reaction to a *different-cluster* speaker (appropriateness needs the
    speaker) and speaker-listener CCC.
    """
    cfg = gen.cfg
    rng = np.random.default_rng([cfg.seed, 9])
    same, diff, other_cluster = [], [], []
    T = schema.CLIP_FRAMES
    for k in range(speakers):
        cluster = k % cfg.clusters
        u_a = gen.speaker_latent(rng, cluster, rng.normal(size=LATENT_DIM))
        u_far = gen.speaker_latent(rng, (cluster + 1) % cfg.clusters, rng.normal(size=LATENT_DIM))
        reacts = {s: [gen.attributes(gen.reaction_latent(rng, u_a, s, rng.normal(size=LATENT_DIM))
                                     )[:T] for _ in range(repeats)] for s in range(cfg.styles)}
        for s in range(cfg.styles):
            rs = reacts[s]
            same += [ccc(rs[i], rs[j]) for i in range(repeats) for j in range(i + 1, repeats)]
            for s2 in range(s + 1, cfg.styles):
                diff += [ccc(a, b) for a in rs for b in reacts[s2]]
            far = gen.attributes(gen.reaction_latent(rng, u_far, s, rng.normal(size=LATENT_DIM)))
            other_cluster.append(ccc(rs[0], far[:T]))
    return {"ccc_same_style": round(float(np.mean(same)), 3),
            # None with a single style: no pair of different styles exists
            "ccc_different_style": round(float(np.mean(diff)), 3) if diff else None,
            "ccc_same_style_other_speaker_cluster": round(float(np.mean(other_cluster)), 3),
            "probe_speakers": speakers}
