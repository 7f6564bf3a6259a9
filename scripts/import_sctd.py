#!/usr/bin/env python
from fairseq_tokendrop.commands.import_sctd import main

raise SystemExit(main())
