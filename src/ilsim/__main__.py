"""`python -m ilsim` is the `ilsim` command."""

from ilsim.cli import app

app(prog_name="ilsim")
