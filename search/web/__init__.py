"""The result viewer: a small local web page over the index and evaluation runs."""
