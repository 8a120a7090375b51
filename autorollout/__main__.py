"""`python -m autorollout ...` is the `kube-autorollout` command."""

import sys

from autorollout.cli.main import main

sys.exit(main())
