"""``python -m installer``: the same entry point as the ``immutable-installer`` console script."""

from installer.cli.entry import main

if __name__ == "__main__":
    main()
