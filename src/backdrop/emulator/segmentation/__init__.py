"""Finding the subject, by classical image processing alone, on a small copy of the picture.

No model weights can be downloaded here, so this is not Ideogram's segmentation:

1. the backdrop's colours are learnt from the image border (a few colour clusters, each with a
   tolerance from its own spread; colours seen only along the bottom are taken for a subject
   cut by the frame, not backdrop): ``colours.py``;
2. the background is what can be reached from the border through calm, backdrop-like pixels (a
   flood fill that also follows slow colour drifts and soft shadows, so gradients, vignettes and
   cast shadows go too), so backdrop-coloured pixels enclosed by the subject stay subject:
   ``grow.py``;
3. the subject is cleaned (morphology, specks dropped), its edge refined on the full-size picture
   by the same colour test, then feathered. When that finds almost nothing or almost everything,
   or a ragged cut of a busy scene, a soft centred ellipse stands in; when the input has real
   transparency, its alpha is the mask: ``cutout.py``.
"""

from backdrop.emulator.segmentation.cutout import Cutout, cut_out

__all__ = ["Cutout", "cut_out"]
