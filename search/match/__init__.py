"""The match decision: which candidates of a listing count as its matches.

Catalogue matching on calibrated scores: ``vectors`` (stored vectors fetched by id),
``edges`` (candidate edges and their cosines), ``rules`` / ``groups`` / ``blend`` (the
Shopee winners' rules), ``pairs`` (a pair model on edges), ``tune`` / ``tuning`` /
``catalogue`` (thresholds chosen on valid), ``matcher`` (the saved matcher) and
``job`` / ``output`` (``search match``).
"""
