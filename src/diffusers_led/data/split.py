"""The subject-wise split of labelled photos: no subject in both splits, each photo used once
(:func:`split_subjects`, :func:`remove_duplicate_photos`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from ..utils import file_digest
from .formats import DatasetFormatError, LabelledPhoto, PhotoListing

# ---------------------------------------------------------------------------------------------------------------------
# Subject-wise split
# ---------------------------------------------------------------------------------------------------------------------


def subject_key(subject: Any) -> str:
    """The identity of a subject id: surrounding spaces dropped and leading zeros of a numeric id ignored, so
    ``"1"``, ``"01"`` and ``"001"`` (one RaFD person written three ways) are one person."""
    text = str(subject).strip()
    return str(int(text)) if text.isdigit() else text


def normalise_subjects(photos: Sequence[LabelledPhoto]) -> dict[str, str]:
    """Give every photo of one person (:func:`subject_key`) the same subject id, its longest spelling (``"001"`` of
    ``"1"``, ``"01"``, ``"001"``: zero-padded ids sort as numbers). Returns key -> id."""
    spellings: dict[str, set] = {}
    for photo in photos:
        spellings.setdefault(subject_key(photo.subject), set()).add(str(photo.subject).strip())
    canonical = {key: min(names, key=lambda name: (-len(name), name)) for key, names in spellings.items()}
    for photo in photos:
        photo.subject = canonical[subject_key(photo.subject)]
    return canonical


def remove_duplicate_photos(listing: PhotoListing, test_set: set) -> None:
    """Keep one photo of each content (SHA-256 of the file: a copy, a symbolic link or a metadata row listed twice
    are the same photo), moving the others to ``listing.skipped``. Copies labelled with different expressions are
    all skipped (which label is right is unknown).

    Raises:
        DatasetFormatError: copies of one photo belong to subjects on both sides of the split (the same face would be
            trained on and tested on).
    """
    groups: dict[str, list[LabelledPhoto]] = {}
    for photo in sorted(listing.photos, key=lambda p: (p.path.is_symlink(), p.source)):  # the file before a link
        try:
            digest = file_digest(photo.path)
        except OSError as error:
            listing.skipped.append({"source": photo.source, "reason": f"unreadable: {error}"})
            continue
        groups.setdefault(digest, []).append(photo)
    kept = []
    for copies in groups.values():
        first = copies[0]
        splits = {"test" if subject_key(c.subject) in test_set else "train" for c in copies}
        if len(splits) > 1:
            raise DatasetFormatError(
                f"{', '.join(c.source for c in copies)} are the same photo (identical content) labelled as subjects "
                f"{sorted({c.subject for c in copies})}, which the split puts in train and test: fix the labels, or "
                "remove the copies."
            )
        if len({c.expression for c in copies}) > 1:
            labels = ", ".join(f"{c.source} ({c.expression})" for c in copies)
            reason = f"the same photo (identical content) has different expressions: {labels}; fix the labels"
            listing.skipped.extend({"source": c.source, "reason": reason} for c in copies)
            continue
        kept.append(first)
        reason = f"duplicate of {first.source} (identical content)"
        listing.skipped.extend({"source": c.source, "reason": reason} for c in copies[1:])
    listing.photos = kept


def split_subjects(
    subjects: Iterable[str],
    test_subjects: Sequence[str] | None = None,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> set:
    """The subjects of the test split, as :func:`subject_key` gives them (``"01"`` and ``"1"`` are one subject).

    ``test_subjects`` names them; otherwise ``round(test_fraction * n)`` subjects (at least one when the fraction is
    positive and there are two or more subjects, never all of them) are drawn by a seeded hash, so the choice is the
    same on every run with the same subjects.
    """
    spelling = {}  # key -> the id as written (the draw below ranks the ids as written, as it always has)
    for subject in subjects:
        spelling.setdefault(subject_key(subject), str(subject).strip())
    subjects = sorted(spelling.values())
    if test_subjects:
        unknown = sorted({subject_key(s) for s in test_subjects} - set(spelling))
        if unknown:
            raise ValueError(f"--test_subjects {unknown} are not among the subjects found: {subjects}.")
        return {subject_key(s) for s in test_subjects}
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test_fraction must be in [0, 1), got {test_fraction}.")
    if test_fraction == 0.0 or len(subjects) < 2:
        return set()
    count = min(max(1, round(test_fraction * len(subjects))), len(subjects) - 1)
    ranked = sorted(subjects, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    return {subject_key(s) for s in ranked[:count]}


# ---------------------------------------------------------------------------------------------------------------------
