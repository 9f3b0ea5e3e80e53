"""The ``l2reg`` console script: Ctrl-C handling first, then the command line (:mod:`l2reg.cli`)."""

import sys


def main() -> int:
    from .base import interrupts

    interrupts.install()
    try:
        interrupts.phase("import")
    except interrupts.Interrupted:  # Ctrl-C while starting: nothing has started yet
        sys.stderr.write("interrupted: stopped while starting; nothing was saved.\n")
        return 130
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
