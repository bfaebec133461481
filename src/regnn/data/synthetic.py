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
from scipy.ndimage import gaussian_filter1d

from regnn import schema
from regnn.data import layout
from regnn.data.regimes import (
    CUT_RANGE,
    DEFAULT_REGIME,
    EPISODE_TYPES,
    EPISODES_PER_SCRIPT,
    MIN_EPISODE,
    Regime,
    get_regime,
)
from regnn.utils.io import atomic_open, atomic_path, save_npy, write_json, write_text

LATENT_DIM = 6
RECOLA_PERSONS = (("P25", "P26"), ("P41", "P42"), ("P45", "P46"))
CITIES = ("Paris", "Augsburg", "Nottingham")


@dataclass
class SynthConfig:
    dyads: int = 80
    seed: int = 0
    clips_per_session: int = 4
    clusters: int = 4
    styles: int = 3
    frames: int = schema.FILE_FRAMES
    sample_rate: int = 16_000
    smooth_sigma: float = 10.0
    speaker_noise: float = 0.35
    reaction_noise: float = 0.25
    video: bool = False
    video_size: int = 64
    threedmm: bool = False
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    regime: str = "aligned"


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


# --------------------------------------------------------------------------- the model
class Generator:
    """The generative process of the module docstring, with all its fixed parameters."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        rng = np.random.default_rng([cfg.seed, 1])
        L = LATENT_DIM
        self.W_au = rng.normal(0, 0.7, (15, L))
        self.b_au = rng.normal(-0.6, 0.4, 15)
        self.W_va = rng.normal(0, 0.6, (2, L))
        self.W_ex = rng.normal(0, 0.8, (8, L))
        self.b_ex = np.concatenate([[1.0], rng.normal(-0.3, 0.3, 7)])
        self.protos = np.stack([self.smooth(rng, cfg.frames) for _ in range(cfg.clusters)])
        self.M = []
        self.o = []
        for s in range(cfg.styles):
            if s == 0:
                self.M.append(0.9 * np.eye(L))
                self.o.append(np.zeros(L))
            else:
                q, _ = np.linalg.qr(rng.normal(size=(L, L)))
                self.M.append((0.6 + 0.3 * (s % 2)) * q)
                self.o.append(rng.normal(0, 0.9, L))
        self.lags = [8 + 4 * (s % 3) for s in range(cfg.styles)]
        self.to_3dmm = rng.normal(0, 0.5, (25, 58))

    def smooth(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        x = gaussian_filter1d(rng.normal(size=(frames, LATENT_DIM)), self.cfg.smooth_sigma,
                              axis=0, mode="reflect")
        return (x - x.mean(0)) / (x.std(0) + 1e-8)

    def speaker_latent(self, rng: np.random.Generator, cluster: int, trait: np.ndarray
                       ) -> np.ndarray:
        c = self.cfg
        return (0.9 * self.protos[cluster] + c.speaker_noise * self.smooth(rng, c.frames)
                + 0.2 * trait)

    def reaction_latent(self, rng: np.random.Generator, u_a: np.ndarray, style: int,
                        trait: np.ndarray) -> np.ndarray:
        lag = self.lags[style]
        shifted = np.concatenate([np.repeat(u_a[:1], lag, axis=0), u_a[: len(u_a) - lag]])
        return (shifted @ self.M[style].T + self.o[style] + 0.2 * trait
                + self.cfg.reaction_noise * self.smooth(rng, len(u_a)))

    def attributes(self, u: np.ndarray) -> np.ndarray:
        """(frames, 25) attributes of a latent trajectory; within ranges by construction."""
        au = 1.0 / (1.0 + np.exp(-2.0 * (u @ self.W_au.T + self.b_au)))
        va = np.tanh(0.8 * (u @ self.W_va.T))
        logits = 1.5 * (u @ self.W_ex.T + self.b_ex)
        logits -= logits.max(axis=1, keepdims=True)
        ex = np.exp(logits)
        ex /= ex.sum(axis=1, keepdims=True)
        return np.concatenate([au, va, ex], axis=1).astype(np.float32)

    def voice(self, rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
        """Mono float32 audio at ``sample_rate`` whose energy/pitch/brightness follow ``u``."""
        sr = self.cfg.sample_rate
        energy = _upsample(1.0 / (1.0 + np.exp(-2.5 * (u[:, 0] + 0.3))), sr)
        f0 = _upsample(140.0 + 40.0 * np.tanh(u[:, 1]), sr)
        bright = _upsample(1.0 / (1.0 + np.exp(-u[:, 2])), sr)
        n = len(f0)
        phase = (2 * np.pi / sr) * np.cumsum(f0)
        s1 = np.sin(phase).astype(np.float32)
        two_cos = (2 * np.cos(phase)).astype(np.float32)
        # harmonics by the Chebyshev recurrence sin(h x) = 2 cos(x) sin((h-1) x) - sin((h-2) x)
        prev, cur, weight = np.zeros_like(s1), s1, np.ones_like(s1)
        src = s1.copy()
        for _ in range(2, 6):
            prev, cur = cur, two_cos * cur - prev
            weight *= bright
            src += weight * cur
        y = (0.12 * energy) * src
        y += 0.01 * rng.standard_normal(n, dtype=np.float32)
        return np.clip(y, -1, 1).astype(np.float32)


# --------------------------------------------------------------------------- regimes
class EpisodeGenerator(Generator):
    """Scripted episodes with shifted boundaries, and the knobs of the non-aligned regimes.

    *Episodes.* A bank of :data:`EPISODE_TYPES` behaviour episodes, each a latent state (a
    mean ``mu_e`` of norm 4: clearly different behaviours, far apart compared with the noise)
    with a texture of its own (a smooth trajectory played from the episode's start).
    Context c is a script of :data:`EPISODES_PER_SCRIPT` distinct episodes in a fixed order
    (scripts differ between contexts; they may share episodes). A speaker of context c plays
    the script with its own cut points, drawn uniformly in :data:`CUT_RANGE` of the clip
    with every episode at least :data:`MIN_EPISODE` of it: ``u_A = 0.9 (mu_e(t) + 0.6
    texture_e(t - start_e)) + 0.35 n_A + 0.2 trait_A``, the state sequence smoothed over
    about 0.4 s.

    *Listeners.* ``u_B = g_B coupling M_s u_A(t - l_s) + o_s + w_b trait_B + noise n_B`` with
    every style a scaled random rotation (no mirroring style: a mirror would behave like its
    speaker, which a timing-tolerant measure cannot tell apart) and ``g_B`` the listener's own
    gain (1 unless idiosyncratic).

    *Audio regime.* The speaker's face is ``0.9 n + 0.2 trait`` (no episodes); the episode
    latent drives only the voice, and the listener reacts to it.
    """

    def __init__(self, cfg: SynthConfig, regime: Regime) -> None:
        super().__init__(cfg)
        self.regime = regime
        rng = np.random.default_rng([cfg.seed, 11])
        L = LATENT_DIM
        means = rng.normal(size=(EPISODE_TYPES, L))
        self.episode_means = 4.0 * means / np.linalg.norm(means, axis=1, keepdims=True)
        self.textures = np.stack([self.smooth(rng, cfg.frames) for _ in range(EPISODE_TYPES)])
        n_scripts = math.perm(EPISODE_TYPES, EPISODES_PER_SCRIPT)
        if cfg.clusters > n_scripts:
            raise ValueError(f"the episodes regimes have {n_scripts} distinct scripts; "
                             f"--clusters {cfg.clusters} is too many")
        scripts: list[tuple[int, ...]] = []
        while len(scripts) < cfg.clusters:
            s = tuple(int(e) for e in rng.choice(EPISODE_TYPES, EPISODES_PER_SCRIPT,
                                                 replace=False))
            if s not in scripts:
                scripts.append(s)
        self.scripts = scripts
        self.M, self.o = [], []
        for s in range(cfg.styles):
            q, _ = np.linalg.qr(rng.normal(size=(L, L)))
            self.M.append((0.7 + 0.2 * (s % 2)) * q)
            self.o.append(rng.normal(0, 0.9, L))

    def episode_latent(self, rng: np.random.Generator, context: int
                       ) -> tuple[np.ndarray, list[int]]:
        """The episode part of a speaker's latent and its cut points (frames)."""
        T = self.cfg.frames
        lo, hi = CUT_RANGE
        while True:  # boundaries anywhere in CUT_RANGE, every episode at least MIN_EPISODE
            cuts = sorted(int(round(v)) for v in rng.uniform(lo * T, hi * T,
                                                             EPISODES_PER_SCRIPT - 1))
            if min(np.diff([0, *cuts, T])) >= MIN_EPISODE * T:
                break
        bounds = [0, *cuts, T]
        state = np.empty((T, LATENT_DIM))
        texture = np.empty((T, LATENT_DIM))
        for e, (a, b) in zip(self.scripts[context], zip(bounds[:-1], bounds[1:]), strict=True):
            state[a:b] = self.episode_means[e]
            texture[a:b] = self.textures[e][: b - a]
        state = gaussian_filter1d(state, 10.0, axis=0, mode="nearest")
        return state + 0.6 * texture, cuts

    def speaker_latent(self, rng: np.random.Generator, cluster: int, trait: np.ndarray
                       ) -> np.ndarray:
        """The latent a listener perceives (the voice's; the face's unless ``audio``)."""
        return self.speaker(rng, cluster, trait)[1]

    def speaker(self, rng: np.random.Generator, context: int, trait: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(face latent, voice latent, cut points) of a speaker of ``context``."""
        c = self.cfg
        episodes, cuts = self.episode_latent(rng, context)
        own = c.speaker_noise * self.smooth(rng, c.frames) + 0.2 * trait
        driven = 0.9 * episodes + own
        if self.regime.face_shows_episodes:
            return driven, driven, cuts
        face = 0.9 * self.smooth(rng, c.frames) + 0.2 * trait
        return face, driven, cuts

    def reaction_latent(self, rng: np.random.Generator, u_a: np.ndarray, style: int,
                        trait: np.ndarray, gain: float = 1.0) -> np.ndarray:
        r = self.regime
        lag = self.lags[style]
        shifted = np.concatenate([np.repeat(u_a[:1], lag, axis=0), u_a[: len(u_a) - lag]])
        return (gain * r.coupling * (shifted @ self.M[style].T) + self.o[style]
                + r.listener_baseline * trait + r.reaction_noise * self.smooth(rng, len(u_a)))

    def voice(self, rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
        """As :meth:`Generator.voice`, with a speaking rate: syllable-like energy bursts at
        3-6 per second following ``u_3``."""
        sr = self.cfg.sample_rate
        rate = 3.0 + 3.0 / (1.0 + np.exp(-1.5 * u[:, 3]))  # syllables per second
        syl_phase = (2 * np.pi / sr) * np.cumsum(_upsample(rate, sr).astype(np.float64))
        bursts = (0.25 + 0.75 * np.sin(0.5 * syl_phase) ** 2).astype(np.float32)
        return np.clip(super().voice(rng, u) * bursts, -1, 1).astype(np.float32)


def make_generator(cfg: SynthConfig) -> Generator:
    """The generator of ``cfg.regime``."""
    regime = get_regime(cfg.regime)
    return Generator(cfg) if not regime.episodes else EpisodeGenerator(cfg, regime)


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


# --------------------------------------------------------------------------- writers
def _upsample(per_frame: np.ndarray, sample_rate: int) -> np.ndarray:
    """Linear interpolation of a 25 fps series to ``sample_rate`` (a multiple of 25), float32."""
    hop = sample_rate // schema.FPS
    v = np.asarray(per_frame, dtype=np.float32)
    nxt = np.append(v[1:], v[-1])
    frac = np.arange(hop, dtype=np.float32) / hop
    return (v[:, None] + (nxt - v)[:, None] * frac[None, :]).reshape(-1)


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def _write_csv(path: Path, header: str, values: np.ndarray) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        np.savetxt(fh, values, fmt="%.6f", delimiter=",", header=header, comments="")


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, rate, subtype="PCM_16", format="WAV")


def _write_frames(folder: Path, attrs: np.ndarray, size: int) -> None:
    """PNG frames ``1.png ... N.png`` of a simple drawn face following the attributes."""
    import shutil
    import tempfile

    from PIL import Image, ImageDraw

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    s = size / 64.0
    for t, a in enumerate(attrs, start=1):
        img = Image.new("RGB", (size, size), (235, 235, 240))
        d = ImageDraw.Draw(img)
        d.ellipse([8 * s, 4 * s, 56 * s, 60 * s], fill=(240, 200, 170), outline=(90, 60, 40))
        brow = 20 * s - 5 * s * (a[0] + a[1]) / 2 + 3 * s * a[2]
        for x0 in (18, 36):
            d.line([x0 * s, brow, (x0 + 10) * s, brow], fill=(60, 40, 30), width=max(1, int(2 * s)))
        eye_h = 3 * s * (1 - 0.6 * a[4])
        for cx in (23, 41):
            d.ellipse([(cx - 3) * s, 27 * s - eye_h, (cx + 3) * s, 27 * s + eye_h],
                      fill=(40, 40, 40))
        open_h = 1 * s + 8 * s * max(a[13], a[14])
        smile = 3 * s * (a[7] - a[9])  # corners up (AU12) or down (AU15)
        top = 42 * s - smile
        d.chord([22 * s, top - open_h / 2, 42 * s, top + open_h], 0, 180, fill=(150, 40, 50))
        img.save(tmp_dir / f"{t}.png", format="PNG", compress_level=1)
    # the folder appears complete or not at all
    if folder.exists():
        shutil.rmtree(folder)
    tmp_dir.rename(folder)
