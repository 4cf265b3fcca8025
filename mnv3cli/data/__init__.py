"""Layer 4: image decoding, preprocessing and batching, robust to bad files. Torch-free."""

from .batches import Batch, default_workers, iter_batches
from .images import IMAGE_EXTENSIONS, ImageDecodeError, is_image_file, open_rgb
from .preprocess import Normalizer, load_and_preprocess, resize_crop

__all__ = [
    "IMAGE_EXTENSIONS",
    "Batch",
    "ImageDecodeError",
    "Normalizer",
    "default_workers",
    "is_image_file",
    "iter_batches",
    "load_and_preprocess",
    "open_rgb",
    "resize_crop",
]
