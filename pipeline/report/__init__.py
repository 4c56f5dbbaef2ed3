"""The `report` stage's library: one static page (reports/index.html) and a Markdown summary of a pipeline run.

    tables.py   reports/metrics.json read and checked; results tables (methods x domains) as HTML and Markdown
    figures.py  the domain-gap chart and the training curves (matplotlib PNGs under reports/report/)
    samples.py  per condition, a few prompts with their filter scores
    html.py     the page: sections that say "not produced by this run" where their inputs are absent
    build.py    the run: figures, page and summary, each written atomically
"""
