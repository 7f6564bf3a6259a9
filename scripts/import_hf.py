#!/usr/bin/env python
from fairseq_tokendrop.commands.import_hf import main

raise SystemExit(main())
