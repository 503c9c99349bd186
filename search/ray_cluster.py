"""Joining a Ray cluster for ``search index --ray`` (``search.indexing_ray``): the ``ray``
module or one line naming the extra, a local cluster started or a running one joined
(its GCS address probed first, so a wrong address fails in seconds, not minutes), and
Ray's own progress bars and logs quietened for ours.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from retrieval.errors import SearchError, UsageError

log = logging.getLogger(__name__)

RAY_EXTRA = "distributed"
CONNECT_TIMEOUT_S = 10.0  # a Ray address that does not answer within this is an error


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or one line naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"--ray needs Ray Data: pip install '.[{RAY_EXTRA}]' (or pip install 'ray[data]')"
        ) from exc
    return ray


def connect_ray(ray: Any, address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (None / ``local``: start one here); True when
    this call connected (the caller shuts it down), False when Ray was already up."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    verbose = log.isEnabledFor(logging.INFO)  # `search -v`: Ray's warnings too
    if not verbose:  # Ray's C++ core logs warnings to stderr around our progress bar
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    opts: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.WARNING if verbose else logging.ERROR,
    }
    if address in (None, "", "local"):
        ray.init(**opts)
    elif address.startswith("ray://"):
        raise UsageError(
            "Ray Client addresses (ray://) are not supported: run search on a node of the "
            "cluster and pass its GCS address (HOST:PORT, default port 6379) or auto"
        )
    else:
        if address != "auto":
            probe(address)
        try:
            ray.init(address=address, **opts)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SearchError(f"cannot join the Ray cluster at {address}: {first}") from exc
    quiet(ray)
    return True


def probe(address: str) -> None:
    """Fail within ``CONNECT_TIMEOUT_S`` with one line unless a Ray GCS answers at HOST:PORT
    (``ray.init`` itself retries for minutes)."""
    import grpc

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"bad Ray address {address!r}: expected HOST:PORT, auto or local")
    hint = "start one with `ray start --head` or pass its address to --ray-address"
    with grpc.insecure_channel(address) as channel:
        ask = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            ask(b"", timeout=CONNECT_TIMEOUT_S)
        except grpc.RpcError as exc:
            code = exc.code()
            # a GCS with token authentication answers, but not to a stranger
            if code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                why = (exc.details() or code.name).splitlines()[0][:120]
                raise SearchError(f"no Ray cluster answers at {address} ({why}); {hint}") from exc


def quiet(ray: Any) -> None:
    """Our progress bar stands in for Ray Data's."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
