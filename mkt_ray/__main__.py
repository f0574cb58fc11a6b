import sys

from mkt_ray.cli import main

sys.exit(main())
