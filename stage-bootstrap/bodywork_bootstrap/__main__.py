import sys

from bodywork_bootstrap.stage import main

sys.exit(main())
