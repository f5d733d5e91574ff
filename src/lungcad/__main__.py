"""``python -m lungcad ...``: the same CLI as the ``lungcad`` entry point (used where no script is on PATH,
e.g. the service's training manager spawning ``python -m lungcad train``)."""

from lungcad.cli import main

if __name__ == "__main__":
    main()
