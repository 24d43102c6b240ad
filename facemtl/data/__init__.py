"""Dataset readers: one per annotation format, all yielding :class:`facemtl.data.sample.Sample`."""

from facemtl.data.sample import EXPRESSIONS, Sample

__all__ = ["EXPRESSIONS", "Sample"]
