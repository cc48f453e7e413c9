"""Video editing speed: frames per second of `edit_video` (geometry mode: tracking, smoothing, warp, PyAV decode and
encode) on a 640x360 talking-face clip made from a real photo, against editing each frame as a photo with the
pipeline (`pipe(frame, mode="geometry")`), measured in the same run; and peak memory for a clip 4x as long
(memory must not grow with the clip's length: frames are streamed).

    python benchmarks/bench_video.py [--frames 100] [--photo-frames 10] [--size 640x360]
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import _common as c
import numpy as np


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--image", default=str(c.EXAMPLE_IMAGE), help="The real photo the clip is made of.")
    p.add_argument("--target", default="happy")
    p.add_argument("--frames", type=int, default=100, help="Frames of the timed clip.")
    p.add_argument("--photo-frames", type=int, default=10, help="Frames edited one by one as photos.")
    p.add_argument("--size", default="640x360", help="Frame size WxH.")
    p.add_argument("--detect-every", type=int, default=10)
    p.set_defaults(repeats=3)
    args = p.parse_args()

    from PIL import Image

    from diffusers_led.video import edit_video, iter_frames
    from diffusers_led.video.synthetic import make_photo_clip

    threads = c.set_threads(args.threads)
    machine = c.machine_line(threads)
    pipe, _ = c.load_pipeline(args.model)
    pipe.region_processor.detector.load()
    photo = np.asarray(Image.open(args.image).convert("RGB"))
    width, height = (int(v) for v in args.size.lower().split("x"))
    # The photo's face moves (a slow push-in and pan) and talks (its jaw opens twice a second).
    h, w = photo.shape[:2]
    camera = [(0.0, w / 2, h * 0.4, 1.5), (1.0, w * 0.45, h * 0.35, 1.9)]
    with tempfile.TemporaryDirectory() as folder:
        short, long = Path(folder, "short.mp4"), Path(folder, "long.mp4")
        make_photo_clip(photo, short, (width, height), args.frames, camera=camera, talk_hz=2.0)
        make_photo_clip(photo, long, (width, height), 4 * args.frames, camera=camera, talk_hz=2.0)
        edit_video(pipe, short, args.target, Path(folder, "warmup.mp4"), progress=False)  # models and caches loaded

        cpu_rates = []  # frames per CPU-second of this process (all its threads): what the load does not move

        def video_edit(source: Path, name: str) -> tuple[float, float]:
            start, cpu = time.perf_counter(), time.process_time()
            result = edit_video(
                pipe, source, args.target, Path(folder, name), progress=False, detect_every=args.detect_every
            )
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert result.stats.frames_edited == result.written.frames, result.stats
            cpu_rates.append(result.written.frames / cpu)
            return result.written.frames / seconds, peak_rss_mib()

        frames = [f.rgb for _, f in zip(range(args.photo_frames), iter_frames(short))]

        photo_cpu_rates = []

        def photo_edits() -> float:
            start, cpu = time.perf_counter(), time.process_time()
            for frame in frames:
                pipe(frame, target=args.target, mode="geometry", output_type="np")
            photo_cpu_rates.append(len(frames) / (time.process_time() - cpu))
            return len(frames) / (time.perf_counter() - start)

        # Interleaved (video, photos, video, photos, video): the machine's load moves both alike; medians reported.
        video_runs, photo_runs = [], []
        for run in range(args.repeats):
            fps, rss_short = video_edit(short, f"run{run}.mp4")
            video_runs.append(fps)
            if run < args.repeats - 1:
                photo_runs.append(photo_edits())
        video_fps, photo_fps = c.median(video_runs), c.median(photo_runs)
        long_fps, rss_long = video_edit(long, "long_out.mp4")

    print(f"## Video editing speed ({width}x{height}, target {args.target}, geometry mode)\n")
    print(machine)
    print(f"command: {c.command_line()}\n")
    rows = [
        ["edit_video (tracked, smoothed), median", f"{args.frames}", video_fps, video_fps / photo_fps],
        ["edit_video, 4x longer clip", f"{4 * args.frames}", long_fps, long_fps / photo_fps],
        ["pipe(frame) per frame (photo edits), median", f"{len(frames)}", photo_fps, 1.0],
    ]
    print(c.table(["path", "frames", "frames/s", "x photo edits"], rows))
    print(
        f"\nper CPU-second of this process (all its threads; what the machine's load does not move): edit_video "
        f"{c.median(cpu_rates[:-1]):.1f} frames, photo edits {c.median(photo_cpu_rates):.2f} frames "
        f"({c.median(cpu_rates[:-1]) / c.median(photo_cpu_rates):.1f}x). On 2 idle cores the wall rate of a "
        "CPU-bound process is between its rate per CPU-second and twice it."
    )
    print(
        f"\nedit_video runs: {', '.join(f'{v:.1f}' for v in video_runs)} frames/s; photo edits: "
        f"{', '.join(f'{v:.2f}' for v in photo_runs)} frames/s"
    )
    print(
        f"\npeak RSS: {rss_short:.0f} MiB after the {args.frames}-frame clip, {rss_long:.0f} MiB after the "
        f"{4 * args.frames}-frame one (+{rss_long - rss_short:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
