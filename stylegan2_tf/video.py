"""Frames to a looping GIF (Pillow) or an H.264 MP4 (imageio-ffmpeg, the `video` extra, which ships
its own ffmpeg binary). Frames are uint8 [H, W, C], C = 1 or 3 (the first 3 of 4). GIFs keep the
frames' size. In an MP4, small frames are scaled up by a whole factor (pixels repeated) so that the
short side is at least MIN_SIDE (players show 16x16 videos as a dot), and the sides are padded with
black to multiples of 16 (H.264's macroblocks)."""

import numpy as np

from .errors import UserError

FORMATS = ("gif", "mp4")
MIN_SIDE = 256
MP4_CRF = 12  # x264 constant-quality factor: visually lossless (0 would be lossless, larger files)


class VideoError(UserError):
    """Bad video settings, or the encoder missing."""


def upscale(frame, factor):
    return frame if factor == 1 else np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def scale_factor(shape):
    return max(1, -(-MIN_SIDE // min(shape[:2])))


def write_video(frames, path, fps, fmt=None):
    """frames: a sequence of uint8 [H, W, C]; fmt from the path's suffix when None. Returns path."""
    fmt = fmt or path.rsplit(".", 1)[-1].lower()
    if fmt not in FORMATS:
        raise VideoError(f"--video {fmt!r}: expected one of {', '.join(FORMATS)}")
    if not fps > 0:
        raise VideoError(f"--fps {fps}: must be > 0")
    frames = [np.asarray(f, np.uint8) for f in frames]
    if fmt == "gif":
        from PIL import Image
        images = [Image.fromarray(f[..., 0] if f.shape[2] == 1 else f[..., :3]) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
        return path
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VideoError('MP4 needs the Python package imageio-ffmpeg: pip install "stylegan2-tf[video]"') from None
    factor = scale_factor(frames[0].shape)
    rgb = [upscale(np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f[..., :3], factor) for f in frames]
    h, w = rgb[0].shape[:2]
    ph, pw = -h % 16, -w % 16
    writer = imageio_ffmpeg.write_frames(path, (w + pw, h + ph), fps=fps, codec="libx264", quality=None,
                                         macro_block_size=1, output_params=["-crf", str(MP4_CRF)])
    writer.send(None)  # start the encoder
    for f in rgb:
        writer.send(np.ascontiguousarray(np.pad(f, [(0, ph), (0, pw), (0, 0)])))
    writer.close()
    return path


def read_mp4(path):
    """(frames [T, H, W, 3] uint8, fps): an MP4 decoded by the same ffmpeg (tests, checks)."""
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return np.stack(frames), meta["fps"]
