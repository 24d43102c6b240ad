"""Dataset readers: one per annotation format, all yielding :class:`facemtl.data.sample.Sample`."""

from facemtl.data.sample import Sample

__all__ = ["Sample"]
