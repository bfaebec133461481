"""The regimes of ``regnn synth --regime NAME``: a registry with no heavy imports.

Each regime is a variant of the synthetic generative process (``regnn.data.synthetic``) that
puts one claim to the test; ``docs/synthetic-data.md`` describes them. Tools that run on
several regimes (benchmarks, ``regnn bench``) list them with :func:`regime_names` and write a
dataset with ``regnn.data.synthetic.write_synthetic(out, regime=name)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regime:
    """A variant of the generative process; ``docs/synthetic-data.md`` describes each one.

    ``aligned`` is the process of ``regnn.data.synthetic``'s docstring. Every other regime is
    built on *scripted episodes* (``synthetic.EpisodeGenerator``) and changes one aspect.
    """

    name: str
    stresses: str  # what the regime puts to the test (one sentence, shown by --help and docs)
    clusters: int = 4  # speaker contexts (aligned: behaviour clusters)
    styles: int = 3  # listener styles
    episodes: bool = True  # speakers play their context's episode script, boundaries shifted
    listener_baseline: float = 0.2  # weight of the listener's own constant trait
    listener_gain: tuple[float, float] = (1.0, 1.0)  # range of the listener's own reaction gain
    coupling: float = 1.0  # weight of the speaker-driven part of a reaction
    reaction_noise: float = 0.25  # weight of the listener's own smooth noise
    face_shows_episodes: bool = True  # False: only the speaker's voice carries the episodes
    #: what a label-free builder needs to recover the truth of ``synthetic_truth.json``
    recoverable_from: str = "speaker behaviour (face)"


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("aligned", "the demo data: speakers of one cluster are time-locked to one "
           "prototype trajectory; style 0 mirrors its speaker 8 frames later",
           episodes=False),
    Regime("episodes", "timing: the speakers of one context play the same script of "
           "behaviour episodes (e.g. greeting, complaint, joke) with the boundaries anywhere "
           "between 15 % and 85 % of the clip, so no two speakers are time-locked"),
    Regime("styles1", "one appropriate reaction: a single listener style (episodes), every "
           "listener of a context reacts alike", styles=1),
    Regime("styles5", "many appropriate reactions and few listeners each: 5 listener styles "
           "over 6 contexts (episodes)", clusters=6, styles=5),
    Regime("idiosyncratic", "listener idiosyncrasy: each listener has a strong baseline of "
           "their own and a reaction gain between 0.4 and 1.6 (episodes)",
           listener_baseline=0.8, listener_gain=(0.4, 1.6)),
    Regime("weak", "weak coupling: a reaction is only loosely driven by the speaker "
           "(driven part 0.35, own noise 0.8; episodes)", coupling=0.35, reaction_noise=0.8,
           recoverable_from="speaker behaviour; listeners-as-speakers only weakly"),
    Regime("audio", "the voice: speakers' faces do not show their episodes, only their voice "
           "does (loudness, pitch, brightness, speaking rate); listeners react to the voice",
           face_shows_episodes=False,
           recoverable_from="the speaker's voice (first persons); the face (second persons)"),
)}
DEFAULT_REGIME = "aligned"
EPISODE_TYPES = 6  # behaviour episodes in the bank (greeting, complaint, joke, ...)
EPISODES_PER_SCRIPT = 3  # episodes a context's script plays, in order
CUT_RANGE = (0.15, 0.85)  # episode boundaries fall anywhere in this part of the clip
MIN_EPISODE = 0.1  # every episode lasts at least this fraction of the clip (3 s)


def regime_names() -> tuple[str, ...]:
    """Names accepted by ``regnn synth --regime`` (the default first)."""
    return tuple(REGIMES)


def get_regime(name: str) -> Regime:
    if name not in REGIMES:
        raise ValueError(f"unknown regime {name!r}; expected one of {', '.join(REGIMES)}")
    return REGIMES[name]
