"""``python -m search.cli``: the same app as ``search`` and ``python -m search``."""

from search.cli import app

app()
