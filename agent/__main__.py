"""`python -m agent` runs the same command line as `feed-agent`."""

from agent.cli import entry_point

entry_point()
