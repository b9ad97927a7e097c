"""``python -m ingest`` runs the command line."""

from ingest.cli import app

app(prog_name="ingest")
