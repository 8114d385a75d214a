import sys

from bulkport.cli import main

sys.exit(main())
