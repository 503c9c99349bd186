"""The match decision: which listings of a catalogue (or a gallery) are the same product
as each listing, on calibrated pair scores, never on a rank-fusion score.

```
vectors.py        StoredVectors: a catalogue's vectors fetched from the index by point
                  id (never encoded again), pair cosines, TF-IDF rows of sparse vectors
edges.py          Edges: directed candidate edges asked of the index in batches, their
                  cosines and weighted mean, local scaling, ranks, neighbour statistics
inb.py            neighbourhood blending (INB): rounds of blended vectors searched again
text_features.py  title features of edges weighted by how rare each token is
pair_model.py     the pair model applied: its feature columns, probability per edge,
                  LightGBM text files (fitted in training.match_pair)
groups.py         group consistency: mutual, symmetric, components, agglomerative
rules.py          Rule and decide(): thresholds, union, min2, groups, INB as switches
matcher.py        Matcher: the saved matcher (encoders, vectors, rules, pair model)
matcher_file.py   what matcher.json may hold: the schema Matcher.load validates against
edgeset.py        EdgeSet: one set of listings matched together, and its constructors
                  self_edgeset (a catalogue against itself) and query_edgeset
labels.py         Label, append_label (one locked O_APPEND line), read_labels, label_pairs:
                  a reviewer's verdicts on pairs, every bad line named by file:line
artifacts.py      the match run folder the studio opens: run.json (format 1),
                  listings.jsonl, edges.jsonl (contributions, margins), read_run
output.py         matches.csv (Kaggle submission layout), matches.jsonl, the run folder
verdicts.py       `search match --labels`: the verdicts as row pairs, and what they changed
job.py            `search match`: a dataset matched with a saved matcher (or flags)
explain.py        `search explain RUN A B`: why a run matched a pair, from its folder alone
queue.py          QueueItem, and how the review queues order and pick pairs: distance to
                  the threshold (logits), bridges of the matched graph, no listing twice
review_folder.py  a cold-start review folder on disk: candidates.npz, edges, matcher, run.json
cold_start.py     ColdStart: a queue over an unlabelled catalogue, its pair model fitted
                  from the labels alone (training.match_review) after every batch
review.py         RunQueue over a match run; start_review (`search review CATALOGUE`)
tuning/           `search eval` on a catalogue: a matcher tuned on valid
  thresholds.py   one rule's thresholds by coordinate ascent on F1
  menu.py         the menu of rules, each tuned and scored (tune_all), the choice
  folds.py        the train split cut into group-disjoint folds of valid's size
  splits.py       the edge sets tuned on: each split within itself, or a view per
                  split of one search of the whole catalogue
  pair.py         the pair model fitted on train folds and saved beside the matcher
  labelled.py     `search eval --labels`: reviewed pairs in the pair model's rows and the
                  tuning targets, those touching test listings held out; labels/* figures
  catalogue.py    tune_catalogue: every rule tuned, scored, the matcher written
```

Arrows point one way: `job` and `tuning` -> `output` -> `edgeset` -> `matcher`, `inb`,
`pair_model` -> `matcher_file` -> `rules`, `text_features` -> `groups` -> `edges` ->
`vectors`, `labels`, `artifacts` (these three import nothing of the package). The
tuning never imports the job that applies its matcher, and the job never imports the
tuning; both build the same edge sets and decide with the same rules. `review` -> `cold_start`
-> `review_folder` (beside `output`) and `edgeset`; `queue` imports nothing of the package. The
import-linter contract `search-match` in pyproject.toml holds these arrows.
"""
