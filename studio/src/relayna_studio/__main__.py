import sys

from relayna_studio._cli import main

sys.exit(main())
