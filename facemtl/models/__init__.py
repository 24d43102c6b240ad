"""facemtl's networks (torch; training only, inference runs the exported ONNX).

``create_model(name, **kw)`` builds a registered task model; every task model's ``forward(image)``
takes (N, 3, S, S) BGR 0..255 and returns a dict of raw outputs for the losses, and its
``decode(outputs)`` gives the ONNX contract's outputs (docs/model-format.md).
"""

from facemtl.models.registry import (create_backbone, create_model, list_backbones, list_models, register_backbone,
                                     register_model)

# Importing the modules registers their constructors.
from facemtl.models import resnet, mobilenet, efficientnet  # noqa: E402,F401  (backbones first: models use them)
from facemtl.models import hopenet, sixdrepnet, mnn, multitask, mos, superres  # noqa: E402,F401
from facemtl.models import expression  # noqa: E402,F401

__all__ = ["create_backbone", "create_model", "list_backbones", "list_models", "register_backbone",
           "register_model"]
