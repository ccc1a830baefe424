"""Runs the NAB harness's tests (models/nab/test_nab.py) under `unittest discover -s models`."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "nab"))
from test_nab import *  # noqa: E402,F401,F403
