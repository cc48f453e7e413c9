"""The geometry stage: similarity transforms (:mod:`.transforms`), facial action units (:mod:`.action_units`), the
warp of a face's own pixels (:mod:`.warp`) and the component that applies it to detected faces (:mod:`.warper`)."""
