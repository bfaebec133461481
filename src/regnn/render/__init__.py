"""Pictures of reactions: a weight-free face renderer, grid animations, plots.

- :mod:`regnn.render.face`: :class:`FaceRenderer`, :func:`render_face` (a cartoon face
  driven by the 25 REACT attributes);
- :mod:`regnn.render.video`: :class:`GridAnimator`, :class:`Panel`, :func:`write_video`
  (MP4 via imageio-ffmpeg's bundled ffmpeg with the speaker's audio, or GIF);
- :mod:`regnn.render.clip`: :func:`render_item` (one item of a split, as ``regnn render``);
- :mod:`regnn.render.plots`: attribute time series, embedding of windows, training curves;
- :mod:`regnn.render.inputs`: predictions, ``scores.json`` and training-log readers;
- :mod:`regnn.render.browser`: open an HTML page in headless Chromium, screenshot it.

The HTML report itself is :func:`regnn.report.write_report`.
"""

from regnn.render.face import FaceRenderer, neutral_attributes, render_face
from regnn.render.video import GridAnimator, Panel, VideoInfo, probe_video, write_video

__all__ = [
    "FaceRenderer", "GridAnimator", "Panel", "VideoInfo", "neutral_attributes", "probe_video",
    "render_face", "write_video",
]
