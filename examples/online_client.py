"""Stream one speaker clip to ``regnn serve`` and save the listener reactions it sends back.

    regnn serve --run runs/online            # in another terminal (or: regnn serve --toy)
    python examples/online_client.py --data data/ --split test --item 0 --k 3 --out react.npy

Each message carries one video frame of the speaker's 25 facial attributes (REACT order) and
the 40 ms of audio recorded with it (16-bit PCM, base64, at the WAV's own sample rate); the
reply carries the next listener frame of each of the K reactions. ``--realtime`` paces the
messages at 25 fps like a live camera; without it the clip is sent as fast as the server
answers. Without ``--data`` a synthetic speaker (sine-driven attributes, a tone) is sent.
Prints the round-trip latency and saves ``(K, frames, 25)`` float32 to ``--out``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from regnn.online.client import ReactionClient, health


def load_speaker(data: str | None, split: str, item: int, frames: int
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Speaker attributes ``(frames, 25)``, mono audio samples and their sample rate."""
    if data is None:
        t = np.arange(frames)[:, None]
        face = 0.5 + 0.4 * np.sin(t / 12.0 + np.linspace(0, 6, 25)[None])
        face[:, 17:] = np.abs(face[:, 17:]) / np.abs(face[:, 17:]).sum(1, keepdims=True)
        sr = 16_000
        s = np.arange(frames * sr // 25) / sr
        audio = 0.2 * np.sin(2 * np.pi * 180 * s) * (1 + np.sin(2 * np.pi * 0.5 * s))
        return face.astype(np.float32), audio.astype(np.float32), sr
    from regnn.data.audio import read_wav
    from regnn.data.react import ReactSplit

    ds = ReactSplit(data, split, audio=False)
    samples, sr = read_wav(ds.audio_path(ds.items[item].speaker_path))
    return ds.speaker(item)[:frames], samples.mean(axis=1), sr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="ws://127.0.0.1:8765", help="server URL")
    ap.add_argument("--token", help="the server's token (regnn serve --token/--token-file, or "
                                    "the one it printed)")
    ap.add_argument("--data", help="REACT-layout dataset root (default: a synthetic speaker)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--item", type=int, default=0, help="mirrored item index in the split")
    ap.add_argument("--frames", type=int, default=750, help="frames to send")
    ap.add_argument("--k", type=int, default=3, help="reactions to generate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--realtime", action="store_true", help="pace the frames at 25 fps")
    ap.add_argument("--out", default="reaction.npy", help="where to save (K, frames, 25)")
    args = ap.parse_args()

    face, audio, sr = load_speaker(args.data, args.split, args.item, args.frames)
    per_frame = sr // 25
    print("server:", health(args.url, token=args.token))
    latencies, outs = [], []
    with ReactionClient(args.url, token=args.token) as client:
        info = client.start(k=args.k, seed=args.seed)
        print(f"session {info['session']}: K={info['k']}, hop {info.get('hop')} frames, "
              f"model {info['model']}")
        t0 = time.perf_counter()
        for i in range(len(face)):
            if args.realtime:
                time.sleep(max(0.0, t0 + i / 25 - time.perf_counter()))
            t = time.perf_counter()
            out = client.send(face[i], audio[i * per_frame:(i + 1) * per_frame], sr)
            latencies.append((time.perf_counter() - t) * 1e3)
            outs.append(out)
        print("ended:", client.end())
    reactions = np.concatenate(outs, axis=1)
    np.save(args.out, reactions)
    lat = np.asarray(latencies)
    print(f"{reactions.shape[1]} listener frames x {reactions.shape[0]} reactions -> {args.out}")
    print(f"round trip per frame: median {np.median(lat):.2f} ms, p99 "
          f"{np.percentile(lat, 99):.2f} ms, max {lat.max():.2f} ms (budget at 25 fps: 40 ms)")


if __name__ == "__main__":
    main()
