"""`python -m jobcast.settings` prints the settings table of docs/configuration.md."""

from jobcast.settings import markdown_table

print(markdown_table(), end="")
