"""The dedicated expression network: EfficientNet-Lite0 (ImageNet-pretrained) on a small grey crop.

FER2013, the bulk of the expression data, is 48x48 grey; fed to the multi-task net inside its
112 px colour crop, expression gets an upscaled, colourless corner of the input and a share of
a trunk trained for geometry. This network sees only the face, in grey, at ``input_size``
(48 px in the shipped model), and runs as a second ONNX call after the main model (``docs/model-format.md``,
"The expression model").

Input: the contract's (N, 3, S, S) BGR 0..255. The net takes the luma (BT.601 weights, OpenCV's
``COLOR_BGR2GRAY``), repeats it into the three channels the pretrained stem expects, normalises
it (:class:`~facemtl.models.heads.InputNorm`), and classifies the pooled stride-32 feature.
``flip_average``: at eval time also run the mirrored crop and average the two logits (test-time
flip averaging, baked into the exported graph when set).
"""

from __future__ import annotations

import torch
from torch import nn

from facemtl.contract import N_EXPRESSIONS
from facemtl.models.efficientnet import EfficientNetLite
from facemtl.models.heads import InputNorm
from facemtl.models.registry import register_model

# BT.601 luma weights in BGR order (cv2.COLOR_BGR2GRAY).
_LUMA_BGR = (0.114, 0.587, 0.299)


class ExpressionNet(nn.Module):
    def __init__(self, pretrained: bool = False, dropout: float = 0.2, flip_average: bool = False):
        super().__init__()
        self.register_buffer("luma", torch.tensor(_LUMA_BGR).view(1, 3, 1, 1), persistent=False)
        self.norm = InputNorm()
        self.backbone = EfficientNetLite(pretrained=pretrained)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.channels[-1], N_EXPRESSIONS)
        self.flip_average = flip_average

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        grey = (image * self.luma).sum(1, keepdim=True)
        x = self.norm(grey.expand(-1, 3, -1, -1))
        feature = self.backbone(x)[-1].mean((2, 3))
        return self.fc(self.dropout(feature))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, S, S) BGR 0..255 -> ``{"expression_logits": (N, 7)}`` over ``EXPRESSIONS``."""
        if self.flip_average and not self.training:
            n = image.shape[0]
            both = self.logits(torch.cat([image, image.flip(3)]))
            return {"expression_logits": (both[:n] + both[n:]) / 2}
        return {"expression_logits": self.logits(image)}

    @staticmethod
    def decode(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw outputs -> the contract's ``expression`` probabilities (N, 7)."""
        return {"expression": torch.softmax(outputs["expression_logits"], dim=-1)}


@register_model
def expression_lite0(pretrained: bool = False, **kw) -> ExpressionNet:
    return ExpressionNet(pretrained=pretrained, **kw)
