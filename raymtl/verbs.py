"""The registry of `raymtl` verbs: a module that adds verbs (raymtl.cli, raymtl.results.cli,
raymtl.serving.cli) registers each verb's function here with `@command`, and `raymtl.cli.main`
dispatches to it. Its own module so that those modules need not import each other.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(fn):
        COMMANDS[name] = fn
        return fn

    return register


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 as well; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")
