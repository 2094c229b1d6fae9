import sys

from parakeet_nb.cli import main

sys.exit(main())
