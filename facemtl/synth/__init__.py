"""Synthetic faces with exact labels: the ICT-FaceKit head rendered at sampled poses.

Modules: :mod:`~facemtl.synth.facemodel` (the linear head model), :mod:`~facemtl.synth.raster`
(z-buffer rasteriser), :mod:`~facemtl.synth.render` (the pipeline: ``render_sample``,
``render_scene``, ``SynthDataset``) on :mod:`~facemtl.synth.config` (options),
:mod:`~facemtl.synth.anatomy` (head, hair and neck geometry), :mod:`~facemtl.synth.assets`
(per-process precomputation), :mod:`~facemtl.synth.person` (person, expression, pose, light),
:mod:`~facemtl.synth.head` (skin, hair, torso meshes) and :mod:`~facemtl.synth.compose`
(shading, backgrounds, occluders, augmentation); :mod:`~facemtl.synth.labels` (pose,
landmarks, visibility, box, expression class), :mod:`~facemtl.synth.writer` (``.jpg`` +
``.mat`` and ``.npz`` shards), :mod:`~facemtl.synth.cli` (``facemtl synth``).
This package imports nothing heavy at import time.
"""
