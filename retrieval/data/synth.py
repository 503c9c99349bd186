"""A deterministic synthetic catalogue in the Shopee layout, for the demo and the tests.

``train.csv`` (posting_id, image, image_phash, title, label_group) and ``train_images/``:
groups of 2-6 listings of one product. Each product has a drawn picture (a phone, shoe,
bottle, bag or shirt in its colours, with its brand, model and capacity written on it);
each listing shows an augmented copy and words the title its own way. Sibling products
(same brand and look, another model number or capacity) are the hard negatives.
``synth_groups.jsonl`` describes the products; the Shopee reader ignores it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance

from retrieval.data.synth_draw import Look, draw_banner, draw_product
from retrieval.data.synth_titles import (
    COLOURS,
    ProductSpec,
    format_capacity,
    listing_title,
    sample_products,
)
from retrieval.errors import UsageError

logger = logging.getLogger(__name__)

COLUMNS = ("posting_id", "image", "image_phash", "title", "label_group")
GROUP_SIZES = (2, 3, 4, 5, 6)
SIZE_WEIGHTS = (0.3, 0.25, 0.2, 0.15, 0.1)


@dataclass
class _Listing:
    posting_id: str
    image: str
    title: str
    label_group: int
    product: int
    phash: str = ""


def synthesize(
    out_dir: str | Path,
    groups: int = 200,
    seed: int = 0,
    image_size: int = 224,
    *,
    corrupt: int = 0,
    missing: int = 0,
    hard_rate: float = 0.3,
) -> Path:
    """Write a synthetic Shopee-layout catalogue to ``out_dir`` and return that folder.

    The same arguments give the same files, byte for byte. ``corrupt`` listings get a
    truncated image file and ``missing`` listings none at all (for fault tests); about
    ``hard_rate`` of the products are siblings of another. Files of an earlier run with
    other arguments are overwritten, not removed."""
    if groups < 1:
        raise UsageError("groups must be at least 1")
    if image_size < 32:
        raise UsageError("image_size must be at least 32")
    if not 0.0 <= hard_rate < 1.0:
        raise UsageError("hard_rate must be in [0, 1)")
    rng = random.Random(seed)
    specs = sample_products(rng, groups, hard_rate)
    looks = _looks(rng, specs)
    labels = _unique_ints(rng, groups, 10**8, 10**10)
    listings: list[_Listing] = []
    for index, spec in enumerate(specs):
        for _ in range(rng.choices(GROUP_SIZES, SIZE_WEIGHTS)[0]):
            listings.append(_Listing("", "", listing_title(rng, spec), labels[index], index))
    ids = _unique_ints(rng, len(listings), 10**8, 10**10)
    for listing, number in zip(listings, ids):
        listing.posting_id = f"train_{number}"
        listing.image = f"{rng.getrandbits(128):032x}.jpg"
    rng.shuffle(listings)
    if corrupt < 0 or missing < 0 or corrupt + missing > len(listings):
        raise UsageError(f"corrupt + missing must be between 0 and {len(listings)}")
    faulty = [listings[i].posting_id for i in rng.sample(range(len(listings)), corrupt + missing)]
    broken, absent = set(faulty[:corrupt]), set(faulty[corrupt:])

    out = Path(out_dir)
    images = out / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    per_product: list[list[_Listing]] = [[] for _ in specs]
    for listing in sorted(listings, key=lambda item: item.posting_id):
        per_product[listing.product].append(listing)
    canvas = int(image_size * 2.5)  # drawn at twice the output scale
    hasher = _phash()
    for spec, look, group in zip(specs, looks, per_product):
        base = draw_product(spec, look, canvas)  # one at a time: memory stays flat
        for listing in group:
            data = _augment(base, look, rng, image_size)
            if hasher is not None:
                listing.phash = hasher(data)
            path = images / listing.image
            if listing.posting_id in absent:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data[: len(data) // 3] if listing.posting_id in broken else data)
    _write_csv(out / "train.csv", listings)
    _write_groups(out / "synth_groups.jsonl", specs, labels, listings)
    logger.info("synthetic catalogue: %d groups, %d listings in %s", groups, len(listings), out)
    return out


def _unique_ints(rng: random.Random, count: int, lo: int, hi: int) -> list[int]:
    return rng.sample(range(lo, hi), count)


def _looks(rng: random.Random, specs: list[ProductSpec]) -> list[Look]:
    """Per-product drawing parameters; a sibling looks exactly like its source."""
    looks: list[Look] = []
    for spec in specs:
        if spec.sibling_of is not None:
            looks.append(looks[spec.sibling_of])
            continue
        base = COLOURS[spec.colour][2]
        looks.append(
            Look(
                colour=tuple(max(0, min(255, c + rng.randint(-18, 18))) for c in base),
                accent=tuple(rng.randint(0, 255) for _ in range(3)),
                background=tuple(rng.randint(215, 255) for _ in range(3)),
                variant=rng.randrange(3),
                scale=rng.uniform(0.55, 0.68),
                dx=rng.uniform(-0.04, 0.04),
                dy=rng.uniform(-0.04, 0.04),
            )
        )
    return looks


def _augment(base: Image.Image, look: Look, rng: random.Random, size: int) -> bytes:
    """A seller's photo of the product: rotated, cropped, colour-shifted, re-encoded."""
    # One affine transform does the rotation about the centre, the crop and the resize.
    angle = math.radians(rng.uniform(-8.0, 8.0))
    side = base.width * rng.uniform(0.72, 0.95)
    x0 = rng.uniform(0, base.width - side)
    y0 = rng.uniform(0, base.height - side)
    # Nearest-neighbour sampling at twice the size, then a 2x2 box filter: as smooth as
    # bilinear sampling, and several times faster in Pillow.
    k, c = side / (2 * size), base.width / 2
    cos, sin = math.cos(angle), math.sin(angle)
    matrix = (
        cos * k,
        -sin * k,
        c + cos * (x0 - c) - sin * (y0 - c),
        sin * k,
        cos * k,
        c + sin * (x0 - c) + cos * (y0 - c),
    )
    img = base.transform(
        (2 * size, 2 * size),
        Image.Transform.AFFINE,
        matrix,
        Image.Resampling.NEAREST,
        fillcolor=look.background,
    ).reduce(2)
    brightness, contrast = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)
    lut = [max(0, min(255, round((v * brightness - 128) * contrast + 128))) for v in range(256)]
    img = img.point(lut * 3)
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.75, 1.25))
    if rng.random() < 0.2:
        draw_banner(img, rng.choice(("PROMO", "COD", "ORI", "READY", "SALE")), rng.random() < 0.5)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=rng.randint(60, 95))
    return buf.getvalue()


def _phash():
    """A function from JPEG bytes to the image's perceptual hash, or None."""
    try:
        import imagehash
    except ImportError:
        logger.info("imagehash is not installed: image_phash left empty")
        return None

    def phash(data: bytes) -> str:
        with Image.open(io.BytesIO(data)) as img:
            return str(imagehash.phash(img))

    return phash


def _write_csv(path: Path, listings: list[_Listing]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for item in listings:
            writer.writerow((item.posting_id, item.image, item.phash, item.title, item.label_group))


def _write_groups(
    path: Path, specs: list[ProductSpec], labels: list[int], listings: list[_Listing]
) -> None:
    sizes = [0] * len(specs)
    for item in listings:
        sizes[item.product] += 1
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for index, spec in enumerate(specs):
            record = {
                "label_group": labels[index],
                "category": spec.category,
                "brand": spec.brand,
                "model": spec.model,
                "capacity": format_capacity(spec.capacity, 0),
                "colour": COLOURS[spec.colour][1],
                "title": spec.base_title(),
                "listings": sizes[index],
                "sibling_of": None if spec.sibling_of is None else labels[spec.sibling_of],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
