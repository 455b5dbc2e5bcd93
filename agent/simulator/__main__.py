"""`python -m agent.simulator`: the same as `feed-agent simulate`."""

from __future__ import annotations

import argparse
import sys

from agent.simulator.cli import add_arguments, run_from_args

parser = argparse.ArgumentParser(prog="python -m agent.simulator", description="Learn flat-file and REST simulator")
add_arguments(parser)
sys.exit(run_from_args(parser.parse_args()))
