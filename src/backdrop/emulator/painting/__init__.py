"""Painting the new background: from the palette (or the words and hash of the prompt) and the seed,
a gradient wall, perhaps a tabletop, a spotlight, soft shapes and bokeh, and a contact shadow under
a subject that stands in the picture. The same seed, prompt and palette give the same pixels.
"""

from backdrop.emulator.painting.backdrop import draw_backdrop, with_contact_shadow
from backdrop.emulator.painting.schemes import PRESET_COLOURS

__all__ = ["PRESET_COLOURS", "draw_backdrop", "with_contact_shadow"]
