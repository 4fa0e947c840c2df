"""``python -m keras_ssl``: the ``keras-ssl`` command line (see :mod:`keras_ssl.cli`)."""

import sys

from keras_ssl.cli import main

if __name__ == "__main__":
    sys.exit(main())
