"""One module per command: each wires the library to the terminal and nothing more.

Every module has a frozen dataclass of its arguments (built by ``faxops.cli`` from the parsed command
line) and ``run(args, output) -> int``. Commands raise :class:`faxops.errors.FaxopsError` subclasses;
``faxops.cli`` turns them into exit codes in one table, so no command chooses a non-zero exit by text.
"""
