"""The helpers every stage shares: product text, factory options, device choice."""

from __future__ import annotations

import pytest

from retrieval.errors import UsageError
from retrieval.registry import choice_option, int_option
from retrieval.types import Product, product_text

LISTING = Product(
    "p1",
    "  Air Zoom 42 ",
    fields={"brand": "nike", "colour": "", "note": "  worn ", "size": 42, "box": None},
)


def test_encoder_text_joins_stripped_values_with_a_blank():
    assert product_text(LISTING) == "Air Zoom 42"
    # empty and missing fields leave no double blank; values are stripped
    assert product_text(LISTING, ("brand", "colour", "missing", "note", "size", "box")) == (
        "Air Zoom 42 nike worn 42"
    )


def test_reranker_text_labels_fields_and_keeps_values_as_stored():
    text = product_text(LISTING, ("brand", "colour", "note", "size"), sep=" | ", labels=True)
    assert text == "Air Zoom 42 | brand: nike | note:   worn  | size: 42"


def test_a_listing_without_title_starts_with_its_first_field():
    assert product_text(Product("p2", "", fields={"brand": "nike"}), ("brand",)) == "nike"
    assert product_text(Product("p3", ""), ("brand",), sep=" | ", labels=True) == ""


@pytest.mark.parametrize(
    ("value", "kwargs", "want"),
    [("8", {}, 8), (16, {"minimum": 1}, 16), (None, {"default": 3}, 3), ("", {"default": 0}, 0)],
)
def test_int_option_reads_strings_and_defaults(value, kwargs, want):
    assert int_option("batch_size", value, **kwargs) == want


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ("many", {}, "option batch_size='many' is not an integer"),
        ("0", {"minimum": 1}, "option batch_size=0 must be at least 1"),
        (None, {}, "is not an integer"),
        ("-2", {"default": 4}, "must be at least 0"),
    ],
)
def test_int_option_rejects_with_one_line(value, kwargs, message):
    with pytest.raises(UsageError, match=message):
        int_option("batch_size", value, **kwargs)


def test_choice_option_lowercases_and_checks():
    assert choice_option("activation", " Sigmoid ", ("sigmoid", "none")) == "sigmoid"
    with pytest.raises(UsageError, match="expected one of sigmoid, none"):
        choice_option("activation", "relu", ("sigmoid", "none"))


def test_device_and_dtype_choice_is_shared_by_encoders_and_rerankers():
    torch = pytest.importorskip("torch")
    from retrieval.device import autocast_dtype, model_dtype, pick_device

    assert pick_device("CPU") == "cpu"
    assert model_dtype("cpu") is torch.float32 and autocast_dtype("cpu") is None
    assert model_dtype("cpu", "bf16") is torch.bfloat16
    assert model_dtype("cuda:0", "fp16") is torch.float16
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        pick_device("tpu")
    with pytest.raises(UsageError, match="unknown precision"):
        model_dtype("cpu", "fp8")
