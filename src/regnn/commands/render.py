"""``regnn render``: a side-by-side face video of one item (speaker, real, generated)."""

from __future__ import annotations

import argparse

from regnn.commands._common import subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "render", "render one item as a side-by-side face video (MP4 or GIF)",
        "Render item K of a split as a grid of cartoon faces driven by the 25 facial "
        "attributes: the speaker (with their audio when writing MP4), the real listener and "
        "up to --max-generated generated reactions from PRED/<split>/<speaker_path>.npy, "
        "with a time cursor. MP4 uses the ffmpeg bundled with imageio-ffmpeg; .gif needs no "
        "ffmpeg (and an .mp4 request falls back to .gif when ffmpeg is unavailable).")
    p.add_argument("--data", required=True, help="REACT-layout dataset folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split of the dataset")
    p.add_argument("--item", type=int, required=True,
                   help="mirrored item index K (0 .. 2n-1; see `regnn data`)")
    p.add_argument("--pred", default=None,
                   help="predictions folder (PRED/<split>/<speaker_path>.npy); "
                        "omit to show only the speaker and the real listener")
    p.add_argument("--out", required=True, help="output video, FILE.mp4 or FILE.gif")
    p.add_argument("--max-generated", type=int, default=10,
                   help="at most this many generated reactions are shown")
    p.add_argument("--face-size", type=int, default=160, help="pixels per face")
    p.add_argument("--columns", type=int, default=None,
                   help="faces per row (omit for a grid of about 4:3)")
    p.add_argument("--seconds", type=float, default=None,
                   help="render only the first SECONDS of the clip (omit for all of it)")
    p.add_argument("--no-audio", action="store_true", help="do not mux the speaker's audio")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.errors import ConfigError
    from regnn.render.clip import render_item

    if args.face_size < 32:
        raise ConfigError(f"--face-size must be at least 32, got {args.face_size}")
    if args.max_generated < 0:
        raise ConfigError("--max-generated must be >= 0")
    info = render_item(args.data, args.split, args.item, args.out, pred_dir=args.pred,
                       max_generated=args.max_generated, face_size=args.face_size,
                       columns=args.columns, audio=not args.no_audio, seconds=args.seconds)
    for note in info.notes:
        print(f"note: {note}")
    print(f"wrote {info.path}: {info.frames} frames at {info.fps:g} fps "
          f"({info.duration:.2f} s), {info.width}x{info.height}, "
          f"{'with' if info.audio else 'without'} audio; rendered in {info.seconds:.1f} s")
    return 0
