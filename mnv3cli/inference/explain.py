"""Where the model looked: Grad-CAM heatmaps (Selvaraju et al., 2017) for ``mnv3 explain``.

The class-activation maps come from the maintained ``pytorch-grad-cam`` library (the ``grad-cam``
package, the ``explain`` extra): Grad-CAM weighs the feature maps of MobileNetV3's last convolution
(``head``: 576 or 960 channels at 1/32 of the input) by the gradient of the chosen class's logit,
keeps the positive part and upsamples it to the input. The map is over the image as the model saw
it (resized and centre-cropped by the weights' preprocessing), so the overlay shows exactly what
was classified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..data.preprocess import Normalizer, load_crop
from ..errors import UserError

INSTALL_HINT = "explain needs grad-cam: pip install 'mnv3cli[explain]'"


@dataclass(frozen=True)
class Explanation:
    path: str
    target: int  # the class explained
    top5: list[tuple[int, float]]  # (class index, probability), best first: the top-k (5 unless asked)
    heatmap: np.ndarray  # [H, W] float32 in [0, 1], over ``image``
    image: Image.Image  # the crop the model classified

    def overlay(self) -> Image.Image:
        """The heatmap in colour (jet) over the image, as pytorch-grad-cam draws it."""
        from pytorch_grad_cam.utils.image import show_cam_on_image

        rgb = np.asarray(self.image, dtype=np.float32) / 255.0
        return Image.fromarray(show_cam_on_image(rgb, self.heatmap, use_rgb=True, image_weight=0.55))


def require_grad_cam() -> None:
    """Fail with the install command, before any model is loaded, when the extra is missing."""
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None


def explain(
    model,
    preprocess,
    path: str | os.PathLike,
    target: int | None = None,
    *,
    temperature: float = 1.0,
    device=None,
    top_k: int = 5,
    fast_decode: bool = False,
) -> Explanation:
    """Grad-CAM of ``target`` (default: the top-1 class) for the image at ``path``.

    ``model`` is a :class:`~mnv3cli.model.MobileNetV3` (the map is taken at its ``head``);
    ``temperature`` only changes the reported probabilities (the map is normalised, so dividing
    the logits by a constant leaves it as it is).
    """
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    require_grad_cam()
    crop = load_crop(path, preprocess, fast_decode=fast_decode)
    x = torch.from_numpy(Normalizer(preprocess)(crop))[None]
    model = model.eval()
    if device is not None:
        model, x = model.to(device), x.to(device)
    with torch.no_grad():
        probs = torch.softmax(model(x).float().cpu()[0] / temperature, dim=0)
    values, indices = torch.topk(probs, min(top_k, len(probs)))
    top = [(int(c), float(p)) for c, p in zip(indices, values, strict=False)]
    target = top[0][0] if target is None else target
    with torch.inference_mode(False), GradCAM(model=model, target_layers=[model.head]) as cam:
        heatmap = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
    return Explanation(str(path), target, top, np.asarray(heatmap, dtype=np.float32), crop)
