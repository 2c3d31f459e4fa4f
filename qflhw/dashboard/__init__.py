"""Watching runs: read a run directory without disturbing its writer, and show it in the terminal
(``qflhw watch``, rich) or in a local web dashboard (``qflhw dashboard``, NiceGUI, an optional extra)."""
