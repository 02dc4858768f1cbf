"""The model registry: versions on disk and the active one (``store``), each
model's card (``cards``) and the quality gate a model passes to go live
(``gate``)."""
