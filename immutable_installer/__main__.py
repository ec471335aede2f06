"""``python -m immutable_installer``: the same entry point as the ``immutable-installer`` console script."""

from immutable_installer.cli.entry import main

if __name__ == "__main__":
    main()
