"""Drawings of the synthetic products: a silhouette per category in the product's colours,
its brand on it, and a badge with model and capacity (all that tells siblings apart)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from retrieval.data.synth_titles import ProductSpec, format_capacity

RGB = tuple[int, ...]
# Where a shape wants its brand written: centre, widest text, colour under the text.
Label = tuple[tuple[float, float], float, RGB]


@dataclass(frozen=True)
class Look:
    """How a product is drawn: colours, decoration variant, size and position."""

    colour: RGB
    accent: RGB
    background: RGB
    variant: int
    scale: float
    dx: float
    dy: float


@functools.lru_cache(maxsize=128)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=max(8, size))
    except (TypeError, OSError):  # Pillow without FreeType: one fixed bitmap size
        return ImageFont.load_default()


def _ink(rgb: RGB) -> RGB:
    """Black or white, whichever reads on ``rgb``."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (20, 20, 20) if luma > 140 else (245, 245, 245)


def _darker(rgb: RGB, by: int = 50) -> RGB:
    return tuple(max(0, c - by) for c in rgb)


def draw_product(spec: ProductSpec, look: Look, canvas: int) -> Image.Image:
    """The product's reference picture on a square canvas of ``canvas`` pixels."""
    img = Image.new("RGB", (canvas, canvas), look.background)
    draw = ImageDraw.Draw(img)
    s = canvas * look.scale
    cx = canvas * (0.5 + look.dx)
    cy = canvas * (0.47 + look.dy)
    label_at, width, under = _SHAPES[spec.category](draw, cx, cy, s, look)
    brand = spec.brand.upper()
    size = int(s * 0.11)
    while size > 8 and draw.textlength(brand, font=_font(size)) > width:
        size -= 2
    draw.text(label_at, brand, fill=_ink(under), font=_font(size), anchor="mm")
    badge = f"{spec.model} {format_capacity(spec.capacity, 0)}"
    font = _font(int(canvas * 0.055))
    box = draw.textbbox((canvas * 0.5, canvas * 0.9), badge, font=font, anchor="mm")
    pad = canvas * 0.012
    draw.rounded_rectangle(
        (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), radius=pad, fill=look.accent
    )
    draw.text((canvas * 0.5, canvas * 0.9), badge, fill=_ink(look.accent), font=font, anchor="mm")
    return img


def draw_banner(img: Image.Image, text: str, top: bool) -> None:
    """A seller's promo band across the top or the bottom of a listing photo."""
    draw = ImageDraw.Draw(img)
    h = img.height * 0.12
    y0 = 0 if top else img.height - h
    draw.rectangle((0, y0, img.width, y0 + h), fill=(220, 30, 40))
    font = _font(int(h * 0.7))
    draw.text((img.width / 2, y0 + h / 2), text, fill=(255, 255, 255), font=font, anchor="mm")


def _phone(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, look: Look) -> Label:
    w, h = s * 0.5, s * 0.95
    body = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    draw.rounded_rectangle(body, radius=s * 0.07, fill=look.colour, outline=_darker(look.colour))
    m = s * 0.035
    screen = (body[0] + m, body[1] + m * 2.5, body[2] - m, body[3] - m * 2.5)
    draw.rounded_rectangle(screen, radius=s * 0.03, fill=_darker(look.accent, 90))
    for i in range(look.variant + 1):  # camera dots
        r = s * 0.018
        x = cx - (look.variant * r * 1.5) + i * r * 3
        draw.ellipse(
            (x - r, body[1] + m - r * 0.2, x + r, body[1] + m + r * 1.8), fill=(10, 10, 10)
        )
    return (cx, cy - h * 0.1), w * 0.85, _darker(look.accent, 90)


def _shoe(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, look: Look) -> Label:
    x0, x1, y1 = cx - s * 0.55, cx + s * 0.55, cy + s * 0.25
    draw.rectangle((x0, y1 - s * 0.1, x1, y1), fill=look.accent)
    upper = [
        (x0, y1 - s * 0.1),
        (x0 + s * 0.05, cy - s * 0.25),
        (cx - s * 0.15, cy - s * 0.3),
        (cx + s * 0.05, cy - s * 0.05),
        (x1 - s * 0.05, cy + s * 0.02),
        (x1, y1 - s * 0.1),
    ]
    draw.polygon(upper, fill=look.colour, outline=_darker(look.colour))
    if look.variant == 0:
        draw.arc((cx - s * 0.4, cy - s * 0.2, cx + s * 0.3, cy + s * 0.2), 20, 160, look.accent, 6)
    else:
        for i in range(look.variant + 2):
            x = cx - s * 0.25 + i * s * 0.07
            draw.line((x, cy - s * 0.15, x + s * 0.08, y1 - s * 0.12), look.accent, 5)
    return (cx + s * 0.05, y1 + s * 0.12), s, look.background


def _bottle(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, look: Look) -> Label:
    w, h = s * 0.36, s * 0.75
    top = cy - h / 2 + s * 0.12
    draw.rectangle((cx - w * 0.25, cy - h / 2 - s * 0.05, cx + w * 0.25, top), fill=look.accent)
    draw.rounded_rectangle(
        (cx - w / 2, top, cx + w / 2, cy + h / 2), radius=w * 0.3, fill=look.colour
    )
    band = (cx - w / 2, cy - h * 0.08, cx + w / 2, cy + h * 0.12 + look.variant * s * 0.03)
    draw.rectangle(band, fill=(245, 245, 240))
    return (cx, (band[1] + band[3]) / 2), w * 0.9, (245, 245, 240)


def _bag(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, look: Look) -> Label:
    w, h = s * 0.7, s * 0.8
    body = (cx - w / 2, cy - h / 2 + s * 0.1, cx + w / 2, cy + h / 2)
    draw.arc((cx - w * 0.25, body[1] - s * 0.2, cx + w * 0.25, body[1] + s * 0.2), 180, 360,
             look.accent, 8)  # fmt: skip
    draw.rounded_rectangle(body, radius=s * 0.12, fill=look.colour, outline=_darker(look.colour))
    pocket = (cx - w * 0.35, cy + h * 0.05, cx + w * 0.35, body[3] - s * 0.05)
    draw.rounded_rectangle(pocket, radius=s * 0.06, fill=look.accent)
    for i in range(look.variant):
        y = body[1] + s * (0.1 + 0.06 * i)
        draw.line((body[0] + s * 0.05, y, body[2] - s * 0.05, y), _darker(look.colour), 4)
    return (cx, cy - h * 0.08), w * 0.85, look.colour


def _shirt(draw: ImageDraw.ImageDraw, cx: float, cy: float, s: float, look: Look) -> Label:
    w, h = s * 0.6, s * 0.8
    top, bottom = cy - h / 2, cy + h / 2
    outline = [
        (cx - w * 0.2, top), (cx + w * 0.2, top), (cx + w * 0.85, top + h * 0.2),
        (cx + w * 0.7, top + h * 0.38), (cx + w * 0.5, top + h * 0.3), (cx + w * 0.5, bottom),
        (cx - w * 0.5, bottom), (cx - w * 0.5, top + h * 0.3), (cx - w * 0.7, top + h * 0.38),
        (cx - w * 0.85, top + h * 0.2),
    ]  # fmt: skip
    draw.polygon(outline, fill=look.colour, outline=_darker(look.colour))
    draw.chord((cx - w * 0.2, top - h * 0.1, cx + w * 0.2, top + h * 0.12), 0, 180, look.accent)
    if look.variant == 1:
        draw.rectangle((cx - w * 0.5, cy + h * 0.25, cx + w * 0.5, cy + h * 0.32), look.accent)
    return (cx, cy), w * 0.8, look.colour


_SHAPES = {"phone": _phone, "shoe": _shoe, "bottle": _bottle, "bag": _bag, "shirt": _shirt}
