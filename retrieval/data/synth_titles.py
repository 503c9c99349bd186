"""Vocabulary, products and listing titles of the synthetic Shopee-style catalogue.

A product is brand + model + capacity + colour of one category. Some products are
siblings of an earlier one (same brand and type, another model number or capacity):
the hard negatives of product matching. Each listing of a product words its title
its own way: word order, unit formatting, Indonesian filler words, typos, casing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from retrieval.errors import UsageError

# (Indonesian, English, RGB)
COLOURS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("Hitam", "Black", (30, 30, 34)),
    ("Putih", "White", (236, 236, 232)),
    ("Merah", "Red", (200, 32, 44)),
    ("Biru", "Blue", (40, 84, 200)),
    ("Hijau", "Green", (40, 150, 72)),
    ("Kuning", "Yellow", (232, 200, 40)),
    ("Abu-abu", "Grey", (128, 128, 132)),
    ("Merah Muda", "Pink", (240, 140, 180)),
    ("Ungu", "Purple", (120, 60, 160)),
    ("Biru Dongker", "Navy", (26, 36, 84)),
    ("Oranye", "Orange", (240, 130, 30)),
    ("Coklat", "Brown", (120, 76, 40)),
    ("Emas", "Gold", (204, 166, 60)),
    ("Perak", "Silver", (188, 190, 200)),
    ("Tosca", "Teal", (30, 150, 150)),
)

FILLERS = (
    "promo", "murah", "original", "bergaransi", "ready stock", "COD", "termurah",
    "bisa COD", "garansi resmi", "100% ori", "best seller", "baru", "free ongkir",
    "grosir", "diskon", "flash sale", "asli", "terlaris", "new",
)  # fmt: skip


@dataclass(frozen=True)
class Category:
    """One kind of product: type words, brands with model templates, capacities."""

    types: tuple[str, ...]
    brands: dict[str, tuple[tuple[str, int, int], ...]]  # brand -> (template, lo, hi)
    capacities: tuple[tuple[str, str], ...]  # (number, unit)


CATEGORIES: dict[str, Category] = {
    "phone": Category(
        ("HP", "Handphone", "Smartphone"),
        {
            "Samsung": (("Galaxy A{n}", 10, 73), ("Galaxy M{n}", 10, 62), ("Galaxy S{n}", 20, 24)),
            "Xiaomi": (("Redmi Note {n}", 8, 13), ("Redmi {n}A", 8, 13), ("Poco X{n}", 3, 6)),
            "Oppo": (("Reno {n}", 4, 11), ("A{n}", 15, 98)),
            "Vivo": (("Y{n}", 12, 36), ("V{n}", 20, 29)),
            "Realme": (("C{n}", 11, 55), ("Narzo {n}", 20, 60)),
            "Infinix": (("Hot {n}", 10, 40), ("Note {n}", 10, 30)),
        },
        (("32", "GB"), ("64", "GB"), ("128", "GB"), ("256", "GB"), ("512", "GB")),
    ),
    "shoe": Category(
        ("Sepatu", "Sneakers", "Sepatu Lari"),
        {
            "Nike": (("Air Zoom Pegasus {n}", 35, 40), ("Air Max {n}", 90, 97)),
            "Adidas": (("Ultraboost {n}", 19, 23), ("Adizero Boston {n}", 9, 12)),
            "Ventela": (("Public {n}", 1, 5), ("Republic Low {n}", 1, 4)),
            "Compass": (("Gazelle {n}", 1, 6), ("Retrograde {n}", 1, 4)),
            "Puma": (("Suede Classic {n}", 1, 5), ("RS-X {n}", 1, 4)),
        },
        tuple((str(size), "EU") for size in range(37, 45)),
    ),
    "bottle": Category(
        ("Botol Minum", "Tumbler", "Botol"),
        {
            "Tupperware": (("Eco Bottle {n}", 1, 4), ("Infinity Bottle {n}", 1, 3)),
            "Lock&Lock": (("Tritan {n}", 1, 5), ("Hot&Cool {n}", 1, 3)),
            "Hydro Flask": (("Wide Mouth {n}", 1, 3), ("Standard Mouth {n}", 1, 3)),
            "Lion Star": (("Twist {n}", 1, 5), ("Eiffel {n}", 1, 3)),
        },
        (("350", "ml"), ("500", "ml"), ("750", "ml"), ("1", "L"), ("1.5", "L"), ("2", "L")),
    ),
    "bag": Category(
        ("Tas Ransel", "Backpack", "Tas Punggung"),
        {
            "Eiger": (("Rhinos {n}", 1, 5), ("Wanderlust {n}", 1, 4)),
            "Exsport": (("Voyage {n}", 1, 6),),
            "Bodypack": (("Prodiger {n}", 1, 5),),
            "Consina": (("Tarebbi {n}", 1, 4), ("Centurion {n}", 1, 3)),
        },
        (("20", "L"), ("25", "L"), ("30", "L"), ("35", "L"), ("45", "L")),
    ),
    "shirt": Category(
        ("Kaos", "T-Shirt", "Kaos Polos", "Kemeja"),
        {
            "Uniqlo": (("Airism {n}", 1, 4), ("U Crew {n}", 1, 3)),
            "Erigo": (("Basic {n}", 1, 6),),
            "Roughneck": (("Tee {n}", 1, 9),),
            "H&M": (("Regular Fit {n}", 1, 4),),
        },
        (("S", "size"), ("M", "size"), ("L", "size"), ("XL", "size"), ("XXL", "size")),
    ),
}


@dataclass(frozen=True)
class ProductSpec:
    """One synthetic product (a label group)."""

    category: str
    brand: str
    template: str
    number: int
    capacity: tuple[str, str]
    colour: int
    sibling_of: int | None = None  # index of the product this one is a hard negative of

    @property
    def model(self) -> str:
        return self.template.format(n=self.number)

    def key(self) -> tuple[object, ...]:
        return (self.category, self.brand, self.model, self.capacity, self.colour)

    def base_title(self) -> str:
        """The product's canonical title, e.g. ``Samsung Galaxy A52 128GB Hitam``."""
        head = [] if self.category == "phone" else [CATEGORIES[self.category].types[0]]
        cap = format_capacity(self.capacity, 0)
        return " ".join([*head, self.brand, self.model, cap, COLOURS[self.colour][0]])


# Fixed first products, so the demo queries of the Makefile have their answers.
ANCHORS = (
    ProductSpec("phone", "Samsung", "Galaxy A{n}", 52, ("128", "GB"), 0),
    ProductSpec("phone", "Xiaomi", "Redmi Note {n}", 10, ("64", "GB"), 3),
    ProductSpec("phone", "Samsung", "Galaxy A{n}", 52, ("256", "GB"), 0, sibling_of=0),
    ProductSpec("phone", "Xiaomi", "Redmi Note {n}", 11, ("64", "GB"), 3, sibling_of=1),
)


def format_capacity(capacity: tuple[str, str], style: int) -> str:
    """Capacity in one of a seller's writing styles (style 0 is canonical)."""
    number, unit = capacity
    if unit == "EU":
        forms = (f"Size {number}", f"size {number}", f"EU {number}", f"No {number}", number)
    elif unit == "size":
        forms = (number, f"Size {number}", f"size {number}", f"({number})", f"Uk {number}")
    else:
        spelled = {"L": "Liter", "ml": "ML", "GB": "Gb"}[unit]
        forms = (
            f"{number}{unit}",
            f"{number} {unit.lower()}",
            f"{number} {unit}",
            f"{number}{spelled}",
            f"{number} {spelled}",
        )
    return forms[style % len(forms)]


def sample_products(rng: random.Random, count: int, hard_rate: float = 0.3) -> list[ProductSpec]:
    """``count`` distinct products; about ``hard_rate`` of them siblings of earlier ones."""
    specs: list[ProductSpec] = []
    keys: set[tuple[object, ...]] = set()
    misses = 0
    for anchor in ANCHORS[:count]:
        specs.append(anchor)
        keys.add(anchor.key())
    while len(specs) < count:
        if specs and rng.random() < hard_rate:
            index = rng.randrange(len(specs))
            spec = _sibling(rng, specs[index], index)
        else:
            spec = _fresh(rng)
        if spec.key() in keys:
            misses += 1
            if misses > 10_000:
                raise UsageError(f"cannot make {count} distinct products from the vocabulary")
            continue
        specs.append(spec)
        keys.add(spec.key())
    return specs


def _fresh(rng: random.Random) -> ProductSpec:
    category = rng.choice(sorted(CATEGORIES))
    cat = CATEGORIES[category]
    brand = rng.choice(sorted(cat.brands))
    template, lo, hi = rng.choice(cat.brands[brand])
    capacity = rng.choice(cat.capacities)
    return ProductSpec(
        category, brand, template, rng.randint(lo, hi), capacity, rng.randrange(len(COLOURS))
    )


def _sibling(rng: random.Random, spec: ProductSpec, index: int) -> ProductSpec:
    """Same brand, type and colour; another capacity or another model number."""
    source = spec.sibling_of if spec.sibling_of is not None else index
    cat = CATEGORIES[spec.category]
    if rng.random() < 0.5:
        return replace(spec, capacity=rng.choice(cat.capacities), sibling_of=source)
    _, lo, hi = next(t for t in cat.brands[spec.brand] if t[0] == spec.template)
    return replace(spec, number=rng.randint(lo, hi), sibling_of=source)


def listing_title(rng: random.Random, spec: ProductSpec) -> str:
    """One seller's title for a product."""
    cat = CATEGORIES[spec.category]
    with_type = rng.random() < (0.4 if spec.category == "phone" else 0.8)
    model = spec.model
    if rng.random() < 0.1:
        model = model.replace(" ", "")
    colour_id, colour_en, _ = COLOURS[spec.colour]
    slots: list[str | None] = [
        rng.choice(cat.types) if with_type else None,
        spec.brand if rng.random() < 0.9 else None,
        model,
        format_capacity(spec.capacity, rng.randrange(5)) if rng.random() < 0.9 else None,
        (colour_id if rng.random() < 0.7 else colour_en) if rng.random() < 0.75 else None,
    ]
    words = [w for w in slots if w]
    for _ in range(rng.choice((0, 0, 1, 2))):  # move a word elsewhere
        words.insert(rng.randrange(len(words) + 1), words.pop(rng.randrange(len(words))))
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        filler = _filler(rng)
        words.insert(0 if rng.random() < 0.5 else len(words), filler)
    if rng.random() < 0.25:
        words = _typo(rng, words)
    title = " ".join(words)
    casing = rng.random()
    if casing < 0.2:
        return title.lower()
    if casing < 0.35:
        return title.upper()
    return title


def _filler(rng: random.Random) -> str:
    word = rng.choice(FILLERS)
    style = rng.random()
    if style < 0.2:
        return f"[{word.upper()}]"
    if style < 0.3:
        return f"{word.upper()}!!"
    return word


def _typo(rng: random.Random, words: list[str]) -> list[str]:
    """One swapped, dropped or doubled letter in a word of four letters or more."""
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return words
    i = rng.choice(candidates)
    word = words[i]
    pos = rng.randrange(len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        word = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
    elif kind == 1:
        word = word[:pos] + word[pos + 1 :]
    else:
        word = word[:pos] + word[pos] + word[pos:]
    return [*words[:i], word, *words[i + 1 :]]
