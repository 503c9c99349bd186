"""The ``qwen-vl`` reranker: a Qwen-VL model reads both listings (image and title each) in
one chat prompt and the score is P(yes) from the yes/no logits at the answer position.

Model: any hub name or local path that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load: Qwen2-VL, Qwen2.5-VL and Qwen3-VL instruct models used zero-shot
(default ``Qwen/Qwen2-VL-2B-Instruct``), or yes/no reranker checkpoints fine-tuned from
them (set ``yes_token`` / ``no_token`` to what they were trained to answer).
Needs the ``vl`` extra (transformers, qwen-vl-utils for image resizing).

Options (``qwen-vl:MODEL,key=value,...``):

* ``device``: ``auto`` (cuda, then mps, then cpu) or a torch device name.
* ``precision``: ``auto`` (bf16 on a GPU, fp32 on a CPU), ``bf16``, ``fp16`` or ``fp32``.
* ``batch_size`` (8): pairs per forward pass; halved and retried on GPU out-of-memory.
* ``min_pixels`` / ``max_pixels`` (64*28*28 / 512*28*28): each image is resized into this
  pixel range (multiples of the patch size), which bounds its visual tokens.
* ``fields``: product fields appended to the title, ``+``-separated.
* ``yes_token`` / ``no_token`` ("yes" / "no"): must each be one token.
* ``instruction``: the question asked before the listings (no commas: specs split on them).
* ``stage1_weight``: adds ``-weight * log2(1 + stage-1 rank)`` to the yes-no logit
  (``rerank.base.stage1_prior``) before the probability. Default: what a folder trained
  by ``search train reranker --kind qwen-vl`` records (chosen on valid), else 0.

A side with no image, or one that cannot be read, goes in as text only; ``stats.counts``
counts them under ``no_image`` and ``unreadable_image``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from rerank._torch import LogitReranker, run_batches
from rerank.base import Pair, register_reranker
from retrieval.data.images import load_image
from retrieval.errors import MissingExtraError, SearchError, UsageError
from retrieval.registry import int_option
from retrieval.types import Product

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
INSTRUCTION = "Do these two listings show the same product? Answer yes or no."
_CACHE_SIZE = 64  # resized images kept: a query's image repeats across its candidates

Item = tuple[str, list[Any]]  # chat text and its images, in placeholder order


class QwenVLReranker(LogitReranker):
    """Pointwise yes/no reranker on a Qwen-VL model; pairs from many queries batch together.
    ``run`` holds ``LogitReranker``'s options (device, precision, fields, stage1_weight)."""

    kind = "qwen-vl"

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: str | int = 8,
        min_pixels: str | int = 64 * 28 * 28,
        max_pixels: str | int = 512 * 28 * 28,
        yes_token: str = "yes",
        no_token: str = "no",
        instruction: str = INSTRUCTION,
        **run: Any,
    ) -> None:
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as exc:
            raise MissingExtraError("vl", exc.name or "transformers") from exc
        try:
            from qwen_vl_utils import fetch_image
        except ImportError as exc:
            name = exc.name if exc.name and exc.name != "qwen_vl_utils" else "qwen-vl-utils"
            raise MissingExtraError("vl", name) from exc
        least = int_option("min_pixels", min_pixels, minimum=1)
        most = int_option("max_pixels", max_pixels, minimum=1)
        if least > most:
            raise UsageError(f"min_pixels={least} is above max_pixels={most}")
        model = model or DEFAULT_MODEL
        super().__init__(model, batch_size=batch_size, **run)
        self.pixels = {"min_pixels": least, "max_pixels": most}
        self.instruction = instruction
        self._fetch_image = fetch_image
        self._images: OrderedDict[str, Any] = OrderedDict()
        try:
            self.processor = AutoProcessor.from_pretrained(model)
        except OSError as exc:
            raise SearchError(f"cannot load qwen-vl model {model!r}: {exc}") from exc
        # Left padding puts every row's answer position last.
        self.processor.tokenizer.padding_side = "left"
        self.token_ids = [
            self._token_id(yes_token, "yes_token"),
            self._token_id(no_token, "no_token"),
        ]
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(
                model, dtype=self.dtype, attn_implementation=self._attention()
            )
        except OSError as exc:
            raise SearchError(f"cannot load qwen-vl model {model!r}: {exc}") from exc
        self.model.to(self.device).eval()
        self.patch_size = int(getattr(self.processor.image_processor, "patch_size", 14))

    def _attention(self) -> str:
        half = self.dtype.is_floating_point and self.dtype.itemsize == 2
        if self.device.startswith("cuda") and half and importlib.util.find_spec("flash_attn"):
            return "flash_attention_2"
        return "sdpa"

    def _token_id(self, token: str, option: str) -> int:
        tokenizer = self.processor.tokenizer
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
            raise UsageError(f"{option}={token!r} is not a single token of {self.spec}: {ids}")
        return int(ids[0])

    def _image(self, ref: str | None) -> Any | None:
        """The resized image of a reference, or None (counted) for text-only."""
        if not ref:
            self.stats.add("no_image")
            return None
        if ref in self._images:
            self._images.move_to_end(ref)
            image = self._images[ref]
        else:
            try:
                element = {"image": load_image(ref), **self.pixels}
                image = self._fetch_image(element, image_patch_size=self.patch_size)
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable image, using the title only: %s", self.spec, exc)
                image = None
            self._images[ref] = image
            if len(self._images) > _CACHE_SIZE:
                self._images.popitem(last=False)
        if image is None:
            self.stats.add("unreadable_image")
        return image

    def prepare(self, query: Product, candidate: Product) -> Item:
        """The chat text of one pair and its images (both sides: image if any, then title)."""
        content: list[dict[str, Any]] = [{"type": "text", "text": self.instruction + "\n"}]
        images = []
        for label, product in (("A", query), ("B", candidate)):
            content.append({"type": "text", "text": f"Listing {label}:\n"})
            image = self._image(product.image_path)
            if image is not None:
                content.append({"type": "image", "image": image})
                images.append(image)
            content.append({"type": "text", "text": (self.format(product) or "(no title)") + "\n"})
        messages = [{"role": "user", "content": content}]
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return text, images

    def encode(self, items: Sequence[Item]) -> Any:
        """The padded (left) model inputs of a batch, as CPU tensors."""
        images = [image for _, row in items for image in row]
        return self.processor(
            text=[text for text, _ in items],
            images=images or None,
            padding=True,
            return_tensors="pt",
        )

    def inputs(self, items: Sequence[Item]) -> Any:
        """The padded model inputs of a batch, on the model's device and dtype."""
        return self.encode(items).to(device=self.device, dtype=self.dtype)

    def _forward(self, items: Sequence[Item]) -> list[float]:
        import torch

        batch = self.inputs(items)
        with torch.inference_mode():
            yes_no = answer_logits(self.model, batch, self.token_ids).float()
        return (yes_no[:, 0] - yes_no[:, 1]).tolist()  # logit of P(yes) = softmax's first

    def _cost(self, item: Item) -> int:
        """About how many tokens an item takes (its text, plus each image's tokens)."""
        merged = (self.patch_size * 2) ** 2
        return len(item[0]) // 4 + sum(w * h // merged for w, h in (i.size for i in item[1]))

    def margins(self, pairs: Sequence[Pair]) -> list[float]:
        """The yes-minus-no logit of each pair (P(yes) before the sigmoid), in order."""
        scores: list[float] = []
        chunk = max(64, 4 * self.batch_size)  # pairs prepared at a time: bounds image memory
        for start in range(0, len(pairs), chunk):
            items = [self.prepare(q, c.product) for q, c in pairs[start : start + chunk]]
            order = sorted(range(len(items)), key=lambda i: -self._cost(items[i]))
            done, self.batch_size = run_batches(
                [items[i] for i in order], self.batch_size, self._forward, name=self.spec
            )
            part = [0.0] * len(items)
            for i, s in zip(order, done):
                part[i] = s
            scores.extend(part)
        return scores


def answer_logits(model: Any, batch: Any, token_ids: Sequence[int]) -> Any:
    """The ``[yes, no]`` logits at the answer position (the last, under left padding) of a
    batch: what the reranker scores with and what training fits."""
    logits = model(**batch, logits_to_keep=1, use_cache=False).logits[:, -1, :]
    return logits[:, list(token_ids)]


# the class is its own factory: a spec's options are its keywords (default model above)
register_reranker(QwenVLReranker.kind)(QwenVLReranker)
