"""Subcommands of the command line, one module each; they only parse, call the
core workflows and print."""
