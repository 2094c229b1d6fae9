"""nbval settings for the notebooks: stderr is not compared.

Conversion and tracing warnings go to stderr; they vary with library versions and are
not part of what a notebook teaches. Everything on stdout and every result is compared.
"""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
