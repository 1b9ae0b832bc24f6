from lrsearch.cli import entry_point

entry_point()
