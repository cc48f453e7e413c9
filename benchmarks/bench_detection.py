"""Face detection recall and time, detectors side by side, on the real-photo set.

For each photo of the given split folders: the faces present (counted by hand once, ``faces_present`` in the
real-photo manifest), the faces each detector found (and the "mesh" detector's faces found but too turned or small
to read), and the median time of one detection on the full photo and on a copy whose long side is 640 px. Detectors
run interleaved, photo by photo, so they share the machine's load. ``--sheets`` writes a contact sheet per photo:
the mesh detector's boxes and 478 points (green), its unreadable faces (orange) and dlib's boxes (red).

    python benchmarks/bench_detection.py --data data/real_photos/tune data/real_photos/test --sheets /tmp/sheets
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
from _common import collect_images, machine_line, median, table, timed
from PIL import Image, ImageOps

from diffusers_led.commands import ArgumentParser
from diffusers_led.faces.loader import load_face_detector

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "diffusers_led" / "evaluation" / "real_photos.json"


def faces_present(manifest: Path) -> dict[str, int]:
    photos = json.loads(manifest.read_text(encoding="utf-8"))["photos"]
    return {photo["file_name"]: photo["faces_present"] for photo in photos if "faces_present" in photo}


def shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    scale = long_side / max(rgb.shape[:2])
    return rgb if scale >= 1 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def contact_sheet(rgb: np.ndarray, mesh_faces, dlib_faces) -> np.ndarray:
    """The photo with the mesh faces' boxes and points (green), unreadable faces (orange) and dlib's boxes (red)."""
    canvas = rgb.copy()
    thick = max(1, round(max(canvas.shape[:2]) / 500))

    def box(b, colour) -> None:
        x, y, w, h = (round(v) for v in b)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thick, cv2.LINE_AA)

    for face in dlib_faces:
        box(face.box, (255, 0, 0))
    for face in mesh_faces:
        box(face.box, (0, 255, 0))
        for x, y in face.mesh[:, :2]:
            cv2.circle(canvas, (round(x), round(y)), max(1, thick // 2), (0, 255, 0), -1)
    for b in getattr(mesh_faces, "unreadable", ()):
        box(b, (255, 160, 0))
    return canvas


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="Photo folders (e.g. the tune and test splits).")
    parser.add_argument("--detectors", default="mesh,dlib", help="Comma-separated load_face_detector specs.")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="Manifest with faces_present per photo.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed detections per photo and size (median).")
    parser.add_argument("--sheets", type=Path, default=None, help="Folder for the contact sheets (PNG).")
    args = parser.parse_args()
    present = faces_present(args.manifest)
    specs = [s.strip() for s in args.detectors.split(",") if s.strip()]
    detectors = {spec: load_face_detector(spec) for spec in specs}
    for detector in detectors.values():
        detector.load()
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print(f"`{' '.join(['python', *sys.argv])}`\n")
    rows, totals = [], {spec: [0, 0, 0, [], []] for spec in specs}  # found, capped found, unreadable, times, 640 times
    total_present = 0
    for path in collect_images([str(d) for d in args.data]):
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        small = shrink(rgb, 640)
        count = present.get(path.name)
        total_present += count or 0
        row = [f"{path.parent.name}/{path.name}", f"{rgb.shape[1]}x{rgb.shape[0]}", count]
        found = {}
        for spec, detector in detectors.items():
            found[spec] = detector.detect(rgb)
        for spec, detector in detectors.items():  # interleaved repeats: both see the same load
            full = median(timed(lambda d=detector, i=rgb: d.detect(i)) for _ in range(args.repeats))
            at_640 = median(timed(lambda d=detector, i=small: d.detect(i)) for _ in range(args.repeats))
            unreadable = len(getattr(found[spec], "unreadable", ()))
            totals[spec][0] += len(found[spec])
            totals[spec][1] += min(len(found[spec]), count or 0)
            totals[spec][2] += unreadable
            totals[spec][3].append(full)
            totals[spec][4].append(at_640)
            extra = f" (+{unreadable} unreadable)" if unreadable else ""
            row += [f"{len(found[spec])}{extra}", f"{full * 1e3:.0f}", f"{at_640 * 1e3:.0f}"]
        rows.append(row)
        if args.sheets and "mesh" in found:
            sheet = contact_sheet(rgb, found["mesh"], found.get("dlib", []))
            Image.fromarray(shrink(sheet, 1600)).save(args.sheets / f"{path.parent.name}_{path.stem}.png")
    headers = ["photo", "size", "present"]
    for spec in specs:
        headers += [f"{spec} found", f"{spec} ms", f"{spec} ms @640"]
    print(table(headers, rows))
    print()
    summary = []
    for spec, (found_count, capped, unreadable, times, times_640) in totals.items():
        recall = capped / total_present if total_present else float("nan")
        summary.append(
            [spec, f"{capped}/{total_present} = {recall:.0%}", found_count, unreadable, f"{median(times) * 1e3:.0f}"]
            + [f"{median(times_640) * 1e3:.0f}"]
        )
    headers = ["detector", "recall (found/present)", "faces found", "unreadable", "median ms", "median ms @640"]
    print(table(headers, summary))


if __name__ == "__main__":
    main()
