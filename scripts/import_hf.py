#!/usr/bin/env python
from fairseq_tokendrop.cli.import_hf import main

raise SystemExit(main())
