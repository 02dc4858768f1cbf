"""The line learnt from the stream: each station's parameters estimated from the
messages the twin receives, with their sample sizes and 95% intervals
(docs/learning.md)."""
