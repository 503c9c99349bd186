"""Tuning a matcher on a labelled catalogue (``search eval``), apart from the job that
applies it (``search match``, ``search.match.job``), which nothing here imports.
"""
