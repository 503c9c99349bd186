"""Batch evaluation: run both stages over a split, score them (``scoring``: ranking
metrics, tuned match sets, latency), and write the run folder (``report``: TREC runs,
metrics.json, report.md, plots). Entry point: ``evaluate.evaluate_dataset``."""
