"""Entry point for `python -m finetune_sidecar`."""

import sys

from finetune_sidecar.cli import main

if __name__ == "__main__":
    sys.exit(main())
