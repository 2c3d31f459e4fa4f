"""What users write: job specs, device profiles and where the data folders are.

The lowest layer: it imports nothing of qflhw but :mod:`qflhw.errors`. Vocabularies (ansätze,
partitions, mitigation and aggregation methods) and defaults are declared once, in
:mod:`qflhw.config.spec`, and every other layer takes them from there.
"""
