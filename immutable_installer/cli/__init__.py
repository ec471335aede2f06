"""Command line: the fast entry (``--help``/``--version`` without typer), the typer app, console rendering, docs.

The only user of typer and rich, and the only place errors become exit codes. It may import every stage;
nothing imports it. Keep this ``__init__`` empty: ``immutable_installer.cli.entry`` must start fast.
"""
