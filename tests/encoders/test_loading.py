"""Device choice, the image DataLoader helper, and the torch-free package import."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from retrieval.data.images import zip_ref
from retrieval.errors import UsageError
from retrieval.types import Product

torch = pytest.importorskip("torch")
transforms = pytest.importorskip("torchvision.transforms")

from retrieval.device import autocast, autocast_dtype, pick_device  # noqa: E402
from retrieval.encoders.imageloader import iter_image_batches, load_images  # noqa: E402

TO_TENSOR = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])


def test_importing_encoders_does_not_import_torch():
    code = (
        "import sys, retrieval.encoders as e; "
        "assert {'clip', 'text', 'visual-bge', 'phash'} <= set(e.encoder_kinds()); "
        "heavy = {'torch', 'open_clip', 'transformers', 'sentence_transformers'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("cuda", "mps", "bf16", "device", "dtype"),
    [
        (True, True, True, "cuda", "bfloat16"),  # a CUDA card wins over MPS
        (True, False, False, "cuda", "float16"),  # an old card: fp16
        (False, True, False, "mps", "float16"),
        (False, False, False, "cpu", None),
    ],
)
def test_auto_device_follows_what_torch_sees(monkeypatch, cuda, mps, bf16, device, dtype):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device(None) == device == pick_device("auto")
    want = None if dtype is None else getattr(torch, dtype)
    assert autocast_dtype(device) is want


def test_explicit_device_and_precision():
    assert pick_device("cpu") == "cpu"
    assert autocast_dtype("cpu", "bf16") is torch.bfloat16
    assert autocast_dtype("cuda", "fp32") is None
    with pytest.raises(UsageError):
        pick_device("tpu")
    with pytest.raises(UsageError):
        autocast_dtype("cpu", "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            pick_device("cuda")
    x = torch.ones(2, 2)
    with autocast("cpu", None):
        assert (x @ x).dtype is torch.float32
    with autocast("cpu", torch.bfloat16):
        assert (x @ x).dtype is torch.bfloat16


def test_load_images_reports_bad_images_and_skips_imageless(image_dir):
    products = [
        Product("a", "t", image_dir["img0"]),
        Product("b", "t", None),
        Product("c", "t", image_dir["missing"]),
        Product("d", "t", image_dir["corrupt"]),
        Product("e", "t", image_dir["img1"]),
    ]
    pixels, indices, failures = load_images(products, TO_TENSOR, num_workers=0)
    assert pixels.shape == (2, 3, 16, 16)
    assert indices == [0, 4]
    assert set(failures) == {"c", "d"}
    assert all(reason.startswith("unreadable image") for reason in failures.values())


def test_load_images_without_images():
    pixels, indices, failures = load_images([Product("a", "t")], TO_TENSOR)
    assert pixels is None and indices == [] and failures == {}


def test_worker_processes_give_the_same_batches(tmp_path, make_image):
    refs = [make_image(tmp_path / f"{i}.png", i) for i in range(17)]
    products = [Product(str(i), "", r) for i, r in enumerate(refs)]
    products[5] = Product("5", "", str(tmp_path / "gone.png"))
    inline = load_images(products, TO_TENSOR, num_workers=0)
    pooled = list(iter_image_batches(products, TO_TENSOR, batch_size=32, num_workers=2))
    assert len(pooled) == 2  # 17 images spread over two workers
    assert [i for b in pooled for i in b.indices] == inline[1]
    assert torch.equal(torch.cat([b.pixels for b in pooled]), inline[0])
    assert {k for b in pooled for k in b.failures} == {"5"}


def test_batches_respect_batch_size_and_zip_members(tmp_path, make_image):
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(5):
            zf.write(make_image(tmp_path / f"{i}.png", i), f"{i}.png")
    products = [Product(str(i), "", zip_ref(archive, f"{i}.png")) for i in range(5)]
    batches = list(iter_image_batches(products, TO_TENSOR, batch_size=2, num_workers=0))
    assert [b.indices for b in batches] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize(
    ("spec", "module", "extra"),
    [
        ("clip", "open_clip", "clip"),
        ("text", "sentence_transformers", "text"),
        ("visual-bge,weights=x.pth", "transformers", "vbge"),
        ("phash", "imagehash", "phash"),
    ],
)
def test_missing_stack_names_the_extra(monkeypatch, spec, module, extra):
    from retrieval.encoders import build_encoder
    from retrieval.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=rf"\[{extra}\]"):
        build_encoder(spec)
