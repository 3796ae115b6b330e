"""Compare two pictures pixel by pixel (PNG bytes differ with metadata; what a reviewer sees is pixels).

Pillow decodes them (pinned in the tools venv); without it the comparison falls back to bytes
and says so. Pure function: nothing is written.
"""

from __future__ import annotations

from pathlib import Path


def _pixels(path: Path) -> tuple[str, tuple[int, int], bytes]:
    from PIL import Image  # imported when comparing pictures: the rest of the harness needs no pillow

    with Image.open(path) as image:
        image = image.convert("RGBA")
        return image.mode, image.size, image.tobytes()


def picture_difference(a: Path, b: Path) -> str | None:
    """None when the two pictures have identical pixels, else one sentence saying how they differ."""
    for label, path in (("A", a), ("B", b)):
        if not path.is_file():
            return f"missing in hub {label}"
    try:
        (_, size_a, data_a), (_, size_b, data_b) = _pixels(a), _pixels(b)
    except ImportError:
        same = a.read_bytes() == b.read_bytes()
        return None if same else "bytes differ (pillow is not installed: pixels not compared)"
    except OSError as exc:
        return f"not a readable picture ({exc})"
    if size_a != size_b:
        return f"sizes differ ({size_a[0]}x{size_a[1]} vs {size_b[0]}x{size_b[1]})"
    if data_a == data_b:
        return None
    changed = sum(1 for i in range(0, len(data_a), 4) if data_a[i:i + 4] != data_b[i:i + 4])
    return f"{changed / (size_a[0] * size_a[1]):.2%} of the pixels differ"
