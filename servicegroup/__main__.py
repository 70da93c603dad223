"""`python -m servicegroup` runs the command-line interface."""

from servicegroup.cli import main

raise SystemExit(main())
