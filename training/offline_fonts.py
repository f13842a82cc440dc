"""A local stand-in for the fonts YOLOv5 and Ultralytics download for their plots, so training runs offline."""

from __future__ import annotations

import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def copy_font_stand_ins(config_dir: Path) -> None:
    """Copies a system TTF (DejaVu Sans where present) into ``config_dir`` under the names they would download."""
    config_dir.mkdir(parents=True, exist_ok=True)
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), *Path("/usr/share/fonts").rglob("*.ttf")]
    source = next((candidate for candidate in candidates if candidate.is_file()), None)
    for name in FONT_NAMES:
        if source is not None and not (config_dir / name).exists():
            shutil.copyfile(source, config_dir / name)
