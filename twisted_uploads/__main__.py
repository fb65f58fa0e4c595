"""``python -m twisted_uploads`` — see :mod:`twisted_uploads.client.cli`."""

import sys

from .client.cli import main

if __name__ == "__main__":
    sys.exit(main())
