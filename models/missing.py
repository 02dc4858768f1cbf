"""What our own estimators tell scikit-learn about missing values."""

from __future__ import annotations

from typing import Any


class TakesMissing:
    """A mixin for an estimator that takes NaN in its input (scikit-learn's input tag
    ``allow_nan``): put it first among the bases, before ``BaseEstimator``."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.allow_nan = True
        return tags


__all__ = ["TakesMissing"]
