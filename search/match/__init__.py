"""The match decision: which ranked candidates of a listing count as its matches."""
