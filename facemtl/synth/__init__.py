"""Synthetic faces with exact labels: the ICT-FaceKit head rendered at sampled poses.

Modules: :mod:`~facemtl.synth.facemodel` (the linear head model), :mod:`~facemtl.synth.raster`
(z-buffer rasteriser), :mod:`~facemtl.synth.render` (scenes: camera, lighting, textures, hair,
torso, backgrounds, occluders; ``render_sample``), :mod:`~facemtl.synth.labels` (pose,
landmarks, visibility, box, expression class), :mod:`~facemtl.synth.writer` (``.jpg`` +
``.mat`` and ``.npz`` shards), :mod:`~facemtl.synth.cli` (``facemtl synth``).
This package imports nothing heavy at import time.
"""
