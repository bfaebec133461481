"""Side-by-side face animations: a grid of faces with a time cursor, written as MP4 or GIF.

A :class:`GridAnimator` lays out one :class:`Panel` per sequence (the speaker, the real
listener, generated reactions), each a cartoon face from :mod:`regnn.render.face` under a
coloured title, above a timeline strip that plots the speaker's and the real listener's
mean AU activity with a moving cursor and the clock. Per frame it copies a pre-drawn
background, draws every face on one supersampled canvas and shrinks it once.

:func:`write_video` encodes the frames: ``.mp4`` with H.264 through the ffmpeg binary that
ships inside the ``imageio-ffmpeg`` wheel (speaker audio muxed in when given, cut to the
clip's duration), ``.gif`` with Pillow (one palette for the whole clip, so colours do not
flicker). When no ffmpeg can be found, an ``.mp4`` request falls back to a ``.gif`` next to
it, and the returned :class:`VideoInfo` says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from regnn.errors import ConfigError
from regnn.render.face import EXPRESSION_COLOURS, FaceRenderer, FaceStyle
from regnn.schema import AU_SLICE, EXPRESSION_NAMES, FPS, NUM_ATTRIBUTES
from regnn.utils.io import atomic_path

log = logging.getLogger(__name__)

ROLE_COLOURS: dict[str, tuple[int, int, int]] = {
    "speaker": (55, 110, 200),
    "listener": (30, 140, 70),
    "generated": (215, 110, 20),
}


@dataclass
class Panel:
    """One face of the grid: a title, a ``(T, 25)`` attribute sequence and a role.

    ``role`` is ``"speaker"``, ``"listener"`` (a real reaction) or ``"generated"``; it picks
    the title colour and which sequences the timeline strip plots.
    """

    title: str
    attrs: np.ndarray
    role: str = "generated"

    def __post_init__(self) -> None:
        a = np.asarray(self.attrs, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != NUM_ATTRIBUTES or a.shape[0] < 1:
            raise ValueError(f"panel {self.title!r}: attributes must have shape (T, 25), "
                             f"got {a.shape}")
        if self.role not in ROLE_COLOURS:
            raise ValueError(f"panel {self.title!r}: role must be one of {list(ROLE_COLOURS)}")
        self.attrs = a


@dataclass
class VideoInfo:
    """What :func:`write_video` wrote."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    seconds: float  # wall-clock time spent rendering and encoding
    audio: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) for ``n`` panels: ``columns`` if given, else about 4:3 landscape."""
    if n < 1:
        raise ValueError("need at least one panel")
    if columns is None:
        columns = min(n, max(1, math.ceil(math.sqrt(n * 4 / 3))))
    columns = max(1, min(columns, n))
    return math.ceil(n / columns), columns


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=max(6, px))
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


class GridAnimator:
    """Frames of a grid of faces with a time cursor.

    ``face_size`` is each face's width in output pixels; the frame size is padded to a
    multiple of 16 so H.264 needs no rescaling. Sequences of different lengths are allowed;
    the animation lasts as long as the shortest, and a panel holds its last frame otherwise.
    """

    def __init__(self, panels: Sequence[Panel], face_size: int = 160, columns: int | None = None,
                 fps: float = FPS, supersample: int = 2, title: str | None = None,
                 timeline: bool = True, style: FaceStyle | None = None) -> None:
        if not panels:
            raise ValueError("need at least one panel")
        self.panels = list(panels)
        self.fps = float(fps)
        self.n_frames = min(p.attrs.shape[0] for p in self.panels)
        self.face_size = int(face_size)
        self.ss = int(supersample)
        self.renderer = FaceRenderer(self.face_size, self.ss, style)
        self.rows, self.cols = grid_shape(len(self.panels), columns)
        fs = self.face_size
        self.pad = max(2, fs // 32)
        self.label_h = max(12, fs // 9)
        self.title_h = self.label_h + 2 * self.pad if title else 0
        self.strip_h = max(36, fs // 3) if timeline else max(14, fs // 10)
        w = self.cols * (fs + self.pad) + self.pad
        h = self.title_h + self.rows * (fs + self.label_h + self.pad) + self.pad + self.strip_h
        self.width, self.height = _round_up(w, 16), _round_up(h, 16)
        self.title = title
        self.timeline = timeline
        self._background = self._draw_background()

    # ----------------------------------------------------------------- layout
    def face_origin(self, i: int) -> tuple[int, int]:
        """Top-left output pixel of panel ``i``'s face."""
        r, c = divmod(i, self.cols)
        x = self.pad + c * (self.face_size + self.pad)
        y = self.title_h + self.pad + r * (self.face_size + self.label_h + self.pad) + self.label_h
        return x, y

    def _strip_box(self) -> tuple[int, int, int, int]:
        top = self.height - self.strip_h
        return (self.pad * 4, top + 2, self.width - self.pad * 4, self.height - 4)

    def _draw_background(self) -> Image.Image:
        ss = self.ss
        img = Image.new("RGB", (self.width * ss, self.height * ss), (255, 255, 255))
        d = ImageDraw.Draw(img)
        font = _font(int(self.label_h * 0.8) * ss)
        if self.title:
            d.text((self.pad * ss, self.pad * ss), self.title, fill=(30, 30, 30), font=font)
        bg = self.renderer.style.background
        for i, p in enumerate(self.panels):
            x, y = self.face_origin(i)
            col = ROLE_COLOURS[p.role]
            d.rectangle([x * ss, (y - self.label_h) * ss, (x + self.face_size) * ss - 1,
                         y * ss - 1], fill=col)
            d.text(((x + 3) * ss, (y - self.label_h + 1) * ss), p.title, fill=(255, 255, 255),
                   font=font)
            d.rectangle([x * ss, y * ss, (x + self.face_size) * ss - 1,
                         (y + self.face_size) * ss - 1], fill=bg)
        if self.timeline:
            self._draw_strip(d)
        return img

    def _draw_strip(self, d: ImageDraw.ImageDraw) -> None:
        ss = self.ss
        x0, y0, x1, y1 = self._strip_box()
        font = _font(int(self.label_h * 0.7) * ss)
        plot_top = y0 + self.label_h
        d.rectangle([x0 * ss, plot_top * ss, x1 * ss, y1 * ss], outline=(190, 190, 190),
                    width=ss)
        # legend: expression bar colours (names shortened when the strip is narrow)
        tail = "| line: mean AU activity"
        for names in (EXPRESSION_NAMES, tuple(e[:3] for e in EXPRESSION_NAMES), ()):
            width = sum(14 + d.textlength(e, font=font) / ss for e in names)
            if x0 + width + d.textlength(tail, font=font) / ss < x1 - 12 * self.label_h:
                break
        x = x0
        for name, col in zip(names, EXPRESSION_COLOURS):
            d.rectangle([x * ss, (y0 + 2) * ss, (x + 6) * ss, (y0 + 8) * ss], fill=col)
            d.text(((x + 8) * ss, y0 * ss), name, fill=(80, 80, 80), font=font)
            x += 14 + d.textlength(name, font=font) / ss
        if names:
            d.text(((x + 2) * ss, y0 * ss), tail, fill=(80, 80, 80), font=font)
        n = self.n_frames
        for role in ("speaker", "listener"):
            p = next((q for q in self.panels if q.role == role), None)
            if p is None or n < 2:
                continue
            act = p.attrs[:n, AU_SLICE].mean(axis=1)
            k = max(1, n // 100)  # light smoothing so the line reads as activity, not noise
            act = np.convolve(act, np.ones(k) / k, mode="same")
            xs = x0 + (x1 - x0) * np.arange(n) / (n - 1)
            ys = y1 - 2 - (y1 - plot_top - 4) * np.clip(act, 0.0, 1.0)
            step = max(1, n // max(1, (x1 - x0)))
            pts = [(float(a) * ss, float(b) * ss) for a, b in zip(xs[::step], ys[::step])]
            d.line(pts, fill=ROLE_COLOURS[role], width=ss)

    # ----------------------------------------------------------------- frames
    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as an ``(height, width, 3)`` uint8 array."""
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range 0..{self.n_frames - 1}")
        ss = self.ss
        img = self._background.copy()
        d = ImageDraw.Draw(img)
        for i, p in enumerate(self.panels):
            x, y = self.face_origin(i)
            self.renderer.draw(d, p.attrs[t], x * ss, y * ss, self.face_size * ss)
        x0, y0, x1, y1 = self._strip_box()
        if self.timeline:
            cx = x0 + (x1 - x0) * (t / max(1, self.n_frames - 1))
            d.line([(cx * ss, (y0 + self.label_h) * ss), (cx * ss, y1 * ss)], fill=(200, 0, 0),
                   width=2 * ss)
        clock = f"{t / self.fps:5.2f} s / {self.n_frames / self.fps:.2f} s"
        font = _font(int(self.label_h * 0.8) * ss)
        tw = d.textlength(clock, font=font)
        d.text((x1 * ss - tw, y0 * ss), clock, fill=(20, 20, 20), font=font)
        if ss > 1:
            img = img.reduce(ss)
        return np.asarray(img)

    def frames(self, step: int = 1, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``0, step, 2*step, ...`` up to ``stop`` (default: all)."""
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        for t in range(0, stop, step):
            yield self.frame(t)


def find_ffmpeg() -> str | None:
    """Path of the ffmpeg bundled with imageio-ffmpeg (or on PATH), or None."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # noqa: BLE001 - any failure means "no ffmpeg"
        return None


def write_video(animator: GridAnimator, out: str | Path, audio_path: str | Path | None = None,
                step: int = 1, max_frames: int | None = None, progress: bool = True,
                quality: int = 23) -> VideoInfo:
    """Render ``animator`` into ``out`` (``.mp4`` or ``.gif``), atomically.

    ``step`` keeps every ``step``-th frame (the frame rate drops accordingly, so the
    duration is kept); ``max_frames`` cuts the clip. ``audio_path`` (MP4 only) is muxed in
    from time 0 and cut to the video's duration. ``quality`` is the H.264 CRF.
    """
    import time

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(f"output {out}: unsupported format {suffix!r}; use .mp4 or .gif")
    if step < 1:
        raise ConfigError(f"frame step must be >= 1, got {step}")
    stop = animator.n_frames if max_frames is None else min(max_frames, animator.n_frames)
    n = len(range(0, stop, step))
    fps = animator.fps / step
    notes: list[str] = []
    t0 = time.perf_counter()
    frames = animator.frames(step, stop)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=n, desc=f"render {out.name}", unit="frame", leave=False)
    ffmpeg = find_ffmpeg() if suffix == ".mp4" else None
    if suffix == ".mp4" and ffmpeg is None:
        out = out.with_suffix(".gif")
        notes.append("no ffmpeg found (imageio-ffmpeg); wrote a GIF instead of MP4")
        log.warning(notes[-1])
        suffix = ".gif"
    audio = False
    if suffix == ".mp4":
        if audio_path is not None and not Path(audio_path).is_file():
            notes.append(f"audio file {audio_path} not found; video written without sound")
            log.warning(notes[-1])
            audio_path = None
        audio = audio_path is not None
        _write_mp4(frames, out, (animator.width, animator.height), fps, n, audio_path, quality)
    else:
        if audio_path is not None:
            notes.append("GIF has no sound; speaker audio not included")
        _write_gif(frames, out, fps, _palette_source(animator, stop))
    return VideoInfo(out, n, fps, animator.width, animator.height,
                     time.perf_counter() - t0, audio, notes)


def _write_mp4(frames: Iterator[np.ndarray], out: Path, size: tuple[int, int], fps: float,
               n: int, audio_path: str | Path | None, quality: int) -> None:
    import imageio_ffmpeg

    with atomic_path(out) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), size, fps=fps, codec="libx264", quality=None, macro_block_size=16,
            pix_fmt_out="yuv420p", ffmpeg_log_level="error",
            output_params=["-crf", str(quality), "-preset", "veryfast",
                           "-t", f"{n / fps:.6f}", "-movflags", "+faststart"],
            audio_path=None if audio_path is None else str(audio_path),
            audio_codec=None if audio_path is None else "aac",
        )
        writer.send(None)  # start the generator
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()


def _palette_source(animator: GridAnimator, stop: int) -> np.ndarray:
    """A few frames spread over the clip plus a face with every AU active, stacked.

    Their colours cover what the clip shows (faces share one small set of colours), so
    one palette serves every frame and the GIF does not flicker between palettes.
    """
    times = sorted({int(t) for t in np.linspace(0, stop - 1, 4)})
    parts = [animator.frame(t) for t in times]
    busy = np.ones(NUM_ATTRIBUTES, dtype=np.float32) / 8
    busy[AU_SLICE] = 1.0
    busy[15:17] = (0.7, 0.7)
    face = animator.renderer.render(busy)
    w = parts[0].shape[1]
    strip = np.full((face.shape[0], w, 3), 255, dtype=np.uint8)
    strip[:, : min(w, face.shape[1])] = face[:, : min(w, face.shape[1])]
    return np.concatenate(parts + [strip], axis=0)


def _write_gif(frames: Iterator[np.ndarray], out: Path, fps: float,
               palette_source: np.ndarray) -> None:
    first = next(iter(frames), None)
    if first is None:
        raise ConfigError("nothing to write: the clip has no frames")
    pal = Image.fromarray(palette_source).quantize(colors=255, method=Image.Quantize.MEDIANCUT)

    def as_p(a: np.ndarray) -> Image.Image:
        return Image.fromarray(a).quantize(palette=pal, dither=Image.Dither.NONE)

    duration_ms = 1000.0 / fps
    with atomic_path(out) as tmp:
        head = as_p(first)
        head.save(tmp, format="GIF", save_all=True, append_images=(as_p(f) for f in frames),
                  duration=duration_ms, loop=0, optimize=False, disposal=1)


def probe_video(path: str | Path) -> tuple[int, float]:
    """(frame count, seconds) of a video file's first video stream, as decoded by ffmpeg."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        with Image.open(path) as im:
            n = getattr(im, "n_frames", 1)
            total = 0
            for i in range(n):
                im.seek(i)
                total += int(im.info.get("duration", 0))
        return n, total / 1000.0
    import imageio_ffmpeg

    n, secs = imageio_ffmpeg.count_frames_and_secs(str(path))
    return int(n), float(secs)
