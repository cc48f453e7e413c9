"""Faces in a photo: detection and landmarks (:mod:`.detection`), the eye and mouth regions cut from them and
composited back (:mod:`.regions`)."""
