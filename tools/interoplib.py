"""Shared scaffolding of the interop checks that drive the `sdsclip` CLI: arguments, running the CLI, counting checks."""
import argparse
import os
import subprocess


class Checks:
    """Prints one line per check (`ok` or `FAIL`, name, detail) and the closing `NAME: N passed, M failed`."""

    def __init__(self, cli, root):
        self.cli, self.root = cli, root
        self.passed = self.failed = 0

    @classmethod
    def from_command_line(cls):
        """From `--cli PATH/TO/sdsclip [--root REPO]`; root defaults to this repository."""
        parser = argparse.ArgumentParser()
        parser.add_argument("--cli", required=True)
        parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        args = parser.parse_args()
        return cls(args.cli, os.path.abspath(args.root))

    def check(self, name, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
        self.passed, self.failed = self.passed + bool(ok), self.failed + (not ok)

    def run(self, *arguments):
        """Runs the CLI in the repository root; a non-zero exit raises with its stderr."""
        result = subprocess.run([self.cli, *arguments], cwd=self.root, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"sdsclip {' '.join(arguments)} failed:\n{result.stderr}")
        return result

    def summary(self, name):
        """Prints the closing line; returns the exit status (1 on any failure)."""
        print(f"{name}: {self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1
