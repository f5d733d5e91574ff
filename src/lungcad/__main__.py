"""``python -m lungcad ...``: the same CLI as the ``lungcad`` entry point (used where no script is on PATH,
e.g. the service's training manager spawning ``python -m lungcad train``)."""

from lungcad.cli import run

if __name__ == "__main__":
    run()  # exits with main()'s code: 2 for a user error, as the lungcad command
