import sys

from faxops.cli import main

sys.exit(main())
