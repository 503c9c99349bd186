"""``python -m search``: the same app as the ``search`` console script."""

from search.cli import app

app()
