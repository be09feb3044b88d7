import sys

from jobcast.cli.main import main

sys.exit(main())
