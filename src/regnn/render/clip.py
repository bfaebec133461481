"""Render one item of a REACT-layout split: speaker, real listener and generated reactions."""

from __future__ import annotations

import logging
from pathlib import Path

from regnn.errors import ConfigError, DataError
from regnn.render.video import GridAnimator, Panel, VideoInfo, write_video
from regnn.results import load_prediction, prediction_path
from regnn.schema import FPS

log = logging.getLogger(__name__)


def render_item(data_root: str | Path, split: str, item: int, out: str | Path,
                pred_dir: str | Path | None = None, max_generated: int = 10,
                face_size: int = 160, columns: int | None = None, audio: bool = True,
                seconds: float | None = None, supersample: int = 2,
                progress: bool = True) -> VideoInfo:
    """Write the side-by-side video of item ``item`` of ``split`` to ``out`` (.mp4 or .gif).

    Panels: the speaker (their attributes rendered; their audio muxed in when writing MP4),
    the real listener, then up to ``max_generated`` reactions from
    ``PRED/<split>/<speaker_path>.npy``. ``seconds`` cuts the clip (default: all of it).
    """
    from regnn.data.react import ReactSplit

    ds = ReactSplit(data_root, split, audio=False)
    if not 0 <= item < len(ds):
        raise ConfigError(f"item {item} out of range: split {split!r} of {data_root} has "
                          f"{len(ds)} items (0..{len(ds) - 1})")
    it = ds.items[item]
    panels = [Panel("speaker", ds.speaker(item), "speaker"),
              Panel("real listener", ds.listener(item), "listener")]
    notes: list[str] = []
    if pred_dir is not None:
        pred = load_prediction(pred_dir, split, it.speaker_path, frames=ds.frames)
        if pred is None:
            raise DataError("no predictions for this item",
                            path=prediction_path(pred_dir, split, it.speaker_path),
                            kind="missing-file")
        panels += [Panel(f"generated {k + 1}", pred[k])
                   for k in range(min(max_generated, pred.shape[0]))]
    audio_path = None
    if audio and Path(out).suffix.lower() == ".mp4":
        try:
            audio_path = ds.audio_path(it.speaker_path)
        except DataError as exc:
            notes.append(f"speaker audio not found ({exc}); video written without sound")
            log.warning(notes[-1])
    an = GridAnimator(panels, face_size=face_size, columns=columns, fps=FPS,
                      supersample=supersample,
                      title=f"{split} item {item}: speaker {it.speaker_path}")
    max_frames = None if seconds is None else max(1, int(round(seconds * FPS)))
    info = write_video(an, out, audio_path=audio_path, max_frames=max_frames, progress=progress)
    info.notes[:0] = notes
    return info
