"""Derive ``faces.mesh.MESH_TO_IBUG68``: for each of dlib's 68 points, the Face Mesh V2 vertex nearest to it.

Run on the real-photo TUNE split only (never test)::

    python scripts/derive_mesh_map.py data/real_photos/tune

For every face both detectors find (each photo also mirrored, so neither side is favoured) it measures each mesh
vertex's distance to each dlib point in eye distances; per pair of mirror-partner points it picks the vertex (and its
mirror partner on the mesh) with the smallest summed median distance, so the map is left-right symmetric. The eye and
mouth corners are then set to the mesh's own corner vertices, which the 5 alignment points are built from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from diffusers_led.commands import ArgumentParser
from diffusers_led.faces.detection import DlibFaceDetector
from diffusers_led.faces.mesh import IBUG68_MIRROR, MESH_TO_IBUG68, MeshFaceDetector

#: The mesh's eye and mouth corner vertices, for dlib's 36, 39, 42, 45, 48 and 54.
CORNERS = {36: 33, 39: 133, 42: 362, 45: 263, 48: 61, 54: 291}


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="Folder of photos (the tune split).")
    args = parser.parse_args()
    mesh_detector, dlib_detector = MeshFaceDetector(), DlibFaceDetector()
    distances, mirror_votes = [], []
    for path in sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        photo = np.asarray(Image.open(path).convert("RGB"))
        mirrored = photo[:, ::-1].copy()
        meshes = {}
        for name, image in (("photo", photo), ("mirrored", mirrored)):
            meshes[name] = mesh_detector.detect(image)
            for dlib_face in dlib_detector.detect(image):
                centre, eye = dlib_face.shape.mean(0), np.linalg.norm(dlib_face.landmarks[1] - dlib_face.landmarks[0])
                near = [f for f in meshes[name] if np.linalg.norm(f.shape.mean(0) - centre) < eye]
                if near:
                    mesh = near[0].mesh[:, :2].astype(np.float64)
                    distances.append(np.linalg.norm(mesh[None] - dlib_face.shape[:, None], axis=2) / eye)
        # The mesh's own mirror partners: each vertex of a face against the un-mirrored mesh of its mirror image.
        for face in meshes["photo"]:
            for other in meshes["mirrored"]:
                back = other.mesh[:, :2].astype(np.float64)
                back[:, 0] = photo.shape[1] - 1 - back[:, 0]
                if np.linalg.norm(back.mean(0) - face.mesh[:, :2].mean(0)) < 10:
                    mirror_votes.append(np.linalg.norm(face.mesh[:, None, :2] - back[None], axis=2).argmin(1))
    median = np.median(np.stack(distances), axis=0)  # (68, 478)
    votes = np.stack(mirror_votes)
    mesh_mirror = np.array([np.bincount(votes[:, v]).argmax() for v in range(votes.shape[1])])
    on_midline = np.flatnonzero(mesh_mirror == np.arange(len(mesh_mirror)))
    index_map = np.zeros(68, dtype=int)
    for point, partner in enumerate(IBUG68_MIRROR):
        if partner == point:
            index_map[point] = on_midline[median[point, on_midline].argmin()]
        elif point < partner:
            vertex = (median[point] + median[partner, mesh_mirror]).argmin()
            index_map[point], index_map[partner] = vertex, mesh_mirror[vertex]
    for point, vertex in CORNERS.items():
        index_map[point] = vertex
    rows = np.arange(68)
    print(f"{len(distances)} faces")
    print("derived map:", index_map.tolist())
    print(f"median distance to dlib's points: derived {median[rows, index_map].mean():.3f} eye distances, "
          f"current {median[rows, MESH_TO_IBUG68].mean():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
