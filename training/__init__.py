"""Fine-tuning: imports ``retrieval`` and ``rerank``, never ``search``.

A trainer module is named by the kind it trains (``search.train.registry``):
``clip.py``, ``text.py`` (``arcface_text.py`` for its ``--loss arcface``) and ``timm.py``
(bi-encoders); ``cross_encoder.py``, ``qwen_vl.py`` and ``pair_gbdt.py`` (stage-2
rerankers); ``match_pair.py`` fits the match pair model on candidate edges. What they
share: losses, samplers, mining, the accelerate loop, checkpoints, resume rules and
the valid-split checks.
"""
