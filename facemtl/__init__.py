"""facemtl: multi-task facial analysis built around head pose."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: ``import facemtl`` stays light; ``facemtl.FaceAnalyzer`` loads OpenCV on first use.
    if name == "FaceAnalyzer":
        from facemtl.infer import FaceAnalyzer

        return FaceAnalyzer
    raise AttributeError(f"module 'facemtl' has no attribute {name!r}")
