"""The one catalogue of metrics: key, names, better direction, family, digits.

Every table, report, plot and score file of the project reads its metric names from here
(``regnn evaluate``'s ``scores.json``, ``regnn bench``'s tables, the HTML report, the demo's
summary). A metric's *key* is regnn's name and the key of :func:`regnn.metrics.compute_all`;
``paper_name`` is the header of the paper's tables (TLCC is the paper's "Synchrony");
``aliases`` are other spellings that mean the same metric (the official REACT code's ``FRC``,
``FRD``, ``S-MSE``), accepted when reading score files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str
    better: str  # "higher" | "lower" | "one" (closest to 1)
    family: str  # appropriateness | diversity | realism | synchrony | coverage
    digits: int  # decimals in tables
    react: bool  # part of the REACT protocol (False: this project's addition)
    description: str
    paper_name: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """The name tables print (the paper's where it has one)."""
        return self.paper_name or self.key

    @property
    def higher_is_better(self) -> bool | None:
        """True, False, or None (closest to 1 is best)."""
        return None if self.better == "one" else self.better == "higher"

    @property
    def better_word(self) -> str:
        return "closest to 1" if self.better == "one" else self.better

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓", "one": "→1"}[self.better]


#: in the order :func:`regnn.metrics.compute_all` returns them, then the image FID
METRICS: tuple[Metric, ...] = (
    Metric("FRCorr", "higher", "appropriateness", 3, True,
           "CCC with the best appropriate real reaction, summed over K", aliases=("FRC",)),
    Metric("FRDist", "lower", "appropriateness", 2, True,
           "DTW distance to the closest appropriate real reaction, summed over K",
           aliases=("FRD",)),
    Metric("FRDiv", "higher", "diversity", 3, True,
           "diversity among the K reactions to one speaker (S-MSE)",
           aliases=("S-MSE", "S_MSE", "SMSE")),
    Metric("FRVar", "higher", "diversity", 3, True, "diversity over time within a reaction"),
    Metric("FRDvs", "higher", "diversity", 3, True, "diversity across speakers"),
    Metric("PCC", "higher", "appropriateness", 3, True,
           "Pearson correlation with the most similar appropriate real reaction"),
    Metric("TLCC", "lower", "synchrony", 2, True,
           "mean |lag| of the best speaker-reaction cross-correlation (frames)",
           paper_name="Synchrony", aliases=("Synchrony", "FRSyn")),
    Metric("FRRea", "lower", "realism", 2, True,
           "realism: Fréchet distance of reaction window features (weight-free)",
           aliases=("realism",)),
    Metric("Jitter", "one", "coverage", 2, False,
           "frame-to-frame change, generated over real (1 = as smooth as real faces)"),
    Metric("FRDivRatio", "one", "coverage", 2, False,
           "FRDiv of the K reactions over that among the real appropriate reactions"),
    Metric("FRCov", "higher", "coverage", 2, False,
           "share of each speaker's appropriate reactions nearest to one of the K"),
    Metric("FRRea_FID", "lower", "realism", 2, True,
           "the REACT protocol's image FID of rendered faces (needs Inception weights)"),
)
METRIC: dict[str, Metric] = {m.key: m for m in METRICS}
#: the paper's Table I / II column order
PAPER_ORDER: tuple[str, ...] = ("FRDist", "FRCorr", "PCC", "FRRea", "FRVar", "FRDvs", "FRDiv",
                                "TLCC")
_BY_NAME: dict[str, str] = {
    name.lower(): m.key for m in METRICS for name in (m.key, m.paper_name, *m.aliases) if name
}


def canonical(name: str) -> str | None:
    """The key of the metric ``name`` (any case; a key, paper name or alias), or None."""
    return _BY_NAME.get(str(name).lower())


def family_keys(family: str, keys: tuple[str, ...] = PAPER_ORDER) -> tuple[str, ...]:
    """The ``keys`` of one family, in order."""
    return tuple(k for k in keys if METRIC[k].family == family)
