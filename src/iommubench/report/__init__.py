"""Reports of a run: summary.json (`summary`), its blocks, the Markdown/HTML and text renderers,
and the figures (`plots`, `figures/`). Renderers read the summary and compute nothing.

Imports the layers below (core, spec, run, analysis) and nothing above.
"""
