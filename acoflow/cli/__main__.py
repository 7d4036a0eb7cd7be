"""`python -m acoflow.cli`."""

from acoflow.cli import main

main()
