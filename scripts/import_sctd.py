#!/usr/bin/env python
from fairseq_tokendrop.cli.import_sctd import main

raise SystemExit(main())
