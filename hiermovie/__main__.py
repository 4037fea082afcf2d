"""`python -m hiermovie`: the `hiermovie` command."""

import sys

from hiermovie.workflows.cli import main

sys.exit(main())
