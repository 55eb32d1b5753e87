"""``python -m gunyah_net.worker``: see gunyah_net.worker.main."""

import sys

from .main import main

sys.exit(main())
