"""Text views of the account shared by the command line and the TUI."""
